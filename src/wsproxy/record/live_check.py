"""The checker inside ``wsproxy record``: relay observations in, findings out to the recording,
the status line and the terminal."""

from __future__ import annotations

from collections.abc import Callable

from wsproxy.core.checker import Checker
from wsproxy.core.protocol import Finding, ParsedMessage
from wsproxy.core.rows import violation_row
from wsproxy.record.writer import Recorder


class LiveCheck:
    """Implements the relay's Observer: feeds the pure checker with the times the relay records,
    so that ``wsproxy check`` on the recording finds exactly the same."""

    def __init__(self, checker: Checker, recorder: Recorder) -> None:
        self.checker = checker
        self.recorder = recorder
        self.counts: dict[str, int] = {"error": 0, "warning": 0, "info": 0}
        self.listeners: list[Callable[[Finding], None]] = []
        self._message = checker.message
        self.injected_connections: set[int] = set()  # connections an --inject rule acted on
        self.caused_by_injection = 0  # findings on those connections

    def injected(self, conn_id: int) -> None:
        """An --inject rule acted on this connection: its findings from now on are marked as caused by it."""
        self.injected_connections.add(conn_id)

    def opened(self, conn_id: int, ts: int) -> None:
        self._emit(self.checker.open(conn_id, ts))

    def frame_relayed(self, conn_id: int, seq: int, ts: int, sender: str, parsed: ParsedMessage) -> None:
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
        injected = self.injected_connections
        for finding in findings:
            self.counts[finding.severity] = self.counts.get(finding.severity, 0) + 1
            caused = finding.conn_id in injected
            self.caused_by_injection += caused
            self.recorder.add_violation(violation_row(session_id, finding, caused))
            for listener in self.listeners:
                listener(finding)
