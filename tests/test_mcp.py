"""`wsproxy mcp` through the official MCP SDK's own client over stdio: the real command in its own
process, a real recording (the demo with a misbehaving server), every tool's answer checked against
the recording read with SQL; the query tool's guard; a recording being written."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from rich.console import Console

from wsproxy.chat.faults import Faults
from wsproxy.cli.demo import run_demo

mcp = pytest.importorskip("mcp")
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

TOOLS = {"sessions", "connections", "frames", "findings", "exchanges", "query"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("mcp") / "demo.duckdb"
    asyncio.run(run_demo(db, Console(file=io.StringIO()), Faults.parse("duplicate-response,skip-event-id", 3)))
    return db


def sql(db: Path, text: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(text).fetchall()


class Agent:
    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def call(self, tool: str, **arguments: Any) -> Any:
        result = await self.session.call_tool(tool, arguments)
        assert not result.is_error, result.content
        return result.structured_content

    async def fails(self, tool: str, **arguments: Any) -> str:
        result = await self.session.call_tool(tool, arguments)
        assert result.is_error
        return " ".join(getattr(item, "text", "") for item in result.content)


async def serve(db: Path, *extra: str):
    params = StdioServerParameters(command=sys.executable, args=["-m", "wsproxy", "mcp", str(db), *extra])
    return stdio_client(params)


async def test_every_tool_answers_what_the_recording_holds(demo) -> None:
    async with await serve(demo) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        assert {tool.name for tool in listed.tools} == TOOLS
        assert all(len(tool.description or "") > 80 for tool in listed.tools)  # something an agent can act on
        agent = Agent(session)

        sessions = (await agent.call("sessions"))["sessions"]
        assert [(s["session_id"], s["connections"], s["frames"], s["findings"]) for s in sessions] == sql(demo, """
            SELECT s.session_id, (SELECT count(*) FROM connections c WHERE c.session_id = s.session_id),
                   (SELECT count(*) FROM frames f JOIN connections c USING (conn_id) WHERE c.session_id = s.session_id),
                   (SELECT count(*) FROM violations v WHERE v.session_id = s.session_id) FROM sessions s ORDER BY 1""")

        connections = (await agent.call("connections"))["connections"]
        assert [c["conn_id"] for c in connections] == [row[0] for row in sql(demo, "SELECT conn_id FROM connections ORDER BY 1")]
        conn = connections[0]["conn_id"]

        page = await agent.call("frames", conn_id=conn, limit=3, full_text=True)
        expected = sql(demo, f"SELECT seq, text FROM frames WHERE conn_id = {conn} ORDER BY seq")
        assert page["total"] == len(expected)
        assert [(row["seq"], row["text"]) for row in page["rows"]] == expected[:3]
        requests = await agent.call("frames", conn_id=conn, type="request", direction="client")
        assert requests["total"] == sql(demo, f"SELECT count(*) FROM frames WHERE conn_id = {conn} "
                                              "AND msg_type = 'request'")[0][0]

        found = await agent.call("findings")
        assert sorted((f["code"], f["conn_id"], f["seq"]) for f in found["findings"]) == sorted(
            sql(demo, "SELECT code, conn_id, seq FROM violations"))
        assert {c["code"] for c in found["by_code"]} >= {"duplicate-response", "event-id-gap"}
        gaps = await agent.call("findings", code="event-id-gap")
        assert gaps["findings"] and all(f["code"] == "event-id-gap" for f in gaps["findings"])

        pairs = await agent.call("exchanges")
        assert len(pairs["exchanges"]) == sql(demo, "SELECT count(*) FROM exchanges")[0][0]
        assert sum(p["count"] for p in pairs["by_payload_type"]) == len(pairs["exchanges"])

        answer = await agent.call("query", sql="SELECT payload_type, count(*) AS n FROM frames "
                                               "WHERE msg_type = 'request' GROUP BY ALL ORDER BY 1")
        assert answer["columns"] == ["payload_type", "n"]
        assert [(r["payload_type"], r["n"]) for r in answer["rows"]] == sql(
            demo, "SELECT payload_type, count(*) FROM frames WHERE msg_type = 'request' GROUP BY ALL ORDER BY 1")
        limited = await agent.call("query", sql="SELECT * FROM frames", limit=2)
        assert len(limited["rows"]) == 2 and limited["truncated"] is True


async def test_query_keeps_the_same_boundary_as_wsproxy_query(demo, tmp_path) -> None:
    before = sql(demo, "SELECT count(*) FROM frames")
    async with await serve(demo, "--sql-timeout", "1") as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        agent = Agent(session)
        assert "read" in (await agent.fails("query", sql="DELETE FROM frame_store")).lower()
        said = await agent.fails("query", sql="SELECT * FROM read_text('/etc/passwd')")
        assert "read_text() is refused" in said and "root:" not in said
        assert "time" in (await agent.fails("query", sql="SELECT count(*) FROM range(100000000000) a")).lower()
        assert await agent.fails("query", sql="SELEC nonsense")
        assert await agent.fails("frames", conn_id=1, where="1; DROP TABLE frames")
        assert "not in this recording" in await agent.fails("connections", session_id=99)
    assert sql(demo, "SELECT count(*) FROM frames") == before


async def test_a_recording_being_written(chat_server, tmp_path) -> None:
    from wsproxy.chat.client import ChatClient
    from wsproxy.record.session import RecordOptions, RecordSession

    session = RecordSession(RecordOptions(listen="127.0.0.1:0", upstream=chat_server.url, db=tmp_path / "live.duckdb"))
    await session.start()
    try:
        alice = await ChatClient.connect(session.url, "alice")
        await alice.subscribe()
        await alice.request("new", {"chatId": "bob", "message": "while recording"})
        await asyncio.sleep(0.6)  # written
        async with await serve(tmp_path / "live.duckdb") as (read, write), ClientSession(read, write) as mcp_session:
            await mcp_session.initialize()
            agent = Agent(mcp_session)
            rows = (await agent.call("query", sql="SELECT text FROM frames WHERE payload_type = 'new'"))["rows"]
            assert json.loads(rows[0]["text"])["payload"]["message"] == "while recording"
        await alice.close()
    finally:
        await session.stop()


def test_a_bad_recording_is_one_line_and_exit_2(tmp_path) -> None:
    import subprocess
    bad = tmp_path / "bad.duckdb"
    bad.write_text("not a database")
    run = subprocess.run([sys.executable, "-m", "wsproxy", "mcp", str(bad)], capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith("Error:") and len(run.stderr.strip().splitlines()) == 1
