"""wsproxy record over real sockets: transparency, closes, failures, load, redaction."""

from __future__ import annotations

import asyncio
import json
import os
import random
import struct
import sys
import time

import aiohttp
import duckdb
import pytest
from aiohttp import WSMsgType
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import eventually, recorded
from wsproxy.chat.client import overview_flow, run_load
from wsproxy.chat.server import CORE_KEY
from wsproxy.clock import now_us
from wsproxy.core.protocol import decode
from wsproxy.core.rows import frame_row
from wsproxy.record import writer as recorder_module
from wsproxy.record.session import ConfigError, RecordOptions, RecordSession, parse_listen, parse_upstream
from wsproxy.record.writer import Recorder
from wsproxy.store import batches as batches_module
from wsproxy.store import files as store_files
from wsproxy.store.batches import frames_table, split_by_size
from wsproxy.store.files import RecordingError
from wsproxy.store.schema import DDL

TEXTS = ["hello", "", "unicode: héllo wörld ✓ 漢字 🎉", '{"type":"event","timestamp":1,"eventType":"typing"}',
         "not json at all {", "x" * (1024 * 1024)]
BINARIES = [b"\x00\x01\x02\xff", b"", os.urandom(1024 * 1024)]


async def test_every_message_kind_is_relayed_and_recorded_byte_exact(upstream, proxy) -> None:
    session = await proxy(upstream)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{session.url}/echo", autoping=False)
        for text in TEXTS:
            await ws.send_str(text)
            msg = await ws.receive()
            assert msg.type == WSMsgType.TEXT and msg.data == text
        for data in BINARIES:
            await ws.send_bytes(data)
            msg = await ws.receive()
            assert msg.type == WSMsgType.BINARY and msg.data == data
        await ws.ping(b"are you there")
        pong = await ws.receive()
        assert pong.type == WSMsgType.PONG and pong.data == b"are you there"
        await ws.close()
    await session.stop()
    rows = recorded(session.options.db, "SELECT sender, kind, text, data, size FROM frames ORDER BY seq")
    texts = [r for r in rows if r[1] == "text"]
    assert [r[2] for r in texts if r[0] == "client"] == TEXTS
    assert [r[2] for r in texts if r[0] == "server"] == TEXTS
    assert all(r[4] == len(r[2].encode()) for r in texts)
    binaries = [r for r in rows if r[1] == "binary"]
    assert [bytes(r[3]) for r in binaries if r[0] == "client"] == BINARIES
    assert [(r[0], r[1], bytes(r[3])) for r in rows if r[1] in ("ping", "pong")] == [
        ("client", "ping", b"are you there"), ("server", "pong", b"are you there")]
    assert [(r[0], r[1]) for r in rows[-2:]] == [("client", "close"), ("server", "close")]


# Payloads whose JSON text must read back exactly as sent: odd spacing, unicode, escapes, a
# payload that also occurs earlier in the message, and one of 1 MiB.
PAYLOAD_TEXTS = [
    ('{"type":"request","timestamp":1,"id":"a","payloadType":"new","payload":{"chatId":"c","message":"héllo ✓ 🎉"}}',
     '{"chatId":"c","message":"héllo ✓ 🎉"}'),
    ('{ "payload" : { "b" : [ 1 , 2.50 ] ,"a":"\\u00e9\\n" } , "type":"event","timestamp":2,"eventType":"x" }',
     '{ "b" : [ 1 , 2.50 ] ,"a":"\\u00e9\\n" }'),
    ('{"type":"event","timestamp":1,"id":1,"eventType":"tick","payload":1}', "1"),
    ('{"type":"request","timestamp":1,"id":"big","payloadType":"new","payload":{"message":"' + "é" * 524288 + '"}}',
     '{"message":"' + "é" * 524288 + '"}'),
]


