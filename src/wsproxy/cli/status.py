"""Live status of a recording proxy (rich), and machine-readable log lines."""

from __future__ import annotations

import sys
import time
from typing import Any

import msgspec
from rich.console import Console
from rich.text import Text

from wsproxy.cli.render import finding_text, severity_counts
from wsproxy.core.protocol import Finding
from wsproxy.core.throttle import Throttle
from wsproxy.record.session import RecordSession


class Rates:
    """Messages per second each way, from successive snapshots of the counters."""

    def __init__(self, session: RecordSession) -> None:
        self.session = session
        self._last = (time.monotonic(), 0, 0)

    def sample(self) -> tuple[float, float]:
        now = time.monotonic()
        frames = self.session.relay.counters.frames
        then, up, down = self._last
        elapsed = max(now - then, 1e-6)
        self._last = (now, frames["client"], frames["server"])
        return (frames["client"] - up) / elapsed, (frames["server"] - down) / elapsed


def status_line(session: RecordSession, rates: Rates) -> Text:
    counters, recorder = session.relay.counters, session.recorder
    up, down = rates.sample()
    text = Text()
    text.append("● rec ", style="bold red")
    text.append(f"{session.url} → {session.upstream}  ")
    text.append(f"conns {counters.open} open / {counters.total} total  ", style="cyan")
    text.append(f"↑ {up:,.0f}/s ↓ {down:,.0f}/s  ")
    text.append(f"{_size(counters.bytes['client'] + counters.bytes['server'])}  ")
    text.append(f"rows {recorder.stats.rows_written:,}  ")
    lag = recorder.lag_seconds
    text.append(f"lag {lag * 1000:,.0f} ms", style="yellow" if lag > 1 else "green")
    if session.injector is not None:
        text.append(f"  injected {counters.injected:,}", style="bold magenta")
    if session.live_check is not None:
        text.append("  ")
        text.append_text(severity_counts(session.live_check.counts))
    if session.relay.stopped_reason:
        text.append(f"  STOPPED: {session.relay.stopped_reason}", style="bold red")
    return text


def summary(session: RecordSession) -> dict[str, Any]:
    counters, stats = session.relay.counters, session.recorder.stats
    return {"db": str(session.options.db), "session_id": session.recorder.session_id,
            "connections": counters.total, "failed_handshakes": counters.failed_handshakes,
            "frames_client": counters.frames["client"], "frames_server": counters.frames["server"],
            "bytes": counters.bytes["client"] + counters.bytes["server"],
            "rows_written": stats.rows_written, "max_writer_lag_ms": round(stats.max_lag_seconds * 1000, 1),
            "write_retries": stats.write_retries,
            "findings": dict(session.live_check.counts) if session.live_check is not None else None,
            "injected": counters.injected,
            "findings_caused_by_injection": session.live_check.caused_by_injection if session.live_check else 0,
            "error": session.recorder.error}


def log_json(event: str, **fields: Any) -> None:
    """One JSON object per line on stderr (``--log-format json``)."""
    line = {"ts": round(time.time(), 3), "event": event, **fields}
    sys.stderr.write(msgspec.json.encode(line).decode() + "\n")
    sys.stderr.flush()


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"


def show_findings(session: RecordSession, console: Console, log_format: str = "text") -> None:
    """Print the live checker's findings as they happen, rate-limited per rule (livecheck.Throttle)."""
    if session.live_check is None:
        return
    throttle = Throttle()

    def summarise(now: float, final: bool = False) -> None:
        for code, hidden in throttle.due(now, final):
            if log_format == "json":
                log_json("findings_suppressed", code=code, count=hidden)
            else:
                console.print(f"[dim]… {hidden:,} more {code} not shown (rate limit; all are in the "
                              f"violations table)[/]")

    def on_finding(finding: Finding) -> None:
        now = time.monotonic()
        summarise(now)
        if not throttle.admit(finding.code, now):
            return
        if log_format == "json":
            log_json("finding", code=finding.code, severity=finding.severity, conn_id=finding.conn_id,
                     seq=finding.seq, message=finding.message, request_id=finding.request_id,
                     event_id=finding.event_id)
        else:
            console.print(finding_text(finding), soft_wrap=True)

    session.live_check.listeners.append(on_finding)
    session.on_stopped.append(lambda: summarise(time.monotonic(), final=True))
