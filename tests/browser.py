"""A real Chromium for the tests that need a browser, driven by Playwright.

Debian's chromium (``apt-get install chromium``; ``./dev.sh test`` installs it when run as root).
Without one the browser tests are skipped, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import shutil

import pytest

# Flags for a closed network: without the background-networking ones Chromium keeps trying to reach
# Google's hosts, and with --no-sandbox it runs as root (CI does).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    path = os.environ.get("WSPROXY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "no Chromium: apt-get install chromium (or set WSPROXY_CHROMIUM to a Chromium binary)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
