"""``wsproxy ui``: the live web view of a recording (docs/ui.md)."""
