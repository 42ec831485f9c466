"""The web view's API, without a browser: a real recording (the demo with a misbehaving server),
the real UiServer on 127.0.0.1, real HTTP and WebSocket clients; every answer checked against the
recording itself, read with SQL."""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from rich.console import Console

from helpers import recorded
from wsproxy.chat.client import ChatClient
from wsproxy.chat.faults import Faults
from wsproxy.cli.demo import run_demo
from wsproxy.ui import views
from wsproxy.ui.filters import FilterError, FrameFilter
from wsproxy.ui.reader import FileReader, RecorderReader
from wsproxy.ui.server import UiServer

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture(scope="module")
def faulty_demo(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("ui") / "demo.duckdb"
    asyncio.run(run_demo(db, Console(file=io.StringIO()), Faults.parse("duplicate-response,skip-event-id", 3)))
    return db


@pytest.fixture
async def served(faulty_demo):
    reader = FileReader(faulty_demo)
    server = UiServer(reader)
    await server.start()
    async with aiohttp.ClientSession(headers={"X-Wsproxy-Token": server.token}) as http:
        yield server, http
    await server.stop()
    reader.close()


def base(server: UiServer) -> str:
    return server.url.split("/?")[0]


async def get(http: aiohttp.ClientSession, url: str, **params) -> dict:
    async with http.get(url, params=params) as response:
        body = await response.json()
        assert response.status == 200, body
        return body


async def test_every_request_needs_the_token(served) -> None:
    server, _ = served
    async with aiohttp.ClientSession() as anonymous:
        for path in ("/", "/connections/1", "/static/app.js", "/api/summary", "/api/diagram.svg"):
            async with anonymous.get(base(server) + path) as response:
                assert response.status == 403, path
                assert "token" in await response.text()
            async with anonymous.get(base(server) + path, params={"token": "wrong"}) as response:
                assert response.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await anonymous.ws_connect(base(server) + "/api/live")
    # the URL printed (token in the query) opens the page and leaves a cookie for its assets and API
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(server.url) as page:
            assert page.status == 200 and "text/html" in page.headers["Content-Type"]
            policy = page.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "default-src 'none'" in policy
            assert page.headers["X-Content-Type-Options"] == "nosniff"
        for path in ("/static/connection.js", "/api/summary"):
            async with browser.get(base(server) + path) as response:
                assert response.status == 200, path


async def test_summary_counts_what_the_recording_holds(served, faulty_demo) -> None:
    server, http = served
    summary = await get(http, base(server) + "/api/summary")
    session = recorded(faulty_demo, "SELECT max(session_id) FROM sessions")[0][0]
    assert summary["session"] == session
    expected = recorded(faulty_demo, """
        SELECT c.conn_id, count(*) FILTER (WHERE f.sender = 'client' AND f.kind IN ('text', 'binary')),
               count(*) FILTER (WHERE f.sender = 'server' AND f.kind IN ('text', 'binary')), c.close_code
        FROM connections c LEFT JOIN frames f USING (conn_id) WHERE c.session_id = ? GROUP BY ALL ORDER BY 1""", [session])
    got = [(c["conn_id"], c["sent"], c["received"], c["close_code"]) for c in summary["connections"]]
    assert got == [tuple(row) for row in expected]
    findings = dict(recorded(faulty_demo, "SELECT severity, count(*) FROM violations WHERE session_id = ? GROUP BY 1", [session]))
    assert sum(c["errors"] for c in summary["connections"]) == findings.get("error", 0) > 0
    assert summary["connections"][0]["user_name"] == "User1"


async def test_charts_add_up(served, faulty_demo) -> None:
    server, http = served
    charts = await get(http, base(server) + "/api/charts")
    rate = charts["rate"]
    for sender in ("client", "server"):
        messages = recorded(faulty_demo, "SELECT count(*) FROM frames WHERE sender = ? AND kind IN ('text', 'binary')",
                            [sender])[0][0]
        assert round(sum(rate[sender]) * rate["bucket_s"]) == messages
    types = recorded(faulty_demo, "SELECT payload_type, count(*) FROM exchanges GROUP BY 1")
    assert {row["payload_type"]: row["requests"] for row in charts["latency"]} == dict(types)
    assert all(row["p50"] <= row["p90"] <= row["p99"] <= row["max"] for row in charts["latency"] if row["answered"])
    rules = recorded(faulty_demo, "SELECT code, count(*) FROM violations GROUP BY 1")
    assert {row["code"]: row["count"] for row in charts["rules"]} == dict(rules)
    gap = next(row for row in charts["rules"] if row["code"] == "event-id-gap")
    assert gap["when"] == "a stateful event id that skips ids (lost events)"


async def test_frames_page_in_order_with_pairs_and_findings(served, faulty_demo) -> None:
    server, http = served
    conn = recorded(faulty_demo, "SELECT conn_id FROM violations WHERE code = 'event-id-gap' LIMIT 1")[0][0]
    url = f"{base(server)}/api/connections/{conn}/frames"
    total = recorded(faulty_demo, "SELECT count(*) FROM frames WHERE conn_id = ?", [conn])[0][0]
    first = await get(http, url, offset=0, limit=5)
    rest = await get(http, url, offset=5, limit=500)
    rows = first["rows"] + rest["rows"]
    assert first["total"] == rest["total"] == total == len(rows)
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    pairs = recorded(faulty_demo, "SELECT request_seq, response_seq, latency_ms FROM exchanges WHERE conn_id = ?", [conn])
    by_seq = {r["seq"]: r for r in rows}
    for request_seq, response_seq, latency in pairs:
        assert by_seq[request_seq]["pair"] == {"seq": response_seq, "latency_ms": latency}
        if response_seq is not None:
            assert by_seq[response_seq]["pair"] == {"seq": request_seq, "latency_ms": latency}
    findings = recorded(faulty_demo, "SELECT seq, code FROM violations WHERE conn_id = ? AND seq IS NOT NULL", [conn])
    assert sorted((r["seq"], f["code"]) for r in rows for f in r["findings"]) == sorted(findings)
    gap = next(f for r in rows for f in r["findings"] if f["code"] == "event-id-gap")
    assert gap["when"] and gap["severity"] == "error"
    text = recorded(faulty_demo, "SELECT text FROM frames WHERE conn_id = ? AND seq = ?", [conn, rows[0]["seq"]])[0][0]
    payload = recorded(faulty_demo, "SELECT payload::VARCHAR FROM frames WHERE conn_id = ? AND seq = ?",
                       [conn, rows[0]["seq"]])[0][0]
    assert rows[0]["preview"] == payload[:240] and payload in text  # the payload: type and id have columns


@pytest.mark.parametrize("query, where", [
    ({"direction": "client"}, "sender = 'client'"),
    ({"type": "event"}, "msg_type = 'event'"),
    ({"type": "close"}, "kind = 'close'"),
    ({"name": "new"}, "coalesce(payload_type, event_type) = 'new'"),
    ({"q": "HELLO"}, "contains(lower(text), 'hello')"),
    ({"finding": "any"}, "EXISTS (SELECT 1 FROM violations v WHERE v.conn_id = frames.conn_id AND v.seq = frames.seq)"),
    ({"where": "size > 100 AND sender = 'server' -- a comment ends with its line"}, "size > 100 AND sender = 'server'"),
    ({"direction": "server", "type": "response", "q": "messageId"},
     "sender = 'server' AND msg_type = 'response' AND text LIKE '%messageId%'"),
])
async def test_filters_narrow_as_sql_would(served, faulty_demo, query, where) -> None:
    server, http = served
    for conn in (1, 2):
        answer = await get(http, f"{base(server)}/api/connections/{conn}/frames", limit=500, **query)
        expected = recorded(faulty_demo, f"SELECT seq FROM frames WHERE conn_id = ? AND {where} ORDER BY seq", [conn])
        assert [r["seq"] for r in answer["rows"]] == [row[0] for row in expected]
        assert answer["total"] == len(expected)


async def test_bad_numbers_in_the_url_are_400_not_500(served) -> None:
    server, http = served
    for path, params in (("/api/summary", {"session": "²"}), ("/api/summary", {"session": "1_0"}),
                         ("/api/timeline", {"limit": "x"}), ("/api/diagram.svg", {"session": "²"})):
        async with http.get(base(server) + path, params=params) as response:
            assert response.status == 400 and "is not a whole number" in (await response.json())["error"], path


async def test_bad_filters_are_refused_in_one_line(served) -> None:
    server, http = served
    url = f"{base(server)}/api/connections/1/frames"
    for params, message in [({"where": "1=1; DROP TABLE frame_store"}, "must be one condition"),
                            ({"where": "1=1); DROP TABLE frame_store; SELECT (1"}, "must be one condition"),
                            ({"where": "no_such_column = 1"}, "the query failed"),
                            ({"where": "EXISTS (SELECT * FROM read_text('/etc/passwd'))"}, "read_text() is refused"),
                            ({"direction": "sideways"}, "direction"),
                            ({"type": "telegram"}, "type")]:
        async with http.get(url, params=params) as response:
            body = await response.json()
            assert response.status == 400 and message in body["error"] and "\n" not in body["error"], body
    async with http.get(url, params={"offset": "x"}) as response:
        assert response.status == 400
    async with http.get(f"{base(server)}/api/connections/999/frames/1") as response:
        assert response.status == 400 and "no frame" in (await response.json())["error"]
    async with http.get(f"{base(server)}/api/summary", params={"session": "99"}) as response:
        assert response.status == 400 and "session 99" in (await response.json())["error"]


async def test_one_frame_whole_and_where_it_is(served, faulty_demo) -> None:
    server, http = served
    seq, text = recorded(faulty_demo, "SELECT seq, text FROM frames WHERE conn_id = 2 AND msg_type = 'event' "
                                      "ORDER BY seq DESC LIMIT 1")[0]
    frame = await get(http, f"{base(server)}/api/connections/2/frames/{seq}")
    assert frame["text"] == text and json.loads(frame["pretty"]) == json.loads(text) and "\n  " in frame["pretty"]
    index = await get(http, f"{base(server)}/api/connections/2/position", seq=seq, type="event")
    before = recorded(faulty_demo, "SELECT count(*) FROM frames WHERE conn_id = 2 AND msg_type = 'event' AND seq < ?", [seq])
    assert index["index"] == before[0][0]
    info = await get(http, f"{base(server)}/api/connections/2")
    assert "new" in info["names"] and info["user_name"] == "User2"
    assert info["finding_codes"] == sorted({row[0] for row in recorded(
        faulty_demo, "SELECT code FROM violations WHERE conn_id = 2")})


async def test_diagram_is_svg_of_the_chosen_connections(served) -> None:
    server, http = served
    async with http.get(f"{base(server)}/api/diagram.svg", params={"conns": "2", "limit": "5"}) as response:
        svg = await response.text()
        assert response.status == 200 and response.content_type == "image/svg+xml"
    assert svg.startswith("<svg") and 'class="sequence-diagram"' in svg and "User2 #2" in svg and "User1 #1" not in svg
    assert "more messages" in svg  # cut at the limit, and says so


async def test_timeline_is_newest_first(served, faulty_demo) -> None:
    server, http = served
    rows = await get(http, f"{base(server)}/api/timeline", limit=10)
    newest = recorded(faulty_demo, "SELECT conn_id, seq FROM frames ORDER BY ts DESC, conn_id DESC, seq DESC LIMIT 10")
    assert [(r["conn_id"], r["seq"]) for r in rows] == [tuple(row) for row in newest]


async def test_old_recordings_open(tmp_path) -> None:
    for name in ("schema-v1-demo.duckdb", "schema-v4-demo.duckdb"):
        reader = FileReader(FIXTURES / name)
        server = UiServer(reader)
        await server.start()
        try:
            async with aiohttp.ClientSession(headers={"X-Wsproxy-Token": server.token}) as http:
                summary = await get(http, base(server) + "/api/summary")
                assert summary["connections"], name
                await get(http, base(server) + "/api/charts")
                page = await get(http, f"{base(server)}/api/connections/{summary['connections'][0]['conn_id']}/frames")
                assert page["rows"] and page["total"] == len(page["rows"])
        finally:
            await server.stop()
            reader.close()


def test_filter_sql_is_parameters_not_text() -> None:
    clause, params = FrameFilter.from_query({"direction": "client", "q": "o'brien", "finding": "event-id-gap"}).sql()
    assert "o'brien" not in clause and params == ["client", "event-id-gap", "o'brien"]
    assert FrameFilter.from_query({}).sql() == ("", [])
    clause, _ = FrameFilter.from_query({"where": "size > 1 -- note"}).sql()
    assert clause.endswith("-- note\n)")
    with pytest.raises(FilterError, match="longer than"):
        FrameFilter.from_query({"where": "x" * 5000})


async def test_live_socket_tells_when_the_recording_grows(chat_server, proxy) -> None:
    session = await proxy(chat_server.url)
    reader = RecorderReader(session.sql)
    server = UiServer(reader, session.recorder.session_id)
    await server.start()
    try:
        async with aiohttp.ClientSession(headers={"X-Wsproxy-Token": server.token}) as http:
            for origin in ("http://evil.example", base(server).replace("http://", "https://")):  # scheme too
                with pytest.raises(aiohttp.WSServerHandshakeError):  # a page of another origin may not listen
                    await http.ws_connect(f"{base(server)}/api/live", headers={"Origin": origin})
            live = await http.ws_connect(f"{base(server)}/api/live?token={server.token}")
            first = json.loads((await live.receive(timeout=5)).data)["version"]
            alice = await ChatClient.connect(session.url, "alice")
            await alice.subscribe()
            loop = asyncio.get_running_loop()
            sent_at = loop.time()
            while True:
                now = json.loads((await live.receive(timeout=5)).data)["version"]
                if now[0] >= first[0] + 2:  # the subscribe and its response are in the file
                    break
            assert loop.time() - sent_at < 5
            summary = await get(http, base(server) + "/api/summary")
            [conn] = summary["connections"]
            assert conn["user_name"] == "alice" and conn["closed_us"] is None and conn["sent"] == 1
            await alice.close()
            await live.close()
    finally:
        await server.stop()
        reader.close()


async def test_ui_follows_a_recording_another_process_writes(chat_server, tmp_path) -> None:
    from helpers import free_port, start_recorder
    db = tmp_path / "live.duckdb"
    port = free_port()
    recorder = await start_recorder(chat_server.url, db, port)
    ui = None
    try:
        ui = await asyncio.create_subprocess_exec(sys.executable, "-m", "wsproxy", "ui", str(db), "--listen", "127.0.0.1:0",
                                                  stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        url = (await asyncio.wait_for(ui.stdout.readline(), 20)).decode().strip()
        assert url.startswith("http://127.0.0.1:") and "/?token=" in url
        alice = await ChatClient.connect(f"ws://127.0.0.1:{port}", "alice")
        await alice.subscribe()
        async with aiohttp.ClientSession() as http:
            for _ in range(50):
                async with http.get(url.replace("/?", "/api/summary?")) as response:
                    summary = await response.json()
                if summary["connections"] and summary["connections"][0]["sent"] == 1:
                    break
                await asyncio.sleep(0.1)
            assert summary["connections"][0]["user_name"] == "alice"
            await alice.close()
            recorder.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(recorder.wait(), 20) == 0
            for _ in range(50):  # the recording ended: the view reads the file itself now
                async with http.get(url.replace("/?", "/api/summary?")) as response:
                    summary = await response.json()
                if response.status == 200 and summary["sessions"][0]["ended_us"] is not None:
                    break
                await asyncio.sleep(0.1)
            assert summary["sessions"][0]["ended_us"] is not None and summary["connections"][0]["closed_us"]
        ui.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(ui.wait(), 20) == 0
    finally:
        for process in (recorder, ui):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()


def test_cli_errors_are_one_line(tmp_path) -> None:
    from test_query import wsproxy
    missing = wsproxy("ui", str(tmp_path / "nope.duckdb"))
    assert missing.returncode == 2 and missing.stderr.startswith("Error:") and "does not exist" in missing.stderr
    not_there = wsproxy("ui", str(FIXTURES / "schema-v4-demo.duckdb"), "--session", "42", "--listen", "127.0.0.1:0")
    assert not_there.returncode == 2 and "session 42 is not in this recording" in not_there.stderr
    bad = wsproxy("ui", str(FIXTURES / "schema-v4-demo.duckdb"), "--listen", "here")
    assert bad.returncode == 2 and "--listen" in bad.stderr


async def test_record_ui_prints_the_url_and_serves_the_live_recording(chat_server, tmp_path) -> None:
    from helpers import free_port, start_recorder
    port = free_port()
    recorder = await start_recorder(chat_server.url, tmp_path / "rec.duckdb", port, "--ui", "127.0.0.1:0")
    try:
        event = json.loads(await asyncio.wait_for(recorder.stderr.readline(), 20))
        assert event["event"] == "ui" and "/?token=" in event["url"]
        alice = await ChatClient.connect(f"ws://127.0.0.1:{port}", "alice")
        await alice.subscribe()
        async with aiohttp.ClientSession() as http:
            async with http.get(event["url"].replace("/?", "/api/summary?")) as response:
                assert response.status == 200
            for _ in range(50):
                async with http.get(event["url"].replace("/?", "/api/summary?")) as response:
                    connections = (await response.json())["connections"]
                if connections and connections[0]["received"] == 1:
                    break
                await asyncio.sleep(0.1)
            assert connections[0]["user_name"] == "alice" and connections[0]["received"] == 1
            async with http.get(event["url"].split("/?")[0] + "/api/summary") as response:
                assert response.status == 403
        await alice.close()
        recorder.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(recorder.wait(), 20) == 0
    finally:
        if recorder.returncode is None:
            recorder.kill()
            await recorder.wait()


async def test_the_diagram_reads_labels_not_whole_messages(upstream, proxy) -> None:
    import tracemalloc
    session = await proxy(upstream)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{session.url}/echo", max_msg_size=0) as ws:
        for n in range(4):
            await ws.send_str(json.dumps({"type": "request", "id": str(n), "payloadType": "new", "timestamp": 1,
                                          "payload": {"text": "x" * 5_000_000}}))
            await ws.receive(timeout=10)
    await session.stop()
    reader = FileReader(session.options.db)
    try:
        tracemalloc.start()
        svg = await views.diagram_svg(reader, 1, [], 0, 200)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        reader.close()
    labels = [text for text in re.findall(r">([^<>]+)<", svg) if text.strip()]
    assert any(label.startswith("new 0") for label in labels), labels
    assert len(svg) < 100_000
    assert peak < 5_000_000, f"drawing labels held {peak:,} bytes: whole messages were read"
