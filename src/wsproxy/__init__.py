"""wsproxy: a protocol-aware man-in-the-middle WebSocket proxy and recorder."""

__version__ = "0.1.0"
