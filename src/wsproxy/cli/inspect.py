"""The inspecting commands: check, query, sessions, connections, show, diagram."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from wsproxy.cli import options
from wsproxy.cli.app import command, err, out, shown
from wsproxy.cli.options import (
    REPORT_FORMATS,
    TABLE_FORMATS,
    FailOnOption,
    LiveRecording,
    ProfileOption,
    Recording,
    ReportFormat,
    SessionOption,
    SpecOption,
    SqlTimeoutOption,
    TableFormat,
    choice,
    positive,
)
from wsproxy.core.errors import EXIT_FOUND, EXIT_OK, UserError

PANEL = "Inspect a recording"


@command(panel=PANEL)
def check(
    recording: Recording,
    session_id: SessionOption = None,
    profile: ProfileOption = None,
    spec: SpecOption = None,
    format: ReportFormat = "text",
    fail_on: FailOnOption = "error",
    max_per_rule: Annotated[int, typer.Option(help="Findings shown per connection and rule in text output.")] = 10,
) -> None:
    """Check a recorded session against the protocol rules, offline.

    Runs exactly the live checker of `record` over the recorded frames (with their recorded
    times) and prints the findings grouped by connection and rule; exits 1 when there are
    findings of the --fail-on severity or worse.

    Examples:

      wsproxy check demo.duckdb

      wsproxy check today.duckdb --session 3 --format json | jq '.counts'

      wsproxy check today.duckdb --profile strict.toml --fail-on warning

      wsproxy check today.duckdb --spec docs/chat-protocol.asyncapi.yaml
    """
    from wsproxy.cli.render import check_report_json, print_check_report
    from wsproxy.inspect.check import check_recording

    choice("--format", format, REPORT_FORMATS)
    options.fail_on(fail_on)
    chosen = options.profile(profile, spec)
    if format == "text" and err.is_terminal:
        with err.status("checking…") as status:
            report = check_recording(recording, session_id, chosen,
                                     progress=lambda n: status.update(f"checking… {n:,} frames"))
    else:
        report = check_recording(recording, session_id, chosen)
    if format == "json":
        import msgspec
        sys.stdout.write(msgspec.json.encode(check_report_json(report)).decode() + "\n")
    else:
        print_check_report(report, out, max_per_rule)
    raise typer.Exit(EXIT_FOUND if report.failed(fail_on) else EXIT_OK)


@command(panel=PANEL)
def query(
    recording: LiveRecording,
    sql: Annotated[str, typer.Argument(help="Read-only SQL: tables sessions, connections, frames, violations; "
                                            "views messages, exchanges, events (docs/sql.md).")],
    format: TableFormat = "table",
    sql_timeout: SqlTimeoutOption = 10.0,
) -> None:
    """Run read-only SQL on a recording.

    Works while `wsproxy record` is writing the file: the recorder answers the query. Only queries
    run (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE); anything that would write, change
    settings or read other files is refused, and a query stops after --sql-timeout seconds.

    Examples:

      wsproxy query demo.duckdb "SELECT payload_type, count(*), max(latency_ms) FROM exchanges GROUP BY 1"

      wsproxy query today.duckdb "SELECT * FROM violations" --format json | jq '.[].message'

      wsproxy query today.duckdb "SELECT user_name, count(*) FROM messages GROUP BY 1" --format markdown
    """
    from wsproxy.cli.render import print_result
    from wsproxy.store.query import run_query

    fmt = choice("--format", format, TABLE_FORMATS)
    result = run_query(recording, sql, timeout=positive("--sql-timeout", sql_timeout))
    print_result(result, fmt, out, sys.stdout)


@command(panel=PANEL)
def sessions(
    recording: Recording,
    format: TableFormat = "table",
) -> None:
    """List the sessions of a recording: when, how long, connections, messages, findings.

    Examples:

      wsproxy sessions today.duckdb

      wsproxy sessions today.duckdb --format json
    """
    from wsproxy.cli.render import print_result
    from wsproxy.inspect.timeline import sessions as list_sessions

    fmt = choice("--format", format, TABLE_FORMATS)
    print_result(list_sessions(recording), fmt, out, sys.stdout)


@command(panel=PANEL)
def connections(
    recording: Recording,
    session_id: SessionOption = None,
    format: TableFormat = "table",
) -> None:
    """List the connections of a session: URL, duration, messages each way, close, findings.

    Examples:

      wsproxy connections today.duckdb

      wsproxy connections today.duckdb --session 2 --format csv
    """
    from wsproxy.cli.render import print_result
    from wsproxy.inspect.timeline import connections as list_connections
    from wsproxy.inspect.timeline import newest_session

    fmt = choice("--format", format, TABLE_FORMATS)
    chosen = session_id if session_id is not None else newest_session(recording)
    print_result(list_connections(recording, chosen), fmt, out, sys.stdout)


@command(panel=PANEL)
def show(
    recording: LiveRecording,
    conn: Annotated[int | None, typer.Argument(help="Only this connection.")] = None,
    session_id: SessionOption = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep showing new frames as they are recorded.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many frames (without --follow).")] = 10_000,
) -> None:
    """Show a session as a coloured timeline: time, direction, type, ids, payload, latency, findings.

    Examples:

      wsproxy show demo.duckdb

      wsproxy show today.duckdb 3           (connection 3 only)

      wsproxy show today.duckdb --follow    (while `wsproxy record` writes it; Ctrl-C stops)
    """
    import time as clock

    from wsproxy.cli.render import timeline_text
    from wsproxy.inspect.timeline import newest_session, timeline

    chosen = session_id if session_id is not None else newest_session(recording)
    rows = timeline(recording, chosen, conn, limit=limit)
    for row in rows:
        out.print(timeline_text(row, out.width), soft_wrap=True)
    if not follow:
        if not rows:
            err.print(f"session {chosen} has no frames" + (f" on connection {conn}" if conn else ""))
        return
    seen = {(r.conn_id, r.seq) for r in rows}
    since = rows[-1].ts if rows else None
    while True:
        clock.sleep(0.5)
        fresh = [r for r in timeline(recording, chosen, conn, since=since) if (r.conn_id, r.seq) not in seen]
        for row in fresh:
            out.print(timeline_text(row, out.width), soft_wrap=True)
            seen.add((row.conn_id, row.seq))
        if fresh:
            since = fresh[-1].ts  # timeline(since=) looks a little further back: workers' writes interleave


@command(panel=PANEL)
def diagram(
    recording: Recording,
    session_id: SessionOption = None,
    conns: Annotated[str | None, typer.Option("--connections", help="Only these connections, e.g. 1,3.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many messages.")] = 200,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Write to FILE: .svg (drawn by wsproxy), .html (a page with the SVG, works "
                               "offline), .png/.pdf (needs the Mermaid CLI, mmdc), anything else: Mermaid text.")] = None,
) -> None:
    """Draw a session as a sequence diagram (requests ->>, responses -->>, events --), findings as notes).

    Prints the Mermaid text, which GitHub, GitLab and many editors render; -o writes a file: .svg and
    .html are drawn by wsproxy itself and need no network.

    Examples:

      wsproxy diagram demo.duckdb

      wsproxy diagram demo.duckdb -o demo.html          (open it in a browser)

      wsproxy diagram today.duckdb --connections 1,3 --limit 50 -o flow.svg
    """
    import shutil
    import subprocess
    import tempfile

    from wsproxy.inspect.diagram import build, select, to_mermaid
    from wsproxy.inspect.sequence_svg import html_page, sequence_svg
    from wsproxy.inspect.timeline import newest_session, timeline

    try:
        wanted = {int(part) for part in conns.split(",")} if conns else None
    except ValueError:
        raise UserError("--connections must be connection ids separated by commas, e.g. 1,3") from None
    chosen = session_id if session_id is not None else newest_session(recording)
    drawn = build(select(timeline(recording, chosen), wanted), limit)
    text = to_mermaid(drawn)
    if output is None:
        sys.stdout.write(text)
        return
    suffix = output.suffix.lower()
    if suffix in (".png", ".pdf"):
        mmdc = shutil.which("mmdc")
        if mmdc is None:
            raise UserError(f"rendering {suffix} needs the Mermaid CLI: npm install -g @mermaid-js/mermaid-cli "
                            f"(or write -o {output.with_suffix('.svg')}, which wsproxy draws itself)")
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "diagram.mmd"
            source.write_text(text)
            done = subprocess.run([mmdc, "-i", str(source), "-o", str(output)], capture_output=True, text=True)
        if done.returncode != 0:
            raise UserError(f"mmdc could not render {output}: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    elif suffix == ".svg":
        output.write_text(sequence_svg(drawn), encoding="utf-8")
    elif suffix in (".html", ".htm"):
        output.write_text(html_page(drawn, f"{recording.name} session {chosen}"), encoding="utf-8")
    else:
        output.write_text(text, encoding="utf-8")
    err.print(f"wrote {shown(output)}", highlight=False)
