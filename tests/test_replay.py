"""`wsproxy replay` over real sockets: the scripted users get what the real server gave them.

Record the overview flow through `record` in front of the reference server; replay it (from DuckDB
and from a JSONL export) behind another `record`; the users receive the same messages in the same
order (ids and timestamps aside), nobody diverges, and `check` passes on the replayed traffic.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from datetime import UTC
from pathlib import Path

import aiohttp
import pytest

from helpers import recorded
from wsproxy.chat.client import ChatClient, overview_flow, run_load
from wsproxy.core.replay_plan import ReplayPlan
from wsproxy.inspect.check import check_recording
from wsproxy.inspect.jsonl import write_jsonl
from wsproxy.replay.server import start_replay
from wsproxy.replay.source import load_recording, save_divergences
from wsproxy.store.recording import open_recording


async def record_overview(chat_server, proxy, db: Path) -> Path:
    session = await proxy(chat_server.url, db=db)
    await overview_flow(session.url)
    await session.stop()
    return db


def server_messages(db: Path, session_id: int = 1) -> dict[str, list]:
    """Per user connection (in order), the server's text messages without ids and timestamps."""
    rows = recorded(db, "SELECT c.conn_id, c.query, f.text FROM frames f JOIN connections c USING (conn_id) "
                        "WHERE c.session_id = ? AND f.sender = 'server' AND f.kind = 'text' ORDER BY c.conn_id, f.seq",
                    [session_id])
    result: dict[str, list] = {}
    for conn_id, query, text in rows:
        body = json.loads(text)
        if body.get("type") == "response":
            body.pop("id")
        body.pop("timestamp")
        result.setdefault(f"{conn_id}:{query}", []).append(body)
    return result


async def replay_through_record(source: Path, proxy, db: Path, **plan_options) -> tuple:
    session = load_recording(source)
    running = await start_replay(session, ReplayPlan(session, **plan_options))
    proxy_session = await proxy(running.url, db=db)
    return running, proxy_session


@pytest.mark.parametrize("form", ["duckdb", "jsonl"])
async def test_the_overview_flow_replays_identically_and_checks_clean(form, chat_server, proxy, tmp_path) -> None:
    original = await record_overview(chat_server, proxy, tmp_path / "original.duckdb")
    source = original
    if form == "jsonl":
        source = tmp_path / "original.jsonl"
        con = open_recording(original)
        with source.open("w") as out:
            write_jsonl(con, None, out)
        con.close()
    running, proxy_session = await replay_through_record(source, proxy, tmp_path / "replayed.duckdb")
    await overview_flow(proxy_session.url)
    await proxy_session.stop()
    await running.stop()
    assert running.server.divergences == []
    assert server_messages(tmp_path / "replayed.duckdb") == server_messages(original)
    assert check_recording(tmp_path / "replayed.duckdb").findings == []  # the round trip keeps pairing and order


async def test_request_ids_are_the_live_clients_own(chat_server, proxy, tmp_path) -> None:
    original = await record_overview(chat_server, proxy, tmp_path / "original.duckdb")
    session = load_recording(original)
    running = await start_replay(session, ReplayPlan(session))
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{running.url}/chat?user=User1") as ws:
        await ws.send_str(json.dumps({"type": "request", "timestamp": time.time(), "id": "my-own-id-42",
                                      "payloadType": "subscribe", "payload": {}}))
        answer = json.loads((await ws.receive(timeout=5)).data)
    await running.stop()
    assert answer["type"] == "response" and answer["id"] == "my-own-id-42"
    assert abs(answer["timestamp"] - time.time()) < 5  # shifted to now


async def test_two_clients_in_the_opposite_order_still_see_causality(chat_server, tmp_path, proxy) -> None:
    # recorded: User1 connects and subscribes, then User2; User2 sends User1 a message
    session = await proxy(chat_server.url, db=tmp_path / "two.duckdb")
    one = await ChatClient.connect(session.url, "User1")
    await one.subscribe()
    two = await ChatClient.connect(session.url, "User2")
    await two.subscribe()
    await two.request("new", {"chatId": "User1", "message": "hello"})
    await one.wait_event("new")
    await one.close()
    await two.close()
    await session.stop()
    recording = load_recording(tmp_path / "two.duckdb")
    running = await start_replay(recording, ReplayPlan(recording))
    # replayed: User2 first, then User1 — the event must still follow User2's request, not precede it
    two = await ChatClient.connect(running.url, "User2")
    await two.subscribe()
    one = await ChatClient.connect(running.url, "User1")
    await one.subscribe()
    await asyncio.sleep(0.2)
    assert not [m for m in one.received if m.event_type == "new"]  # nothing before User2 sends it
    await two.request("new", {"chatId": "User1", "message": "hello"})
    event = await one.wait_event("new")
    assert event.payload.message == "hello"
    await one.close()
    await two.close()
    await running.stop()
    assert running.server.divergences == []


async def test_strict_mismatch_answers_replay_mismatch_and_is_reported(chat_server, proxy, tmp_path) -> None:
    original = await record_overview(chat_server, proxy, tmp_path / "original.duckdb")
    session = load_recording(original)
    running = await start_replay(session, ReplayPlan(session))
    client = await ChatClient.connect(running.url, "User1")
    answer = await client.request("new", {"chatId": "User2", "message": "not in the recording"}, check=False)
    await client.close()
    await running.stop()
    assert answer["error"]["code"] == "replay_mismatch"
    assert "expected request subscribe" in answer["error"]["message"]
    kinds = [d.kind for d in running.server.divergences]
    assert kinds[0] == "mismatch" and "closed-early" in kinds
    where = save_divergences(original, session.session_id, 0, running.server.divergences, None)
    assert "replay_divergences" in where
    assert recorded(original, "SELECT kind FROM replay_divergences ORDER BY ts LIMIT 1") == [("mismatch",)]


