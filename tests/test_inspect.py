"""sessions, connections and show: summaries and the timeline, also following a live recording."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from helpers import eventually, read_until, wsproxy
from wsproxy.chat.client import ChatClient

FAULTS = Path(__file__).parent.parent / "fixtures" / "schema-v2-demo-faults.duckdb"
V1 = Path(__file__).parent.parent / "fixtures" / "schema-v1-demo.duckdb"


def test_sessions_and_connections_as_json() -> None:
    [session] = json.loads(wsproxy("sessions", str(FAULTS), "--format", "json").stdout)
    assert session["label"] == "demo with faults" and session["connections"] == 3 and session["errors"] == 2
    conns = json.loads(wsproxy("connections", str(V1), "--format", "json").stdout)
    assert [(c["conn_id"], c["url"], c["status"], c["findings"]) for c in conns] == [
        (1, "/chat?user=User1", 101, 0), (2, "/chat?user=User2", 101, 0), (3, "/chat?user=User1", 101, 0)]


def test_show_prints_the_timeline_with_latency_and_findings() -> None:
    lines = wsproxy("show", str(FAULTS)).stdout.splitlines()
    assert any("→ request  subscribe  id=User1-001" in line for line in lines)
    assert any("← response" in line and line.endswith(" ms") for line in lines)
    finding = lines.index(next(line for line in lines if "ERROR duplicate-response" in line))
    assert "← response" in lines[finding - 1]
    only_three = wsproxy("show", str(FAULTS), "3").stdout.splitlines()
    assert all(" #3 " in line for line in only_three if not line.startswith(" "))


async def test_show_follow_tails_a_recording_being_written(chat_server, proxy, tmp_path) -> None:
    session = await proxy(chat_server.url, db=tmp_path / "live.duckdb")
    first = await ChatClient.connect(session.url, "alice")
    await first.subscribe()
    await eventually(lambda: session.recorder.stats.rows_written >= 2)  # committed
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsproxy", "show", str(session.options.db), "--follow",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    try:  # read_until fails, rather than spins, if show --follow exits
        await read_until(process.stdout, "subscribe")
        await first.request("new", {"chatId": "bob", "message": "live line"})
        await read_until(process.stdout, "live line")
    finally:
        process.kill()
        await process.wait()
        await first.close()
        await session.stop()
