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


def watch(tab) -> None:
    """Make ``tab`` fail its test on any uncaught page error, any console error, and any error the page
    shows (wsproxy's pages log what their error banner says as a console error too). A test that
    provokes an error on purpose adds the text it expects to ``tab.allowed``."""
    tab.errors = []
    tab.allowed = []
    tab.on("pageerror", lambda error: tab.errors.append(f"page error: {error}"))

    def console(message) -> None:
        if message.type == "error" and not any(text in message.text for text in tab.allowed):
            tab.errors.append(f"console error: {message.text}")
    tab.on("console", console)


async def assert_clean(tab) -> None:
    """No error happened, and none is shown now (see ``watch``)."""
    assert tab.errors == [], tab.errors
    banner = tab.locator("#error")
    if not tab.is_closed() and await banner.count() and await banner.is_visible():
        shown = await banner.inner_text()
        assert any(text in shown for text in tab.allowed), f"the page shows an error: {shown}"
