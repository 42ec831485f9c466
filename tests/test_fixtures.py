"""Golden recordings of every schema version still open, query and take a new session."""

from __future__ import annotations

import shutil
from pathlib import Path

import aiohttp
import duckdb

from helpers import recorded
from wsproxy.chat.client import overview_flow
from wsproxy.core.inject import parse_rule
from wsproxy.inspect.check import check_recording
from wsproxy.store.schema import SCHEMA_VERSION

FIXTURES = Path(__file__).parent.parent / "fixtures"


def test_schema_v1_golden_recording_reads_as_recorded() -> None:
    db = FIXTURES / "schema-v1-demo.duckdb"
    with duckdb.connect(str(db), read_only=True) as con:
        assert dict(con.execute("SELECT key, value FROM wsproxy_meta").fetchall())["schema_version"] == "1"
        assert con.execute("SELECT count(*) FROM connections").fetchone()[0] == 3
        kinds = dict(con.execute("SELECT msg_type, count(*) FROM frames WHERE kind = 'text' GROUP BY 1").fetchall())
    assert kinds == {"request": 13, "response": 13, "event": 15}


async def test_a_new_session_appends_to_the_golden_recording(chat_server, proxy, tmp_path) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copy(FIXTURES / "schema-v1-demo.duckdb", db)
    frames_sql = "SELECT conn_id, seq, text, payload::VARCHAR, msg_id FROM frames WHERE conn_id <= 3 ORDER BY 1, 2"
    before = recorded(db, frames_sql)
    session = await proxy(chat_server.url, db=db, label="appended")
    await overview_flow(session.url)
    await session.stop()
    assert recorded(db, "SELECT session_id, label FROM sessions ORDER BY 1") == [(1, "demo"), (2, "appended")]
    assert recorded(db, "SELECT min(conn_id) FROM connections WHERE session_id = 2") == [(4,)]
    # appending upgraded the file to the current schema: findings and exchanges are there
    assert recorded(db, "SELECT value FROM wsproxy_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert recorded(db, "SELECT count(*) FROM violations") == [(0,)]
    assert recorded(db, "SELECT count(*) FROM exchanges WHERE response_seq IS NOT NULL GROUP BY session_id "
                        "ORDER BY session_id") == [(13,), (13,)]
    # the old rows read as before (their payload stored as a copy), the new ones the same way (as a place)
    assert recorded(db, frames_sql) == before and any(row[3] for row in before)
    assert recorded(db, "SELECT count(*) FROM frames WHERE conn_id > 3 AND msg_type IS NOT NULL AND payload IS NULL") == [(0,)]


def test_schema_v1_golden_recording_checks_clean_offline() -> None:
    report = check_recording(FIXTURES / "schema-v1-demo.duckdb")
    assert report.findings == [] and report.session.frames > 0


def test_schema_v2_golden_recording_with_faults_checks_as_it_was_checked_live() -> None:
    db = FIXTURES / "schema-v2-demo-faults.duckdb"
    live = recorded(db, "SELECT conn_id, seq, epoch_us(ts), code, message FROM violations ORDER BY conn_id, seq, code")
    assert {row[3] for row in live} == {"duplicate-response", "event-id-gap", "binary-message"}
    offline = check_recording(db).findings
    assert [(f.conn_id, f.seq, f.ts, f.code, f.message) for f in offline] == live


async def test_the_schema_v3_golden_recording_upgrades_to_one_copy_per_message(chat_server, proxy, tmp_path) -> None:
    # Version 4 turned the frames table into a view over frame_store: everything users read must
    # read the same after the upgrade, and the new session is stored without payload copies.
    db = tmp_path / "copy.duckdb"
    shutil.copy(FIXTURES / "schema-v3-demo.duckdb", db)
    views = ["SELECT * FROM frames ORDER BY conn_id, seq", "SELECT * FROM messages ORDER BY conn_id, seq",
             "SELECT * FROM events ORDER BY conn_id, seq", "SELECT * FROM exchanges ORDER BY conn_id, request_seq"]
    before = [recorded(db, sql) for sql in views]
    assert recorded(db, "SELECT value FROM wsproxy_meta WHERE key = 'schema_version'") == [("3",)]
    session = await proxy(chat_server.url, db=db, label="appended")
    await overview_flow(session.url)
    await session.stop()
    assert recorded(db, "SELECT value FROM wsproxy_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    after = [recorded(db, sql.replace("ORDER BY", "WHERE session_id = 1 ORDER BY") if "frames" not in sql
                      else "SELECT f.* EXCLUDE (delivered) FROM frames f JOIN connections c USING (conn_id) "
                           "WHERE c.session_id = 1 ORDER BY conn_id, seq") for sql in views]
    assert after == before and all(before)  # (version 5 added the frames column `delivered`: 1 for all of them)
    assert recorded(db, "SELECT count(*) FROM frame_store WHERE payload IS NOT NULL") == [(41,)]  # the old copies
    assert recorded(db, "SELECT count(*) FROM frames f JOIN connections c USING (conn_id) "
                        "WHERE c.session_id = 2 AND f.msg_type IS NOT NULL AND f.payload IS NULL") == [(0,)]
    assert check_recording(db).findings == []


