"""Live status of a recording proxy (rich), and machine-readable log lines."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import typer
from rich.console import Console
from rich.text import Text

from wsproxy.cli.app import err, shown
from wsproxy.cli.render import finding_text, severity_counts
from wsproxy.core.errors import EXIT_FOUND, UserError
from wsproxy.core.protocol import Finding
from wsproxy.core.throttle import Throttle
from wsproxy.record.session import RecordSession


class Rates:
    """Messages per second each way, from successive readings of the counters."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), 0, 0)

    def sample(self, frames_client: int, frames_server: int) -> tuple[float, float]:
        now = time.monotonic()
        then, up, down = self._last
        elapsed = max(now - then, 1e-6)
        self._last = (now, frames_client, frames_server)
        return (frames_client - up) / elapsed, (frames_server - down) / elapsed


def status_fields(session: RecordSession) -> dict[str, Any]:
    """What the status line shows, as plain values: a worker of ``--workers`` sends them to the
    process that shows them (``add_status`` adds up those of every worker)."""
    counters, recorder = session.relay.counters, session.recorder
    return {"url": session.url, "upstream": str(session.upstream), "open": counters.open, "total": counters.total,
            "frames_client": counters.frames["client"], "frames_server": counters.frames["server"],
            "bytes": counters.bytes["client"] + counters.bytes["server"], "rows": recorder.stats.rows_written,
            "lag": recorder.lag_seconds,
            "injected": counters.injected if session.injector is not None else None,
            "findings": dict(session.live_check.counts) if session.live_check is not None else None,
            "stopped": session.relay.stopped_reason or None}


def add_status(fields: list[dict[str, Any]]) -> dict[str, Any]:
    """The status of every worker as one: counts added up, the largest lag, the first stop reason."""
    total = dict(fields[0])
    for other in fields[1:]:
        for key in ("open", "total", "frames_client", "frames_server", "bytes", "rows"):
            total[key] += other[key]
        total["lag"] = max(total["lag"], other["lag"])
        if total["injected"] is not None:
            total["injected"] += other["injected"] or 0
        total["findings"] = _add_counts(total["findings"], other["findings"])
        total["stopped"] = total["stopped"] or other["stopped"]
    return total


def _add_counts(a: dict[str, int] | None, b: dict[str, int] | None) -> dict[str, int] | None:
    if a is None or b is None:
        return a or b
    return {key: a.get(key, 0) + b.get(key, 0) for key in {**a, **b}}


def status_line(fields: dict[str, Any], rates: Rates, workers: int = 1) -> Text:
    up, down = rates.sample(fields["frames_client"], fields["frames_server"])
    text = Text()
    text.append("● rec ", style="bold red")
    text.append(f"{fields['url']} → {fields['upstream']}  ")
    if workers > 1:
        text.append(f"{workers} workers  ", style="cyan")
    text.append(f"conns {fields['open']} open / {fields['total']} total  ", style="cyan")
    text.append(f"↑ {up:,.0f}/s ↓ {down:,.0f}/s  ")
    text.append(f"{_size(fields['bytes'])}  ")
    text.append(f"rows {fields['rows']:,}  ")
    lag = fields["lag"]
    text.append(f"lag {lag * 1000:,.0f} ms", style="yellow" if lag > 1 else "green")
    if fields["injected"] is not None:
        text.append(f"  injected {fields['injected']:,}", style="bold magenta")
    if fields["findings"] is not None:
        text.append("  ")
        text.append_text(severity_counts(fields["findings"]))
    if fields["stopped"]:
        text.append(f"  STOPPED: {fields['stopped']}", style="bold red")
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


def add_summaries(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The summaries of every worker as one (``record --workers``)."""
    total = dict(summaries[0])
    for other in summaries[1:]:
        for key in ("connections", "failed_handshakes", "frames_client", "frames_server", "bytes",
                    "rows_written", "write_retries", "injected", "findings_caused_by_injection"):
            total[key] += other[key]
        total["max_writer_lag_ms"] = max(total["max_writer_lag_ms"], other["max_writer_lag_ms"])
        total["findings"] = _add_counts(total["findings"], other["findings"])
        total["error"] = "; ".join(e for e in (total["error"], other["error"]) if e) or None
    return total


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


def print_summary(result: dict, db: Path, log_format: str, *, checked: bool, injecting: bool,
                  failure: UserError | None, fail_on: str) -> None:
    """What was recorded, at the end of `record` (one worker's, or all of them added up); exits 2 for a
    failed recording, 1 when --fail-on says the findings fail."""
    from wsproxy.core.profile import fails
    if log_format == "json":
        log_json("summary", **result)
        if failure is not None:
            log_json("error", message=str(failure))
            raise typer.Exit(failure.code)
    else:
        err.print(f"recorded {result['connections']} connection(s), "
                  f"{result['frames_client'] + result['frames_server']:,} messages "
                  f"({result['frames_client']:,} from clients, {result['frames_server']:,} from servers), "
                  f"{result['rows_written']:,} frame rows written to {shown(db)} as session {result['session_id']}",
                  highlight=False)
        if checked:
            line = severity_counts(result["findings"] or {})
            if injecting:
                line.append(f"  ({result['findings_caused_by_injection']} caused by injections)", style="magenta")
            line.append(f"  (SELECT * FROM violations WHERE session_id = {result['session_id']})", style="dim")
            err.print(line)
        if injecting:
            err.print(f"[bold magenta]{result['injected']:,} injected action(s)[/] "
                      f"(SELECT * FROM injections WHERE session_id = {result['session_id']})", highlight=False)
        if failure is not None:
            raise failure
    if fails(result.get("findings") or {}, fail_on):
        raise typer.Exit(EXIT_FOUND)
