"""Live findings are rate-limited per rule, and what comes off the wire is made safe to print."""

from __future__ import annotations

from wsproxy.cli.render import finding_text, safe
from wsproxy.core.protocol import Finding
from wsproxy.core.throttle import Throttle


def test_a_storm_of_one_rule_shows_a_burst_then_a_summary() -> None:
    throttle = Throttle(burst=3, window=10)
    shown = [throttle.admit("orphan-response", t * 0.1) for t in range(50)]
    assert shown == [True] * 3 + [False] * 47
    assert throttle.due(5.0) == []  # the window is still open
    assert throttle.due(10.0) == [("orphan-response", 47)]
    assert throttle.due(11.0) == []  # said once


def test_another_rule_still_shows_during_a_storm() -> None:
    throttle = Throttle(burst=2, window=10)
    for t in range(10):
        throttle.admit("invalid-json", t * 0.01)
    assert throttle.admit("event-id-gap", 0.5) is True


def test_a_new_window_shows_again_and_summarises_the_old_one() -> None:
    throttle = Throttle(burst=1, window=10)
    assert [throttle.admit("x", t) for t in (0, 1, 2)] == [True, False, False]
    assert throttle.admit("x", 12) is True
    assert throttle.due(12) == [("x", 2)]


def test_final_summary_flushes_open_windows() -> None:
    throttle = Throttle(burst=1, window=10)
    throttle.admit("x", 0)
    throttle.admit("x", 1)
    assert throttle.due(2, final=True) == [("x", 1)]


def test_captured_text_cannot_move_the_cursor_or_inject_markup() -> None:
    assert safe("a\x1b[2Jb\r\n") == "a\\x1b[2Jb\\r\\n"
    line = finding_text(Finding("orphan-response", "error", "response '[bold]x\x07' matches nothing", 3, 9))
    assert line.plain == "ERROR   orphan-response conn 3 #9  response '[bold]x\\x07' matches nothing"
