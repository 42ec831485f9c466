"""Export and import: JSONL restores a recording exactly, HAR round-trips what it can carry,
Parquet writes every table; empty recordings and binary frames included; bad HAR rows are counted."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from helpers import recorded, wsproxy
from wsproxy.inspect.check import check_recording
from wsproxy.inspect.importer import import_file

FAULTS = Path(__file__).parent.parent / "fixtures" / "schema-v2-demo-faults.duckdb"  # has a binary frame
# the frames columns every schema version has (version 5 added `delivered`)
FRAME_SQL = ("SELECT conn_id, seq, ts, sender, kind, size, text, data, msg_type, msg_id, payload_type, event_type, "
             "event_id, payload, parse_error, close_code FROM frames ORDER BY conn_id, seq")
CONN_SQL = "SELECT * EXCLUDE (session_id) FROM connections ORDER BY conn_id"


def test_jsonl_export_then_import_restores_frames_byte_for_byte(tmp_path) -> None:
    out = tmp_path / "faults.jsonl"
    assert wsproxy("export", str(FAULTS), "-o", str(out)).returncode == 0
    restored = tmp_path / "restored.duckdb"
    result = wsproxy("import", str(out), "--db", str(restored))
    assert result.returncode == 0 and "imported 3 connection(s), 49 frames" in result.stderr
    assert recorded(restored, FRAME_SQL) == recorded(FAULTS, FRAME_SQL)
    assert recorded(restored, CONN_SQL) == recorded(FAULTS, CONN_SQL)
    assert recorded(restored, "SELECT * FROM sessions") == recorded(FAULTS, "SELECT * FROM sessions")
    assert [f.code for f in check_recording(restored).findings] == [f.code for f in check_recording(FAULTS).findings]


def test_importing_twice_appends_with_fresh_ids(tmp_path) -> None:
    out = tmp_path / "faults.jsonl"
    wsproxy("export", str(FAULTS), "-o", str(out))
    db = tmp_path / "twice.duckdb"
    import_file(out, db)
    second = import_file(out, db, label="again")
    assert second.session_id == 2
    assert recorded(db, "SELECT session_id, min(conn_id), count(*) FROM connections GROUP BY 1 ORDER BY 1") == [
        (1, 1, 3), (2, 4, 3)]


def test_har_round_trip_keeps_messages_and_directions(tmp_path) -> None:
    har = tmp_path / "faults.har"
    assert wsproxy("export", str(FAULTS), "--format", "har", "-o", str(har)).returncode == 0
    document = json.loads(har.read_text())
    entry = document["log"]["entries"][0]
    assert entry["_resourceType"] == "websocket" and entry["response"]["status"] == 101
    assert entry["request"]["url"].startswith("ws://") and entry["request"]["url"].endswith("/chat?user=User1")
    assert {tuple(sorted(m)) for e in document["log"]["entries"] for m in e["_webSocketMessages"]} == {
        ("data", "opcode", "time", "type")}
    binary = [m for e in document["log"]["entries"] for m in e["_webSocketMessages"] if m["opcode"] == 2]
    assert binary and binary[0]["type"] == "receive"
    db = tmp_path / "from-har.duckdb"
    import_file(har, db)
    data_sql = ("SELECT sender, kind, text, data FROM frames WHERE kind IN ('text', 'binary') "
                "ORDER BY conn_id, seq")
    assert recorded(db, data_sql) == recorded(FAULTS, data_sql)


def test_parquet_writes_every_table(tmp_path) -> None:
    folder = tmp_path / "pq"
    assert wsproxy("export", str(FAULTS), "--format", "parquet", "-o", str(folder)).returncode == 0
    counts = {name: duckdb.sql(f"SELECT count(*) FROM '{folder / name}.parquet'").fetchall()[0][0]
              for name in ("sessions", "connections", "frames", "violations")}
    assert counts == {"sessions": 1, "connections": 3, "frames": 49, "violations": 3}


async def test_every_format_on_an_empty_recording(proxy, upstream, tmp_path) -> None:
    session = await proxy(upstream, db=tmp_path / "empty.duckdb")
    await session.stop()
    db = session.options.db
    for fmt, name in (("jsonl", "e.jsonl"), ("har", "e.har"), ("parquet", "e-pq")):
        result = wsproxy("export", str(db), "--format", fmt, "-o", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "e.har").read_text())["log"]["entries"] == []
    for name in ("e.jsonl", "e.har"):
        imported = import_file(tmp_path / name, tmp_path / f"{name}.duckdb")
        assert (imported.connections, imported.frames) == (0, 0)


CHROME_STYLE = {"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"}, "pages": [],
    "entries": [
        {"startedDateTime": "2026-01-15T10:00:00.000Z", "time": 12.5, "request": {"method": "GET",
         "url": "https://example.org/app.js", "headers": []}, "response": {"status": 200, "headers": []}},
        {"startedDateTime": "2026-01-15T10:00:00.000Z", "time": 12.5, "_resourceType": "websocket",
         "request": {"method": "GET", "url": "wss://chat.example.org/ws?user=User1",
                     "headers": [{"name": "Sec-WebSocket-Protocol", "value": "chat.v1"}]},
         "response": {"status": 101, "headers": [{"name": "Sec-WebSocket-Protocol", "value": "chat.v1"}]},
         "_webSocketMessages": [
             {"type": "send", "time": 1768471200.0123, "opcode": 1,
              "data": "{\"type\":\"request\",\"timestamp\":1768471200,\"id\":\"r1\",\"payloadType\":\"subscribe\",\"payload\":{}}"},
             {"type": "receive", "time": 1768471200.0457, "opcode": 1,
              "data": "{\"type\":\"response\",\"timestamp\":1768471200,\"id\":\"r1\",\"payload\":{\"lastEventId\":0,\"count\":0}}"},
             {"type": "receive", "time": 1768471200.9, "opcode": 2, "data": "AAECAwQ="},
             {"type": "error", "time": 1768471201.0, "opcode": -1, "data": "Invalid frame header"},
             {"type": "send", "opcode": 1, "data": "no time"},
             {"type": "ping", "time": 1768471201.0, "opcode": 9, "data": ""},
             {"type": "receive", "time": 1768471201.1, "opcode": 2, "data": "%%% not base64"},
             "not an object"]}]}}


def test_a_chrome_har_imports_and_bad_rows_are_counted_with_reasons(tmp_path) -> None:
    har = tmp_path / "chrome.har"
    har.write_text(json.dumps(CHROME_STYLE))
    db = tmp_path / "chrome.duckdb"
    result = wsproxy("import", str(har), "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "imported 1 connection(s), 3 frames" in result.stderr
    for reason in ('skipped 1 × an "error" row', "skipped 1 × a message without a numeric time",
                   "skipped 1 × a message whose type is not send, receive or error",
                   "skipped 1 × a binary message whose data is not base64", "skipped 1 × a message that is not an object"):
        assert reason in result.stderr, result.stderr
    assert recorded(db, "SELECT path, query, subprotocol, status FROM connections") == [("/ws", "user=User1", "chat.v1", 101)]
    assert recorded(db, "SELECT sender, kind, msg_type, data FROM frames ORDER BY seq") == [
        ("client", "text", "request", None), ("server", "text", "response", None),
        ("server", "binary", None, b"\x00\x01\x02\x03\x04")]
    assert [f.code for f in check_recording(db).findings] == ["binary-message"]


@pytest.mark.parametrize("content,message", [
    ("not json at all", "neither a wsproxy JSONL export nor a HAR file"),
    ('{"log": {}}', "not a HAR file: no log.entries list"),
    ('{"record":"wsproxy-jsonl","version":99}\n', "JSONL version 99"),
])
def test_bad_import_files_are_one_line_errors(tmp_path, content, message) -> None:
    source = tmp_path / "bad.har"
    source.write_text(content)
    result = wsproxy("import", str(source), "--db", str(tmp_path / "x.duckdb"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


async def test_replay_serves_a_har_capture(tmp_path) -> None:
    import aiohttp

    from wsproxy.core.replay_plan import ReplayPlan
    from wsproxy.replay.server import start_replay
    from wsproxy.replay.source import load_recording
    har = tmp_path / "chrome.har"
    har.write_text(json.dumps(CHROME_STYLE))
    session = load_recording(har)
    running = await start_replay(session, ReplayPlan(session))
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{running.url}/ws?user=User1") as ws:
        await ws.send_str('{"type":"request","timestamp":1768471300,"id":"mine","payloadType":"subscribe","payload":{}}')
        assert json.loads((await ws.receive(timeout=5)).data)["id"] == "mine"
        assert (await ws.receive(timeout=5)).data == b"\x00\x01\x02\x03\x04"
    await running.stop()
    assert running.server.divergences == []


def har_with_times(*times: float) -> dict:
    """One WebSocket entry opened at 2026-01-15T10:00:00Z with a text message at each of ``times``."""
    return {"log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": [
        {"startedDateTime": "2026-01-15T10:00:00.000Z", "time": 3.0, "_resourceType": "websocket",
         "request": {"method": "GET", "url": "ws://127.0.0.1:8765/chat?user=Alice", "headers": []},
         "response": {"status": 101, "headers": []},
         "_webSocketMessages": [{"type": "send", "time": at, "opcode": 1, "data": f'{{"n": {i}}}'}
                                for i, at in enumerate(times)]}]}}


OPENED_US = 1768471200 * 1_000_000  # 2026-01-15T10:00:00Z


@pytest.mark.parametrize("writer,times", [
    ("Chrome and mitmproxy: seconds", (1768471200.25, 1768471201.5)),
    ("Playwright: milliseconds", (1768471200250.0, 1768471201500.0)),
    ("Playwright: whole milliseconds", (1768471200250, 1768471201500)),
])
def test_har_message_times_are_read_in_the_writers_unit(tmp_path, writer, times) -> None:
    har = tmp_path / "capture.har"
    har.write_text(json.dumps(har_with_times(*times)))
    imported = import_file(har, tmp_path / "capture.duckdb")
    assert imported.frames == 2 and imported.skipped == {}, writer
    assert recorded(tmp_path / "capture.duckdb", "SELECT epoch_us(ts) FROM frames ORDER BY seq") == [
        (OPENED_US + 250_000,), (OPENED_US + 1_500_000,)]


def test_a_har_time_that_fits_neither_unit_is_skipped_with_the_reason(tmp_path) -> None:
    # 12.5: seconds since the connection opened, not since the epoch; 1768471200 as milliseconds is 1970;
    # a day before the entry started; the year 2027 in milliseconds; one good message
    har = tmp_path / "odd.har"
    har.write_text(json.dumps(har_with_times(12.5, 1768471200 / 1000, 1768471200 - 86400, 1800000000000,
                                             1768471203.0)))
    result = wsproxy("import", str(har), "--db", str(tmp_path / "odd.duckdb"))
    assert result.returncode == 0 and "imported 1 connection(s), 1 frames" in result.stderr, result.stderr
    assert ("skipped 4 × a message whose time is neither seconds nor milliseconds since the epoch at or after "
            "its entry's startedDateTime") in result.stderr
    assert recorded(tmp_path / "odd.duckdb", "SELECT epoch_us(ts) FROM frames") == [(OPENED_US + 3_000_000,)]


def test_the_har_playwright_wrote_imports_with_the_times_it_was_sent(tmp_path) -> None:
    har = Path(__file__).parent.parent / "fixtures" / "playwright-1.65-chromium.har"
    imported = import_file(har, tmp_path / "pw.duckdb")
    assert (imported.connections, imported.frames, imported.skipped) == (1, 2, {})
    rows = recorded(tmp_path / "pw.duckdb", "SELECT epoch_us(f.ts) - epoch_us(c.opened_at), "
                    "json_extract(f.text, '$.timestamp')::DOUBLE * 1e6 - epoch_us(f.ts) FROM frames f "
                    "JOIN connections c USING (conn_id) ORDER BY f.seq")
    # 15 and 18 ms after the handshake began, within 3 ms of the timestamps in the envelopes themselves
    assert [after for after, _ in rows] == [15256, 18449]
    assert all(abs(skew) < 3_000 for _, skew in rows)
