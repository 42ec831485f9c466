"""``python -m wsproxy``: the same as the ``wsproxy`` command."""

from wsproxy.cli import entry

entry()
