"""``wsproxy demo``: the chat server, the recording proxy and the scripted users, end to end."""

from __future__ import annotations

from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

from wsproxy.chat.client import ChatError, overview_flow
from wsproxy.chat.server import start_chat_server
from wsproxy.errors import UserError
from wsproxy.record import RecordOptions, RecordSession

EXAMPLE_QUERY = """SELECT c.query AS who, f.sender, f.msg_type, coalesce(f.payload_type, f.event_type) AS kind,
       count(*) AS messages
FROM frames f JOIN connections c USING (conn_id)
WHERE c.session_id = (SELECT max(session_id) FROM sessions) AND f.kind = 'text'
GROUP BY ALL ORDER BY who, sender DESC, msg_type, kind"""


async def run_demo(db: Path, console: Console) -> None:
    server = await start_chat_server("127.0.0.1", 0)
    session = RecordSession(RecordOptions(listen="127.0.0.1:0", upstream=server.url, db=db, label="demo"))
    try:
        await session.start()
        console.print(f"chat server [bold]{server.url}[/]  ←  recording proxy [bold]{session.url}[/]  ←  User1, User2")
        try:
            await overview_flow(session.url)
        except ChatError as exc:
            raise UserError(f"the scripted flow failed through the proxy: {exc}") from None
    finally:
        await session.stop()
        await server.stop()
    print_summary(db, session.recorder.session_id, console)


def print_summary(db: Path, session_id: int, console: Console) -> None:
    with duckdb.connect(str(db), read_only=True) as con:
        conns, frames, by_type = con.execute(
            "SELECT (SELECT count(*) FROM connections WHERE session_id = $s), "
            "(SELECT count(*) FROM frames JOIN connections USING (conn_id) WHERE session_id = $s), "
            "(SELECT string_agg(t || ' ' || n, ', ' ORDER BY t) FROM (SELECT coalesce(msg_type, kind) t, count(*) n "
            " FROM frames JOIN connections USING (conn_id) WHERE session_id = $s GROUP BY 1))",
            {"s": session_id}).fetchone()
        result = con.execute(EXAMPLE_QUERY)
        columns = [d[0] for d in result.description]
        rows = result.fetchall()
    console.print(f"\n[bold green]Recorded[/] session {session_id} into [bold]{db}[/]: "
                  f"{conns} connections, {frames} frames ({by_type})")
    console.print("\nExample query:\n", EXAMPLE_QUERY, markup=False, highlight=False)
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
    console.print("Go on:\n"
                  f"  duckdb {db} \"SELECT * FROM frames LIMIT 20\"   (or any DuckDB client)\n"
                  "  wsproxy chat-server --port 8765 &   then   wsproxy record --upstream ws://127.0.0.1:8765\n"
                  "  and point your own client at ws://127.0.0.1:8080/chat?user=NAME", markup=False, highlight=False)
