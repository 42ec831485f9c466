"""The checker inside ``wsproxy record``: relay observations in, findings out to the recording,
the status line and the terminal."""

from __future__ import annotations

from collections.abc import Callable

from wsproxy.checker import Checker
from wsproxy.protocol import Finding, ParsedMessage
from wsproxy.recorder import Recorder
from wsproxy.schema import violation_row


class LiveCheck:
    """Implements the relay's Observer: feeds the pure checker with the times the relay records,
    so that ``wsproxy check`` on the recording finds exactly the same."""

    def __init__(self, checker: Checker, recorder: Recorder) -> None:
        self.checker = checker
        self.recorder = recorder
        self.counts: dict[str, int] = {"error": 0, "warning": 0, "info": 0}
        self.listeners: list[Callable[[Finding], None]] = []
        self._message = checker.message

    def opened(self, conn_id: int, ts: int) -> None:
        self._emit(self.checker.open(conn_id, ts))

    def frame(self, conn_id: int, seq: int, ts: int, sender: str, parsed: ParsedMessage) -> None:
        findings = self._message(conn_id, seq, ts, sender, parsed)
        if findings:
            self._emit(findings)

    def closed(self, conn_id: int, ts: int) -> None:
        self._emit(self.checker.close(conn_id, ts))

    def tick(self, now: int) -> None:
        self._emit(self.checker.tick(now))

    def finish(self, now: int) -> None:
        self._emit(self.checker.finish(now))

    def _emit(self, findings: list[Finding]) -> None:
        session_id = self.recorder.session_id
        for finding in findings:
            self.counts[finding.severity] = self.counts.get(finding.severity, 0) + 1
            self.recorder.violation(violation_row(session_id, finding))
            for listener in self.listeners:
                listener(finding)


class Throttle:
    """Rate-limits the findings shown live: per rule, the first ``burst`` in each ``window``
    seconds are shown; the rest are counted and summarised when the window ends.

    Pure: it is told the time. A storm of one finding then costs a few lines per window, while
    a different rule firing in the middle of it still shows at once.
    """

    def __init__(self, burst: int = 5, window: float = 10.0) -> None:
        self.burst = burst
        self.window = window
        self._windows: dict[str, list[float]] = {}  # code -> [window start, shown, not shown]
        self._summaries: list[tuple[str, int]] = []

    def admit(self, code: str, now: float) -> bool:
        """Whether to show this finding now."""
        state = self._windows.get(code)
        if state is None or now - state[0] >= self.window:
            if state is not None and state[2]:
                self._summaries.append((code, int(state[2])))
            self._windows[code] = [now, 1, 0]
            return True
        if state[1] < self.burst:
            state[1] += 1
            return True
        state[2] += 1
        return False

    def due(self, now: float, final: bool = False) -> list[tuple[str, int]]:
        """Summaries to show now: (code, how many of its findings were not shown)."""
        result, self._summaries = self._summaries, []
        for code, state in self._windows.items():
            if state[2] and (final or now - state[0] >= self.window):
                result.append((code, int(state[2])))
                state[2] = 0
        return result