def write_timed_recording(path: Path, gaps_ms: list[int]) -> None:
    """A JSONL recording: one connection; after it opens, the server sends events at the given gaps."""
    start = 1_700_000_000.0
    lines = [{"record": "wsproxy-jsonl", "version": 1},
             {"record": "session", "session_id": 1, "label": "timed"},
             {"record": "connection", "conn_id": 1, "opened_at": _iso(start), "path": "/chat", "query": "user=T",
              "status": 101}]
    t = start
    for seq, gap in enumerate(gaps_ms, 1):
        t += gap / 1000
        lines.append({"record": "frame", "conn_id": 1, "seq": seq, "ts": _iso(t), "sender": "server", "kind": "text",
                      "text": json.dumps({"type": "event", "timestamp": t, "eventType": "typing",
                                          "payload": {"userId": f"u{seq}"}})})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _iso(seconds: float) -> str:
    from datetime import datetime
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="microseconds")


async def arrival_gaps(url: str, count: int) -> list[float]:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat?user=T") as ws:
        start = time.perf_counter()
        times = []
        for _ in range(count):
            await ws.receive(timeout=10)
            times.append(time.perf_counter() - start)
    return [b - a for a, b in zip([0.0, *times], times, strict=False)]


@pytest.mark.parametrize("timing,expected", [(1.0, [0.1, 0.3, 0.2]), (0.5, [0.05, 0.15, 0.1])])
async def test_recorded_timing_honours_the_gaps(timing, expected, tmp_path) -> None:
    path = tmp_path / "timed.jsonl"
    write_timed_recording(path, [100, 300, 200])
    session = load_recording(path)
    running = await start_replay(session, ReplayPlan(session, scale=timing))
    gaps = await arrival_gaps(running.url, 3)
    await running.stop()
    for got, want in zip(gaps, expected, strict=True):
        assert want - 0.02 <= got <= want + 0.15, gaps  # never early; late only by scheduling noise


async def test_asap_timing_is_fast(tmp_path) -> None:
    path = tmp_path / "timed.jsonl"
    write_timed_recording(path, [1000, 3000, 2000])
    session = load_recording(path)
    running = await start_replay(session, ReplayPlan(session))
    gaps = await arrival_gaps(running.url, 3)
    await running.stop()
    assert sum(gaps) < 0.5, gaps


@pytest.mark.slow
async def test_100_clients_replaying_at_once(chat_server, proxy, tmp_path) -> None:
    session = await proxy(chat_server.url, db=tmp_path / "load.duckdb")
    original = await run_load(session.url, users=100, messages=5, window=5)
    await session.stop()
    recording = load_recording(tmp_path / "load.duckdb")
    running = await start_replay(recording, ReplayPlan(recording))
    replayed = await run_load(running.url, users=100, messages=5, window=5)
    await running.stop()
    assert running.server.divergences == []
    assert replayed.responses == original.responses == 500
    assert replayed.events_received == original.events_received


async def test_a_client_beyond_the_recording_is_refused_with_503(chat_server, proxy, tmp_path) -> None:
    original = await record_overview(chat_server, proxy, tmp_path / "original.duckdb")
    session = load_recording(original)
    running = await start_replay(session, ReplayPlan(session))
    clients = [await ChatClient.connect(running.url, "User1") for _ in range(2)]
    await ChatClient.connect(running.url, "User2")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{running.url}/chat?user=User3")
    assert refused.value.status == 503
    for client in clients:
        await client.close()
    await running.stop()
    assert [d.kind for d in running.server.divergences][-1] == "refused" or \
        "refused" in [d.kind for d in running.server.divergences]


def test_jsonl_export_round_trips_into_the_same_session(tmp_path) -> None:
    from wsproxy.inspect.jsonl import session_from_jsonl
    from wsproxy.store.read import load_session
    golden = Path(__file__).parent.parent / "fixtures" / "schema-v2-demo-faults.duckdb"
    con = open_recording(golden)
    buffer = io.StringIO()
    write_jsonl(con, None, buffer)
    (tmp_path / "x.jsonl").write_text(buffer.getvalue())
    assert session_from_jsonl(tmp_path / "x.jsonl") == load_session(con, 1)  # binary frames included
    con.close()


async def test_pings_are_answered_like_a_normal_server_and_header_binding(tmp_path) -> None:
    path = tmp_path / "timed.jsonl"
    write_timed_recording(path, [10])
    lines = path.read_text().splitlines()
    connection = json.loads(lines[2])
    connection["request_headers"] = {"X-User": "tess"}
    lines[2] = json.dumps(connection)
    path.write_text("\n".join(lines) + "\n")
    session = load_recording(path)
    running = await start_replay(session, ReplayPlan(session, bind_key="header:x-user"))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(f"{running.url}/any", headers={"X-User": "someone-else"})
        async with http.ws_connect(f"{running.url}/any", headers={"X-User": "tess"}, autoping=False) as ws:
            assert json.loads((await ws.receive(timeout=5)).data)["payload"] == {"userId": "u1"}
            await ws.ping(b"are you there")
            pong = await ws.receive(timeout=5)
            assert pong.type == aiohttp.WSMsgType.PONG and pong.data == b"are you there"
    await running.stop()