async def test_the_payload_column_holds_the_payload_json_exactly_as_sent(upstream, proxy) -> None:
    session = await proxy(upstream)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{session.url}/echo")
        for text, _ in PAYLOAD_TEXTS:
            await ws.send_str(text)
            assert (await ws.receive()).data == text
        await ws.close()
    await session.stop()
    rows = recorded(session.options.db, "SELECT payload::VARCHAR, text FROM frames WHERE sender = 'client' "
                                        "AND kind = 'text' ORDER BY seq")
    assert [row[0] for row in rows] == [payload for _, payload in PAYLOAD_TEXTS]
    assert [row[1] for row in rows] == [text for text, _ in PAYLOAD_TEXTS]
    # stored once: the rows keep where the payload lies in the text, not a second copy
    assert recorded(session.options.db, "SELECT count(*) FROM frame_store WHERE payload IS NOT NULL") == [(0,)]


@settings(max_examples=200, deadline=None)
@given(payload=st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                            max_leaves=8),
       space=st.sampled_from(["", " ", "\n  ", "\t"]), first=st.booleans())
def test_payloads_read_back_exactly_from_the_view(payload, space, first) -> None:
    body = json.dumps(payload, ensure_ascii=False, separators=("," + space, ":" + space))
    fields = [f'"type":{space}"event"', '"timestamp":1', '"eventType":"x"']
    fields.insert(0 if first else 3, f'"payload":{space}{body}')
    text = "{" + space + ("," + space).join(fields) + space + "}"
    with duckdb.connect() as con:
        con.execute(DDL)
        con.register("batch", frames_table([frame_row(1, 1, 0, "server", "text", text, decode("text", text, "server"))]))
        con.execute("INSERT INTO frame_store BY NAME SELECT * FROM batch")
        assert con.execute("SELECT payload::VARCHAR, text FROM frames").fetchone() == (body, text)


async def test_a_full_batch_is_written_at_once_not_at_the_next_commit_tick(tmp_path) -> None:
    # Large messages stream through the writer: it does not sit out its commit interval
    # while a batch's worth (an eighth of the back-pressure budget) is waiting.
    recorder = Recorder(tmp_path / "rec.duckdb", commit_interval=60.0, high_water_bytes=16 * 65536)
    recorder.start(label=None, listen="127.0.0.1:0", upstream="ws://127.0.0.1:1", redacted=True)
    try:
        recorder.add_frame(frame_row(1, 1, now_us(), "client", "text", "x" * 65536, None))
        await asyncio.sleep(0.3)
        assert recorder.stats.rows_written == 0  # one message is not a batch: it waits for the tick
        recorder.add_frame(frame_row(1, 2, now_us(), "client", "text", "y" * 65536, None))
        await eventually(lambda: recorder.stats.rows_written == 2)
    finally:
        recorder.stop()
    assert recorded(tmp_path / "rec.duckdb", "SELECT seq, size FROM frames ORDER BY seq") == [(1, 65536), (2, 65536)]


def test_a_backlog_of_large_messages_is_committed_in_parts_that_fit_in_memory(tmp_path, monkeypatch) -> None:
    # DuckDB keeps a transaction's rows in memory until it commits: written as one transaction, this
    # backlog (96 MiB against a 32 MB limit) fails to commit, and a failed write stops the relay.
    monkeypatch.setitem(store_files.WRITE_CONFIG, "memory_limit", "32MB")
    monkeypatch.setattr(recorder_module, "MAX_TRANSACTION_BYTES", 8 * 1024 * 1024)
    recorder = Recorder(tmp_path / "rec.duckdb", commit_interval=60.0, high_water_bytes=1 << 40,
                        large_frame_bytes=1 << 40)  # DuckDB's own storage, which frames under 8 KiB use
    recorder.start(label=None, listen="127.0.0.1:0", upstream="ws://127.0.0.1:1", redacted=True)
    size = 4 * 1024 * 1024
    for seq in range(24):  # queued faster than the writer wakes: one backlog, written at stop()
        recorder.add_frame(frame_row(1, seq, now_us(), "client", "text", f"{seq:08d}" + "x" * (size - 8), None))
    recorder.stop()
    assert recorder.error is None
    assert recorder.stats.batches >= 12  # two 4 MiB messages per transaction
    assert recorded(tmp_path / "rec.duckdb", "SELECT count(*), sum(size), count(DISTINCT left(text, 8)) "
                    "FROM frames") == [(24, 24 * size, 24)]