async def test_the_schema_v4_golden_recording_upgrades_to_injections(chat_server, proxy, tmp_path) -> None:
    # Version 5 (fault injection) adds frames.delivered, violations.caused_by_injection and `injections`:
    # what was there reads the same, every old frame was delivered once, nothing was injected.
    db = tmp_path / "copy.duckdb"
    shutil.copy(FIXTURES / "schema-v4-demo.duckdb", db)
    assert recorded(db, "SELECT value FROM wsproxy_meta WHERE key = 'schema_version'") == [("4",)]
    before = recorded(db, "SELECT * FROM frames ORDER BY conn_id, seq")
    session = await proxy(chat_server.url, db=db, label="appended", inject=[parse_rule("drop response type=new once")])
    await session.stop()
    assert recorded(db, "SELECT value FROM wsproxy_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert recorded(db, "SELECT * EXCLUDE (delivered) FROM frames WHERE conn_id <= 3 ORDER BY conn_id, seq") == before
    assert recorded(db, "SELECT DISTINCT delivered FROM frames") == [(1,)]
    assert recorded(db, "SELECT count(*) FROM injections") == [(0,)]
    assert recorded(db, "SELECT DISTINCT caused_by_injection FROM violations") in ([], [(False,)])


async def test_the_schema_v5_golden_recording_upgrades_to_parts(upstream, proxy, tmp_path) -> None:
    # Version 6 lists Parquet parts (frame_parts) and reads them through `frames`: what was there reads
    # the same; large frames appended to it go to parts, beside the copy, and read with the rest.
    db = tmp_path / "copy.duckdb"
    shutil.copy(FIXTURES / "schema-v5-demo.duckdb", db)
    assert recorded(db, "SELECT value FROM wsproxy_meta WHERE key = 'schema_version'") == [("5",)]
    before = recorded(db, "SELECT * FROM frames ORDER BY conn_id, seq")
    views = {name: recorded(db, f"SELECT count(*) FROM {name}") for name in ("messages", "events", "exchanges")}
    session = await proxy(upstream, db=db, label="appended")
    big = "x" * (64 * 1024)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{session.url}/echo", max_msg_size=0) as ws:
        for _ in range(300):  # 19 MiB each way: more than is folded back into the file at close
            await ws.send_str(big)
            await ws.receive(timeout=10)
    await session.stop()
    assert recorded(db, "SELECT value FROM wsproxy_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert recorded(db, "SELECT * FROM frames WHERE conn_id <= 3 ORDER BY conn_id, seq") == before
    assert all(recorded(db, f"SELECT count(*) FROM {name} WHERE session_id = 1") == count
               for name, count in views.items())
    assert recorded(db, "SELECT count(*) FROM frame_parts") != [(0,)]
    assert recorded(db, "SELECT count(*), min(size) FROM frames WHERE conn_id > 3 AND kind = 'text'") == [(600, 65536)]


async def test_the_schema_v6_golden_recording_upgrades_to_hands(chat_server, proxy, tmp_path) -> None:
    # Version 7 says who acted in `injections` (source) and what a message was and became (original,
    # sent): what was there reads the same; a message composed by hand is recorded with them.
    db = tmp_path / "copy.duckdb"
    shutil.copy(FIXTURES / "schema-v6-demo.duckdb", db)
    assert recorded(db, "SELECT value FROM wsproxy_meta WHERE key = 'schema_version'") == [("6",)]
    before = recorded(db, "SELECT * FROM frames ORDER BY conn_id, seq")
    session = await proxy(chat_server.url, db=db, label="appended")
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{session.url}/?user=User1") as ws:
        conn = max(session.hands.live)
        await session.hands.sending.send(conn, "server", '{"type":"event","timestamp":1,"eventType":"typing",'
                                                         '"payload":{"chatId":"User2"}}', "api")
        await ws.close()
    await session.stop()
    assert recorded(db, "SELECT value FROM wsproxy_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert recorded(db, f"SELECT * FROM frames WHERE conn_id < {conn} ORDER BY conn_id, seq") == before
    assert recorded(db, "SELECT action, source, original, sent LIKE '%typing%' FROM injections") == [
        ("compose", "api", None, True)]


async def test_the_schema_v7_golden_recording_upgrades_to_spec_pointers(chat_server, proxy, tmp_path) -> None:
    # Version 8 gives every violation a JSON pointer (--spec findings fill it): what was there reads the
    # same, with no pointer; a finding against an AsyncAPI document appended to it has its pointer.
    from dataclasses import replace

    from wsproxy.core.profile import CHAT_PROFILE
    from wsproxy.inspect.spec import load_contract
    db = tmp_path / "copy.duckdb"
    shutil.copy(FIXTURES / "schema-v7-demo.duckdb", db)
    assert recorded(db, "SELECT value FROM wsproxy_meta WHERE key = 'schema_version'") == [("7",)]
    frames = recorded(db, "SELECT * FROM frames ORDER BY conn_id, seq")
    violations = recorded(db, "SELECT * FROM violations ORDER BY conn_id, seq")
    spec = replace(CHAT_PROFILE, spec=load_contract(Path(__file__).parent.parent / "docs" / "chat-protocol.asyncapi.yaml"))
    session = await proxy(chat_server.url, db=db, label="appended", profile=spec)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{session.url}/chat?user=User1") as ws:
        await ws.send_str('{"type":"request","timestamp":1,"id":"x","payloadType":"read","payload":{"messageId":"1"}}')
        await ws.receive()
    await session.stop()
    assert recorded(db, "SELECT value FROM wsproxy_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert recorded(db, "SELECT * FROM frames WHERE conn_id <= 3 ORDER BY conn_id, seq") == frames
    assert recorded(db, "SELECT * EXCLUDE (pointer) FROM violations WHERE session_id = 1 ORDER BY conn_id, seq") == violations
    assert recorded(db, "SELECT count(*) FROM violations WHERE session_id = 1 AND pointer IS NOT NULL") == [(0,)]
    assert recorded(db, "SELECT code, pointer FROM violations WHERE session_id = 2 AND code LIKE 'spec-%'") == [
        ("spec-type", "/payload/messageId")]
