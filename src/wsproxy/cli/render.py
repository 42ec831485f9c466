"""Rich output shared by the commands. Anything that came off the wire goes through ``safe``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from wsproxy.cli.app import safe
from wsproxy.core.protocol import Finding

if TYPE_CHECKING:
    from wsproxy.core.replay_plan import Divergence
    from wsproxy.inspect.check import CheckReport
    from wsproxy.inspect.timeline import TimelineRow
    from wsproxy.store.sql import QueryResult

SEVERITY_STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def finding_text(finding: Finding) -> Text:
    """One finding on one line: severity, rule, where, what."""
    text = Text()
    text.append(f"{finding.severity.upper():<7} ", style=SEVERITY_STYLES.get(finding.severity, ""))
    text.append(finding.code, style="bold")
    where = f" conn {finding.conn_id}" + ("" if finding.seq is None else f" #{finding.seq}")
    text.append(where, style="dim")
    text.append("  " + safe(finding.message))
    return text


def divergence_text(divergence: Divergence) -> Text:
    """One replay divergence on one line."""
    text = Text()
    text.append("DIVERGE ", style="magenta")
    text.append(divergence.kind, style="bold")
    if divergence.conn_id:
        text.append(f" conn {divergence.conn_id}", style="dim")
    text.append("  " + safe(divergence.message))
    return text


def severity_counts(counts: dict[str, int]) -> Text:
    """'3 errors  1 warning  0 info', coloured where non-zero."""
    text = Text()
    for severity in ("error", "warning", "info"):
        n = counts.get(severity, 0)
        label = severity if severity == "info" or n == 1 else severity + "s"
        text.append(f"{n} {label}", style=SEVERITY_STYLES[severity] if n else "dim")
        if severity != "info":
            text.append("  ")
    return text


def check_report_json(report: CheckReport) -> dict[str, Any]:
    session = report.session
    return {
        "recording": str(report.recording), "session_id": session.session_id, "label": session.label,
        "profile": report.profile, "connections": session.connections, "frames": session.frames,
        "counts": report.counts,
        "findings": [{"conn_id": f.conn_id, "seq": f.seq, "ts": _iso(f.ts), "code": f.code,
                      "severity": f.severity, "message": f.message, "request_id": f.request_id,
                      "event_id": f.event_id, "pointer": f.pointer} for f in report.findings],
    }


def print_check_report(report: CheckReport, console: Console, max_per_rule: int = 10) -> None:
    """Findings grouped by connection, then by rule (most severe first)."""
    session = report.session
    title = Text(f"{report.recording} session {session.session_id}")
    if session.label:
        title.append(f" ({safe(session.label)})")
    title.append(f": {session.connections} connection(s), {session.frames:,} frames, profile {report.profile}")
    console.print(title)
    by_conn: dict[int | None, dict[str, list[Finding]]] = {}
    for finding in report.findings:
        by_conn.setdefault(finding.conn_id, {}).setdefault(finding.code, []).append(finding)
    rank = {"error": 0, "warning": 1, "info": 2}
    for conn_id, rules in by_conn.items():
        console.print(Text(f"\nconn {conn_id}", style="bold"))
        for code, findings in sorted(rules.items(), key=lambda item: (rank.get(item[1][0].severity, 3), item[0])):
            severity = findings[0].severity
            head = Text("  ")
            head.append(f"{severity.upper():<7} ", style=SEVERITY_STYLES.get(severity, ""))
            head.append(code, style="bold")
            head.append(f" × {len(findings)}", style="dim")
            console.print(head)
            for finding in findings[:max_per_rule]:
                line = Text("    ")
                line.append("" if finding.seq is None else f"#{finding.seq} ", style="dim")
                line.append(safe(finding.message))
                console.print(line)
            if len(findings) > max_per_rule:
                console.print(Text(f"    … and {len(findings) - max_per_rule:,} more", style="dim"))
    verdict = Text("\n")
    verdict.append_text(severity_counts(report.counts))
    verdict.append("  →  ")
    verdict.append("FAIL" if report.counts["error"] else "OK",
                   style="bold red" if report.counts["error"] else "bold green")
    console.print(verdict)


def _iso(ts_us: int | None) -> str | None:
    if ts_us is None:
        return None
    return datetime.fromtimestamp(ts_us / 1_000_000, tz=UTC).isoformat(timespec="microseconds")


def print_result(result: QueryResult, fmt: str, console: Console, out: Any) -> None:
    """A query result as a rich table, CSV, JSON (types kept) or Markdown."""
    if fmt == "json":
        import msgspec
        out.write(msgspec.json.encode(result.records()).decode() + "\n")
    elif fmt == "csv":
        import csv
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.columns)
        # data stays exact for pipes and files; on a terminal, captured control characters are escaped
        cell = (lambda v: safe(_cell(v))) if getattr(out, "isatty", lambda: False)() else _cell
        for row in result.rows:
            writer.writerow(["" if v is None else cell(v) for v in row])
    elif fmt == "markdown":
        out.write("| " + " | ".join(_md(c) for c in result.columns) + " |\n")
        out.write("|" + "|".join(" --- " for _ in result.columns) + "|\n")
        for row in result.rows:
            out.write("| " + " | ".join(_md("" if v is None else _cell(v)) for v in row) + " |\n")
    else:
        from rich.table import Table
        table = Table(*result.columns, show_lines=False)
        for row in result.rows:
            table.add_row(*(Text("NULL", style="dim") if v is None else Text(safe(_cell(v))) for v in row))
        console.print(table)
        console.print(Text(f"{len(result.rows):,} row(s)", style="dim"))


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    return str(value)


def _md(text: str) -> str:
    return safe(text).replace("|", "\\|")


def timeline_text(row: TimelineRow, width: int = 100) -> Text:
    """One frame of `wsproxy show`: time, connection, direction, type, ids, short payload, latency,
    and its findings on the lines below."""
    text = Text()
    text.append(row.ts.strftime("%H:%M:%S.%f")[:-3] if hasattr(row.ts, "strftime") else str(row.ts)[11:23],
                style="dim")
    who = row.user_name or f"conn {row.conn_id}"
    text.append(f"  #{row.conn_id:<3} {safe(who)[:12]:<12} ")
    client = row.sender == "client"
    text.append("→ " if client else "← ", style="cyan" if client else "green")
    if row.kind == "close":
        text.append(f"close {row.close_code or ''} {safe(row.text or '')}", style="magenta")
    elif row.kind in ("ping", "pong"):
        text.append(row.kind, style="dim")
    elif row.kind == "binary":
        text.append(f"binary {row.size:,} bytes", style="yellow")
    else:
        kind = row.msg_type or "invalid"
        text.append(f"{kind:<8} ", style="bold" if row.msg_type else "bold red")
        text.append(f"{row.type_name or '':<10} ", style="bold")
        if row.msg_id is not None:
            text.append(f"id={safe(row.msg_id)} ", style="blue")
        if row.event_id is not None:
            text.append(f"#{row.event_id} ", style="blue")
        body = _short_body(row.text or "")
        room = max(20, width - len(text.plain) - 12)
        text.append(safe(body if len(body) <= room else body[:room - 1] + "…"), style="dim")
    if row.latency_ms is not None:
        text.append(f"  {row.latency_ms:.2f} ms", style="yellow" if row.latency_ms > 1000 else "")
    for action in (row.injected or "").splitlines():
        text.append("\n" + " " * 14 + "⚡ injected ", style="bold magenta")
        text.append(safe(action), style="magenta")
    for finding in (row.findings or "").splitlines():
        severity, _, rest = finding.partition(" ")
        text.append("\n" + " " * 14 + "⚠ ", style=SEVERITY_STYLES.get(severity, ""))
        text.append(f"{severity.upper()} ", style=SEVERITY_STYLES.get(severity, ""))
        text.append(safe(rest))
    return text


def _short_body(text: str) -> str:
    """The payload part of an envelope, or the whole text when it is not one."""
    marker = text.find('"payload":')
    return text[marker + 10:-1] if marker != -1 and text.endswith("}") else text


_KIND_STYLE = {"missing": "red", "unexpected": "yellow", "close": "magenta", "handshake": "red", "finding": "red"}


def rerun_report(console: Console, report: Any) -> None:
    """A rerun's or diff's report, grouped by connection; every value from the wire through ``safe``."""
    import msgspec
    details = report.details
    head = Text(f"wsproxy {report.title}: ", style="bold")
    head.append(safe(str(details.get("source", ""))) + f" session {details.get('session')}")
    if "upstream" in details:
        head.append(f" against {safe(details['upstream'])}, recorded as session {details['rerun_session']} "
                    f"of {safe(details['db'])}")
    elif "other_session" in details:
        head.append(" against " + (safe(details["other_source"]) + " " if "other_source" in details else "")
                    + f"session {details['other_session']}")
    console.print(head)
    for name, items in report.groups():
        line = Text(("✗ " if items else "✓ ") + safe(name), style="red" if items else "green")
        if items:
            line.append(f"  {len(items)} difference(s)", style="bold")
        console.print(line)
        for d in items:
            text = Text("    ")
            text.append(f"{d.kind:<16}", style=_KIND_STYLE.get(d.kind, "cyan"))
            if d.seq is not None:
                text.append(f"seq {d.seq:<4} ", style="dim")
            text.append(safe(d.message))
            for label, value in (("expected", d.expected), ("got", d.got)):
                if value is not None:
                    shown = value if isinstance(value, str) else msgspec.json.encode(value).decode()
                    text.append(f"\n      {label}: ", style="dim")
                    text.append(safe(shown if len(shown) <= 200 else shown[:199] + "…"))
            console.print(text, soft_wrap=True)
    if report.latency:
        table = Table(title="request -> response latency (ms)", title_justify="left", box=None)
        for column in ("payloadType", "recorded n", "p50", "p99", "rerun n", "p50", "p90", "p99"):
            table.add_column(column, justify="left" if column == "payloadType" else "right")
        for kind, sides in report.latency.items():
            rec, now = sides["recorded"], sides["rerun"]
            table.add_row(safe(kind), str(rec["count"]), _ms(rec, "p50_ms"), _ms(rec, "p99_ms"), str(now["count"]),
                          _ms(now, "p50_ms"), _ms(now, "p90_ms"), _ms(now, "p99_ms"))
        console.print(table)
    if "messages_per_second" in details:
        console.print(f"{details['messages']:,} messages in {details['elapsed_seconds']:.2f} s "
                      f"({details['messages_per_second']:,.0f}/s)" + (f", {report.copies} copies" if report.copies > 1 else ""),
                      highlight=False)
    total = len(report.differences)
    console.print(Text(f"{total} difference(s)" if total else "no differences", style="bold red" if total else "bold green"))


def _ms(side: dict, key: str) -> str:
    return f"{side[key]:.1f}" if key in side else "-"
