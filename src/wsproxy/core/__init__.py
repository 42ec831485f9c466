"""The pure core: protocol model, rules, checker, closing handshake, rows, replay decisions.

Values in, values out: no sockets, no files, no clock. Modules here import only the standard
library, msgspec and ``wsproxy.core`` (``tests/test_architecture.py`` enforces it).
"""