def test_a_write_that_runs_out_of_memory_is_retried(tmp_path) -> None:
    # A query on the live recording shares the writer's DuckDB memory; while it holds most of it a
    # write fails, committing nothing. The writer retries (back pressure holds the relay meanwhile).
    failures = [duckdb.OutOfMemoryException("Out of Memory Error: a live query holds it")] * 2
    recorder = Recorder(tmp_path / "rec.duckdb", commit_interval=0.05)

    def out_of_memory_twice() -> None:
        if failures:
            raise failures.pop()
    recorder._write_hook = out_of_memory_twice
    recorder.start(label=None, listen="127.0.0.1:0", upstream="ws://127.0.0.1:1", redacted=True)
    for seq in range(3):
        recorder.add_frame(frame_row(1, seq, now_us(), "client", "text", f'{{"n":{seq}}}', None))
    recorder.stop()
    assert recorder.error is None and recorder.stats.write_retries == 2
    assert recorded(tmp_path / "rec.duckdb", "SELECT count(*), count(DISTINCT seq) FROM frames") == [(3, 3)]


def test_a_write_that_stays_out_of_memory_fails_with_duckdbs_reason(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(store_files.WRITE_CONFIG, "memory_limit", "32MB")
    monkeypatch.setattr(recorder_module, "MAX_TRANSACTION_BYTES", 1 << 40)
    monkeypatch.setattr(batches_module, "RETRY_FOR_SECONDS", 0.5)
    recorder = Recorder(tmp_path / "rec.duckdb", commit_interval=60.0, high_water_bytes=1 << 40,
                        large_frame_bytes=1 << 40)  # DuckDB's own storage, which frames under 8 KiB use
    recorder.start(label=None, listen="127.0.0.1:0", upstream="ws://127.0.0.1:1", redacted=True)
    for seq in range(8):  # 64 MiB in one transaction: more than DuckDB may hold
        recorder.add_frame(frame_row(1, seq, now_us(), "client", "text", f"{seq:08d}" + "x" * (8 * 1024 * 1024 - 8), None))
    recorder.stop()
    assert recorder.stats.write_retries >= 1
    assert "Out of Memory Error" in recorder.error and "\n" not in recorder.error  # DuckDB's reason, one line


def test_a_backlog_is_cut_in_order_and_only_when_too_large() -> None:
    def frame(size: int) -> tuple:
        return frame_row(1, size, 0, "client", "text", "x" * size, None)
    batch = [frame(5), frame(5), "open", frame(5), frame(20), frame(1), "close"]
    assert split_by_size(batch, 41, 100) == [batch]
    parts = split_by_size(batch, 41, 10)
    assert [item for part in parts for item in part] == batch
    assert parts == [batch[:3], batch[3:4], batch[4:5], batch[5:]]  # a frame past the limit goes alone


def _record_short_sessions(path, sessions: int, frames_each: int) -> None:
    for session in range(sessions):
        recorder = Recorder(path)
        recorder.start(label=None, listen="127.0.0.1:0", upstream="ws://127.0.0.1:1", redacted=True)
        for i in range(frames_each):
            recorder.add_frame(frame_row(session + 1, i, now_us(), "client", "text", f'{{"n":{i}}}', None))
        recorder.stop()


def _row_groups(path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('frame_store')").fetchone()[0]


def test_short_sessions_are_merged_into_one_row_group_when_a_small_file_closes(tmp_path) -> None:
    _record_short_sessions(tmp_path / "rec.duckdb", 12, 50)
    assert _row_groups(tmp_path / "rec.duckdb") == 1  # not 12: a file of many short sessions stays compact
    assert recorded(tmp_path / "rec.duckdb", "SELECT count(*), count(DISTINCT conn_id) FROM frames") == [(600, 12)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is a Linux feature")
def test_the_writer_thread_yields_the_cpu_to_the_relay(tmp_path) -> None:
    relay_nice = os.getpriority(os.PRIO_PROCESS, 0)
    if relay_nice >= 19:
        pytest.skip("the tests already run at the lowest priority")
    recorder = Recorder(tmp_path / "rec.duckdb")
    recorder.start(label=None, listen="", upstream="", redacted=True)

    def writer_nice() -> int:  # field 19 of /proc/.../stat
        return int(open(f"/proc/self/task/{recorder._thread.native_id}/stat").read().rsplit(")", 1)[1].split()[16])
    try:
        deadline = time.monotonic() + 5
        while writer_nice() == relay_nice and time.monotonic() < deadline:  # the thread sets it as it starts
            time.sleep(0.01)
        assert writer_nice() == min(19, relay_nice + 5)
    finally:
        recorder.stop()


def test_a_large_file_is_never_rewritten_to_merge_row_groups(tmp_path, monkeypatch) -> None:
    # Merging rewrites row groups whole: for a file of large messages that was gigabytes per
    # checkpoint. Past the size limit every checkpoint, the closing one included, leaves them be.
    monkeypatch.setattr(store_files, "MERGE_AT_CLOSE_BELOW", 0)
    _record_short_sessions(tmp_path / "rec.duckdb", 12, 50)
    assert _row_groups(tmp_path / "rec.duckdb") == 12
    assert recorded(tmp_path / "rec.duckdb", "SELECT count(*), count(DISTINCT conn_id) FROM frames") == [(600, 12)]


def _text_compression(path) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {row[0] for row in con.execute("SELECT compression FROM pragma_storage_info('frame_store') "
                                              "WHERE column_name = 'text' AND segment_type = 'VARCHAR'").fetchall()}


_WORDS = [random.Random(n).choice("abcdefghij") * (1 + n % 8) for n in range(256)]


def _chat_text(seed: int, length: int = 65536) -> str:
    """About 64 KiB of words, compressible like chat text and different for each seed."""
    rng = random.Random(seed)
    message = " ".join(rng.choices(_WORDS, k=length // 4))[:length]
    return json.dumps({"type": "event", "id": seed, "eventType": "new", "payload": {"message": message}})


def test_large_messages_are_compressed_unless_the_writer_is_busy(tmp_path, monkeypatch) -> None:
    # ZSTD halves how fast DuckDB writes large messages: while full batches come back to back the
    # recorder stores them as they are; when it keeps up, it compresses them.
    monkeypatch.setattr(store_files, "MERGE_AT_CLOSE_BELOW", 0)  # no rewrite at the close
    texts = [_chat_text(i) for i in range(400)]
    for mode, count in (("keeping up", 160), ("busy", 400)):
        path = tmp_path / f"{mode}.duckdb"
        recorder = Recorder(path, large_frame_bytes=1 << 40)  # DuckDB's storage, as for frames under 8 KiB
        recorder.start(label=None, listen="127.0.0.1:0", upstream="ws://127.0.0.1:1", redacted=True)
        for i in range(count):
            recorder.add_frame(frame_row(1, i, now_us(), "server", "text", texts[i], None))
            if mode == "keeping up" and i % 40 == 39:
                time.sleep(0.3)  # 2.6 MB at a time: less than a batch, written at the commit tick
        recorder.stop()  # "busy": 26 MB in batches of 8 MiB, past DuckDB's 16 MB checkpoint
        assert recorded(path, "SELECT count(*) FROM frames") == [(count,)]
        if mode == "keeping up":
            assert _text_compression(path) == {"ZSTD"}
        else:
            assert "Uncompressed" in _text_compression(path)


async def test_parsed_columns_come_from_the_protocol_model(chat_server, proxy) -> None:
    session = await proxy(chat_server.url)
    await overview_flow(session.url)
    await session.stop()
    db = session.options.db
    rows = recorded(db, "SELECT msg_type, msg_id, payload_type, event_type, event_id, payload->>'message', parse_error "
                        "FROM frames WHERE kind = 'text' AND (payload_type = 'new' OR event_type = 'new') ORDER BY ts")
    assert rows[0][:3] == ("request", "User2-002", "new") and rows[0][5] == "Hello User1"
    assert any(r[0] == "event" and r[3] == "new" and isinstance(r[4], int) for r in rows)
    assert recorded(db, "SELECT count(*) FROM frames WHERE parse_error IS NOT NULL") == [(0,)]
    conns = recorded(db, "SELECT path, query, status, closed_by, close_code FROM connections ORDER BY conn_id")
    assert conns == [("/chat", "user=User1", 101, "client", 1000), ("/chat", "user=User2", 101, "client", 1000),
                     ("/chat", "user=User1", 101, "client", 1000)]
    (session_row,) = recorded(db, "SELECT session_id, listen, upstream, wsproxy_version, ended_at IS NOT NULL FROM sessions")
    assert session_row[0] == 1 and session_row[2] == chat_server.url and session_row[4] is True


async def test_unparseable_frames_are_recorded_with_their_raw_content(upstream, proxy) -> None:
    session = await proxy(upstream)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{session.url}/echo")
        await ws.send_str('{"type":"request"')
        await ws.receive()
        await ws.close()
    await session.stop()
    rows = recorded(session.options.db, "SELECT text, msg_type, parse_error FROM frames WHERE kind='text'")
    assert rows[0][0] == '{"type":"request"' and rows[0][1] is None and rows[0][2].startswith("not JSON")


@pytest.mark.parametrize("code,reason", [(1000, ""), (4001, "custom reason ✓"), (1008, "policy")])
async def test_close_from_the_server_is_forwarded_with_code_and_reason(upstream, proxy, code, reason) -> None:
    session = await proxy(upstream)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{session.url}/close-after?code={code}&reason={reason}")
        await ws.send_str("bye")
        msg = await ws.receive()
        assert msg.type == WSMsgType.CLOSE and msg.data == code and msg.extra == reason
    await session.stop()
    assert recorded(session.options.db, "SELECT closed_by, close_code, close_reason FROM connections") == [
        ("server", code, reason)]


async def test_close_from_the_client_is_forwarded_with_code_and_reason(upstream, proxy) -> None:
    session = await proxy(upstream)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{session.url}/echo")
        await ws.close(code=4002, message=b"client leaves")
    await session.stop()
    frames = recorded(session.options.db, "SELECT sender, kind, text, close_code FROM frames ORDER BY seq")
    # the upstream (aiohttp) answers with its own close frame: 1000, no reason; relayed as it is
    assert frames == [("client", "close", "client leaves", 4002), ("server", "close", "", 1000)]
    assert recorded(session.options.db, "SELECT closed_by, close_code, close_reason FROM connections") == [
        ("client", 4002, "client leaves")]


async def test_subprotocol_and_headers_pass_through(upstream, proxy) -> None:
    session = await proxy(upstream, redact=False)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{session.url}/headers?room=7&token=abc", protocols=("chat.v1", "other"),
                                   headers={"Authorization": "Bearer s3cret", "Origin": "http://app.example",
                                            "X-Custom": "42", "Cookie": "sid=1"})
        assert ws.protocol == "chat.v1"
        seen = json.loads((await ws.receive()).data)
        await ws.close()
    assert seen["headers"]["Authorization"] == "Bearer s3cret"
    assert seen["headers"]["Origin"] == "http://app.example"
    assert seen["headers"]["X-Custom"] == "42" and seen["headers"]["Cookie"] == "sid=1"
    assert seen["query"] == "room=7&token=abc" and seen["protocol"] == "chat.v1"
    await session.stop()
    ((headers, query, subprotocol),) = recorded(session.options.db,
                                                "SELECT request_headers, query, subprotocol FROM connections")
    assert json.loads(headers)["Authorization"] == "Bearer s3cret" and query == "room=7&token=abc"
    assert subprotocol == "chat.v1"


async def test_secrets_are_redacted_in_the_recording_but_not_on_the_wire(upstream, proxy) -> None:
    session = await proxy(upstream)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{session.url}/headers?user=u1&token=abc&Password=pw&keyring=k",
                                   headers={"Authorization": "Bearer s3cret", "Cookie": "sid=1",
                                            "Proxy-Authorization": "Basic x"})
        seen = json.loads((await ws.receive()).data)
        await ws.close()
    assert seen["headers"]["Authorization"] == "Bearer s3cret" and seen["query"].endswith("token=abc&Password=pw&keyring=k")
    await session.stop()
    ((headers, query),) = recorded(session.options.db, "SELECT request_headers, query FROM connections")
    headers = json.loads(headers)
    assert headers["Authorization"] == headers["Cookie"] == headers["Proxy-Authorization"] == "[REDACTED]"
    assert query == "user=u1&token=[REDACTED]&Password=[REDACTED]&keyring=k"
    assert "s3cret" not in json.dumps(recorded(session.options.db, "SELECT * FROM connections"), default=str)


async def test_upstream_prefix_path_and_query_are_kept(upstream, proxy) -> None:
    session = await proxy(upstream + "/prefix")
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{session.url}/room/headers?a=1&b=%20x")
        seen = json.loads((await ws.receive()).data)
        await ws.close()
    assert seen["path"] == "/prefix/room/headers" and seen["query"] == "a=1&b=%20x"
    await session.stop()
    assert recorded(session.options.db, "SELECT path, query FROM connections") == [("/room/headers", "a=1&b=%20x")]


async def test_refused_handshake_is_reflected_and_recorded(upstream, proxy) -> None:
    session = await proxy(upstream)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(f"{session.url}/forbidden")
        assert info.value.status == 403
    await session.stop()
    ((status, error),) = recorded(session.options.db, "SELECT status, error FROM connections")
    assert status == 403 and "403" in error


async def test_upstream_down_gives_502_and_is_recorded(proxy, unused_tcp_port) -> None:
    session = await proxy(f"ws://127.0.0.1:{unused_tcp_port}")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(f"{session.url}/chat?user=a")
        assert info.value.status == 502
    await session.stop()
    ((status, error),) = recorded(session.options.db, "SELECT status, error FROM connections")
    assert status == 502 and "cannot reach upstream" in error


async def test_upstream_dying_mid_session_closes_the_client_with_1011(upstream, proxy) -> None:
    session = await proxy(upstream)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{session.url}/die")
        await ws.send_str("last words")
        msg = await asyncio.wait_for(ws.receive(), 3)
        assert msg.type == WSMsgType.CLOSE and msg.data == 1011 and "upstream went away" in msg.extra
    await session.stop()
    ((closed_by, code, error),) = recorded(session.options.db, "SELECT closed_by, close_code, error FROM connections")
    assert (closed_by, code) == ("server", 1011) and "without a close frame" in error
    assert recorded(session.options.db, "SELECT text FROM frames WHERE kind = 'text'") == [("last words",)]


async def test_a_burst_followed_by_a_close_arrives_whole_and_in_order(upstream, proxy) -> None:
    # The relay coalesces the writes of one event-loop turn: the close must never overtake them.
    session = await proxy(upstream)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{session.url}/burst?n=5000") as ws:
        received = [msg.data async for msg in ws]
        assert received == [str(i) for i in range(5000)]
        assert ws.close_code == 4000


async def test_client_vanishing_closes_the_upstream_promptly(chat_server, proxy) -> None:
    session = await proxy(chat_server.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", session.port)
    writer.write(b"GET /chat?user=ghost HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await writer.drain()
    assert b"101" in await reader.readline()
    await eventually(lambda: session.relay.counters.open == 1)
    writer.transport.abort()  # no close frame, just gone
    await eventually(lambda: session.relay.counters.open == 0, timeout=3)
    # the upstream saw the connection go promptly (the chat server dropped the user's connection)
    await eventually(lambda: not chat_server.runner.app[CORE_KEY].connections, timeout=3)
    await session.stop()
    ((closed_by, code, error),) = recorded(session.options.db, "SELECT closed_by, close_code, error FROM connections")
    assert (closed_by, code) == ("client", 1001) and "client went away" in error


async def test_invalid_utf8_closes_both_sides_with_1007(upstream, proxy) -> None:
    session = await proxy(upstream)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{session.url}/bad-utf8")
        msg = await asyncio.wait_for(ws.receive(), 3)
        assert msg.type == WSMsgType.CLOSE and msg.data == 1007
    await session.stop()
    ((closed_by, code, error),) = recorded(session.options.db, "SELECT closed_by, close_code, error FROM connections")
    assert closed_by == "server" and code == 1007 and "invalid frame" in error


async def test_oversize_message_closes_with_1009_and_spares_other_connections(upstream, proxy) -> None:
    session = await proxy(upstream, max_message_size=1000)
    async with aiohttp.ClientSession() as http:
        other = await http.ws_connect(f"{session.url}/echo")
        ws = await http.ws_connect(f"{session.url}/echo")
        await ws.send_str("y" * 2000)
        msg = await asyncio.wait_for(ws.receive(), 3)
        assert msg.type == WSMsgType.CLOSE and msg.data == 1009
        assert "a message of 2000 bytes, over the limit of 1000 (--max-message-size)" in msg.extra  # the limit set
        await other.send_str("still fine")
        assert (await other.receive()).data == "still fine"
        await other.close()
    await session.stop()
    codes = recorded(session.options.db, "SELECT close_code FROM connections ORDER BY conn_id")
    assert codes == [(1000,), (1009,)]


async def test_500_concurrent_connections_lose_nothing(chat_server, proxy) -> None:
    session = await proxy(chat_server.url)
    result = await run_load(session.url, users=500, messages=4, window=4, timeout=30)
    assert result.responses == 2000 and result.events_received == 2000
    await session.stop()
    counts = dict(recorded(session.options.db, "SELECT msg_type, count(*) FROM frames WHERE kind='text' GROUP BY 1"))
    # 500 subscribes + 2000 news; their 2500 responses; 2000 new events
    assert counts == {"request": 2500, "response": 2500, "event": 2000}
    assert recorded(session.options.db, "SELECT count(*) FROM connections") == [(500,)]


async def test_a_writer_that_falls_behind_slows_the_relay_and_loses_nothing(chat_server, proxy) -> None:
    # Back pressure, not spilling (docs/recording.md): past the high-water mark the relay's pumps wait
    # for the writer, so unwritten rows stay bounded however slow the disk is, and every frame is kept.
    session = await proxy(chat_server.url)
    recorder = session.recorder
    recorder.high_water = 40
    recorder._write_hook = lambda: time.sleep(0.05)  # a slow disk: every batch takes 50 ms more
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, recorder.backlog)
            await asyncio.sleep(0)
    watcher = asyncio.create_task(watch())
    try:
        result = await run_load(session.url, users=10, messages=30, window=10, timeout=60)
    finally:
        watcher.cancel()
    assert result.responses == 300 and result.events_received == 300
    # each of the 20 pumps may add one row past the mark before it waits; opens and closes are rows too
    assert 40 <= peak <= 40 + 20 + 20, peak
    await session.stop()
    counts = dict(recorded(session.options.db, "SELECT msg_type, count(*) FROM frames WHERE kind='text' GROUP BY 1"))
    assert counts == {"request": 310, "response": 310, "event": 300}


async def test_a_writer_slower_than_the_traffic_stays_within_a_second_of_it(chat_server, proxy) -> None:
    # A disk that takes 0.25 ms per row, slower than the traffic: without a bound on the backlog's age the
    # backlog (far below the high-water marks) grows while each write takes longer, and the recording
    # falls ever further behind (3.1 s behind here without MAX_LAG_SECONDS; 1.3-1.5 s with it, the first
    # backlog being sized before the writer's speed is known).
    session = await proxy(chat_server.url)
    recorder = session.recorder
    stats = recorder.stats
    recorder._write_hook = lambda: time.sleep(0.00025 * (stats.frames_received - stats.rows_written))
    result = await run_load(session.url, users=10, messages=600, window=10, timeout=60)
    assert result.responses == 6000
    await session.stop()
    assert stats.max_lag_seconds < 2.0, stats.max_lag_seconds
    assert recorded(session.options.db, "SELECT count(*) FROM frames WHERE kind = 'text'") == [(18020,)]


async def test_appending_a_session_to_an_existing_file(chat_server, proxy, tmp_path) -> None:
    for label in ("first", "second"):
        session = await proxy(chat_server.url, label=label)
        await overview_flow(session.url)
        await session.stop()
    db = tmp_path / "rec.duckdb"
    assert recorded(db, "SELECT session_id, label FROM sessions ORDER BY 1") == [(1, "first"), (2, "second")]
    per_session = recorded(db, "SELECT session_id, count(*) FROM connections GROUP BY 1 ORDER BY 1")
    assert per_session == [(1, 3), (2, 3)]
    assert recorded(db, "SELECT count(DISTINCT conn_id) FROM connections") == [(6,)]


async def test_a_second_recorder_on_the_same_file_gets_a_clear_error(chat_server, proxy) -> None:
    session = await proxy(chat_server.url)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsproxy", "record", "--listen", "127.0.0.1:0", "--upstream", chat_server.url,
        "--db", str(session.options.db), "--quiet", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "is open in another `wsproxy record`" in lines[0]


def test_a_foreign_duckdb_file_is_refused(tmp_path) -> None:
    import duckdb
    path = tmp_path / "other.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE customers (id INTEGER)")
    session = RecordSession(RecordOptions(listen="127.0.0.1:0", db=path))
    with pytest.raises(RecordingError, match="not a wsproxy recording"):
        session.recorder.start(label=None, listen="", upstream="", redacted=True)


async def test_a_failing_writer_stops_the_relay_instead_of_relaying_unrecorded(chat_server, proxy) -> None:
    session = await proxy(chat_server.url)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{session.url}/chat?user=a")

        def disk_full() -> None:
            raise OSError(28, "No space left on device")
        session.recorder._write_hook = disk_full
        await ws.send_str('{"type":"request","timestamp":1,"id":"r1","payloadType":"subscribe","payload":{}}')
        msg = await asyncio.wait_for(ws.receive(), 3)
        while msg.type == WSMsgType.TEXT:
            msg = await asyncio.wait_for(ws.receive(), 3)
        assert msg.type == WSMsgType.CLOSE and msg.data == 1011
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(f"{session.url}/chat?user=b")
        assert info.value.status == 503
    with pytest.raises(RecordingError, match="No space left"):
        await session.stop()


@pytest.mark.parametrize("text", ["nohost", "127.0.0.1:99999", "127.0.0.1:port"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_listen(text)


@pytest.mark.parametrize("text", ["http://x", "ws://", "localhost:8765", ""])
def test_bad_upstreams(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_upstream(text)


def test_close_payload_helper_matches_rfc6455() -> None:
    assert struct.pack("!H", 1000) == b"\x03\xe8"


async def test_live_status_line_and_summary_count_the_traffic(chat_server, proxy) -> None:
    from wsproxy.cli.status import Rates, status_fields, status_line, summary
    session = await proxy(chat_server.url)
    rates = Rates()
    await overview_flow(session.url)
    await eventually(lambda: session.relay.counters.open == 0)  # the proxy finishes its close handshakes
    line = status_line(status_fields(session), rates).plain
    assert "conns 0 open / 3 total" in line and session.url in line and "lag" in line
    await session.stop()
    result = summary(session)
    assert result["connections"] == 3 and result["frames_client"] == 14 and result["frames_server"] == 27
    assert result["rows_written"] == 47 and result["error"] is None
