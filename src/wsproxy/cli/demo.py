"""``wsproxy demo``: the chat server, the recording proxy and the scripted users, end to end."""

from __future__ import annotations

from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table
from rich.text import Text

from wsproxy.chat.client import ChatError, overview_flow
from wsproxy.chat.faults import Faults
from wsproxy.chat.server import start_chat_server
from wsproxy.cli.app import shown
from wsproxy.cli.render import severity_counts
from wsproxy.cli.status import show_findings
from wsproxy.core.errors import UserError
from wsproxy.record.session import RecordOptions, RecordSession

EXAMPLE_QUERY = """SELECT c.query AS who, f.sender, f.msg_type, coalesce(f.payload_type, f.event_type) AS kind,
       count(*) AS messages
FROM frames f JOIN connections c USING (conn_id)
WHERE c.session_id = (SELECT max(session_id) FROM sessions) AND f.kind = 'text'
GROUP BY ALL ORDER BY who, sender DESC, msg_type, kind"""


async def run_demo(db: Path, console: Console, faults: Faults | None = None) -> None:
    server = await start_chat_server("127.0.0.1", 0, faults)
    label = "demo" if faults is None or not faults.rates else "demo with faults"
    session = RecordSession(RecordOptions(listen="127.0.0.1:0", upstream=server.url, db=db, label=label))
    show_findings(session, console)
    try:
        await session.start()
        console.print(f"chat server [bold]{shown(server.url)}[/]  ←  recording proxy [bold]{shown(session.url)}[/]  ←  "
                      "User1, User2", soft_wrap=True)
        if faults is not None and faults.rates:
            console.print(f"the server misbehaves on purpose ({', '.join(faults.rates)}): findings show as they happen",
                          soft_wrap=True)
        try:
            await overview_flow(session.url, timeout=1.0 if faults is not None and faults.rates else 5.0)
        except ChatError as exc:
            if faults is None or not faults.rates:
                raise UserError(f"the scripted flow failed through the proxy: {exc}") from None
            console.print(f"[dim]the scripted users gave up: {shown(exc)}[/]")
    finally:
        await session.stop()
        await server.stop()
    print_summary(db, session.recorder.session_id, console)


def write_diagram(db: Path, session_id: int) -> Path:
    """The session as a page that renders its sequence diagram, next to the recording."""
    from wsproxy.inspect.diagram import build
    from wsproxy.inspect.sequence_svg import html_page
    from wsproxy.inspect.timeline import timeline
    path = db.with_suffix(".html")
    path.write_text(html_page(build(timeline(db, session_id)), f"{db.name} session {session_id}"), encoding="utf-8")
    return path


def print_summary(db: Path, session_id: int, console: Console) -> None:
    with duckdb.connect(str(db), read_only=True) as con:
        conns, frames, by_type = con.execute(
            "SELECT (SELECT count(*) FROM connections WHERE session_id = $s), "
            "(SELECT count(*) FROM frames JOIN connections USING (conn_id) WHERE session_id = $s), "
            "(SELECT string_agg(t || ' ' || n, ', ' ORDER BY t) FROM (SELECT coalesce(msg_type, kind) t, count(*) n "
            " FROM frames JOIN connections USING (conn_id) WHERE session_id = $s GROUP BY 1))",
            {"s": session_id}).fetchall()[0]
        counts = dict(con.execute("SELECT severity, count(*) FROM violations WHERE session_id = ? GROUP BY 1",
                                  [session_id]).fetchall())
        result = con.execute(EXAMPLE_QUERY)
        columns = [d[0] for d in result.description]
        rows = result.fetchall()
    console.print(f"\n[bold green]Recorded[/] session {session_id} into [bold]{shown(db)}[/]: "
                  f"{conns} connections, {frames} frames ({by_type})", soft_wrap=True)
    line = Text("Protocol check: ")
    line.append_text(severity_counts(counts))
    console.print(line)
    # soft_wrap: commands and SQL stay whole lines to copy, whatever the width (80 columns in a pipe)
    console.print("\nExample query:\n" + EXAMPLE_QUERY, markup=False, highlight=False, soft_wrap=True)
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
    diagram = write_diagram(db, session_id)
    console.print(f"Sequence diagram: [bold]{shown(diagram)}[/] (open it in a browser; "
                  f"`wsproxy diagram {shown(db)}` prints the Mermaid text)", soft_wrap=True)
    next_steps = [
        (f"wsproxy check {db}", "the findings, grouped by connection and rule"),
        (f"wsproxy ui {db}", "browse it in a web page: connections, frames, pairs, findings, charts"),
        (f"wsproxy show {db}", "the timeline, with latency and findings"),
        (f"wsproxy replay {db}", "serve it back to your client as a mock server"),
        (f'duckdb {db} "SELECT * FROM exchanges"', "requests paired with responses, with latency"),
        (f'duckdb {db} "SELECT * FROM frames LIMIT 20"', "(or any DuckDB client)"),
        ("wsproxy demo --faults duplicate-response,skip-event-id,binary", "watch the checker catch a misbehaving server"),
    ]
    width = max(len(command) for command, _ in next_steps)
    console.print("Go on:\n" + "".join(f"  {command:<{width}}   {what}\n" for command, what in next_steps)
                  + "  wsproxy chat-server --port 8765 &   then   wsproxy record --upstream ws://127.0.0.1:8765\n"
                  "  and point your own client at ws://127.0.0.1:8080/chat?user=NAME", markup=False, highlight=False,
                  soft_wrap=True)
