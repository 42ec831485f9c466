"""Recording folders: rotation, retention, several writers of one folder, and every reader reading the
folder as one recording (issue 26). In-process here; `wsproxy record --workers` as processes is in
test_workers.py."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import aiohttp
import duckdb
import pytest

from helpers import eventually, wsproxy
from wsproxy.chat.client import ChatClient, run_load
from wsproxy.core.segments import (
    Retention,
    Rotation,
    SegmentName,
    SegmentSpecError,
    conn_ids,
    parse_keep,
    parse_rotate,
    parse_segment_name,
)
from wsproxy.record.rotation import FolderPlan
from wsproxy.record.session import RecordOptions, RecordSession
from wsproxy.store.files import StoreError
from wsproxy.store.pack import pack
from wsproxy.store.query import run_query
from wsproxy.store.recording import open_recording


def rows(folder: Path, sql: str) -> list[tuple]:
    return run_query(folder, sql).rows


async def live_rows(folder: Path, sql: str) -> list[tuple]:
    """A query of a folder being written in this process: its segment's snapshot comes over HTTP from
    this event loop, so the query runs in a thread."""
    return await asyncio.to_thread(rows, folder, sql)


async def load_in_rounds(session: RecordSession, rounds: int, **load) -> int:
    """``run_load`` ``rounds`` times, each written (and a rotation that is due made) before the next:
    one fast load would be one batch, and rotation happens between batches. Returns the responses."""
    responses = 0
    for _ in range(rounds):
        batches = session.recorder.stats.batches
        responses += (await run_load(session.url, **load)).responses
        await eventually(lambda batches=batches: session.recorder.backlog == 0
                         and session.recorder.stats.batches > batches)
    return responses


def seg_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.duckdb"))


# --- the pure core ---

@pytest.mark.core
@pytest.mark.parametrize(("text", "expected"), [
    ("1GB", Rotation(bytes=10**9)), ("512MiB", Rotation(bytes=512 * 2**20)), ("1h", Rotation(seconds=3600)),
    ("30m", Rotation(seconds=1800)), ("2.5s", Rotation(seconds=2.5)), ("1d", Rotation(seconds=86400)),
])
def test_rotate_takes_a_size_or_a_duration(text, expected) -> None:
    assert parse_rotate(text) == expected


@pytest.mark.core
@pytest.mark.parametrize("text", ["", "5", "1 parsec", "-1GB", "10KB", "0.1s", "GB"])
def test_a_bad_rotate_says_what_would_do(text) -> None:
    with pytest.raises(SegmentSpecError, match="--rotate"):
        parse_rotate(text)


@pytest.mark.core
def test_keep_takes_a_count_or_a_duration_and_picks_the_oldest() -> None:
    assert parse_keep("24") == Retention(count=24)
    assert parse_keep("7d") == Retention(seconds=7 * 86400)
    for bad in ("0", "1.5", "7 weeks", "x"):
        with pytest.raises(SegmentSpecError, match="--keep"):
            parse_keep(bad)
    closed = [("a", 100.0), ("b", 200.0), ("c", 300.0)]
    assert Retention(count=2).to_delete(closed, 1000.0) == ["a"]
    assert Retention(count=5).to_delete(closed, 1000.0) == []
    assert Retention(seconds=750).to_delete(closed, 1000.0) == ["a", "b"]


@pytest.mark.core
def test_segment_names_sort_in_writing_order_and_ids_never_collide() -> None:
    name = SegmentName(3, 1, 9)
    assert name.file_name == "s00003-w001-000009.duckdb"
    assert parse_segment_name(name.file_name) == name and parse_segment_name("today.duckdb") is None
    assert name.next().file_name > name.file_name
    ids = set()
    for worker in range(4):
        first, step = conn_ids(100, worker, 4)
        ids |= {first + step * k for k in range(50)}
    assert len(ids) == 200 and min(ids) == 101


# --- rotation ---

async def recording(folder: Path, upstream: str, plan: FolderPlan, **options) -> RecordSession:
    session = RecordSession(RecordOptions(listen=options.pop("listen", "127.0.0.1:0"), upstream=upstream, db=folder,
                                          folder=plan, **options))
    await session.start()
    return session


async def test_rotation_splits_the_recording_and_every_reader_reads_it_as_one(chat_server, tmp_path) -> None:
    folder = tmp_path / "rec"
    session = await recording(folder, chat_server.url, FolderPlan(rotation=Rotation(bytes=40_000)))
    # one connection open across every rotation: its frames and its close are in different segments
    async with aiohttp.ClientSession() as http:
        long_lived = await ChatClient.connect(session.url, "longlived", session=http)
        await long_lived.subscribe()
        responses = await load_in_rounds(session, 4, users=6, messages=50, window=4)
        await long_lived.request("new", {"chatId": "load0000", "message": "after the rotations"})
        await long_lived.close()
    await session.stop()
    assert responses == 1200
    stats = session.recorder.stats
    assert stats.segments >= 3 and len(seg_files(folder)) == stats.segments
    assert rows(folder, "SELECT count(*), count(DISTINCT (conn_id, seq)) FROM frames") == [(stats.rows_written,) * 2]
    # sequence numbers (from 1) run on without a gap across segment boundaries
    assert rows(folder, "SELECT count(*) FROM (SELECT conn_id, max(seq) - count(*) AS gap FROM frames "
                        "GROUP BY conn_id) WHERE gap <> 0") == [(0,)]
    assert rows(folder, "SELECT count(*), count(closed_at), count(DISTINCT conn_id) FROM connections") == [(25, 25, 25)]
    # every request answered: 4 x 6 subscribes and 1,200 messages, and the long-lived client's two
    assert rows(folder, "SELECT count(*), count(response_seq) FROM exchanges") == [(1226, 1226)]
    assert rows(folder, "SELECT count(*) FROM violations") == [(0,)]
    assert rows(folder, "SELECT count(*), count(ended_at) FROM sessions") == [(1, 1)]
    spans = [len(duckdb.connect(str(folder / name), read_only=True).execute(
        "SELECT 1 FROM frames WHERE conn_id = 1 LIMIT 1").fetchall()) for name in seg_files(folder)]
    assert sum(spans) >= 2, "the long-lived connection has frames in more than one segment"
    # each segment is a recording on its own
    for name in seg_files(folder):
        assert wsproxy("check", str(folder / name)).returncode == 0
    # the commands that read recordings take the folder, and a glob of its segments
    check = wsproxy("check", str(folder), "--format", "json")
    assert check.returncode == 0, check.stderr
    assert '"frames": ' + str(stats.rows_written) in check.stdout.replace(":", ": ").replace(":  ", ": ")
    assert wsproxy("query", str(folder / "s*-w000-*.duckdb"), "SELECT count(*) FROM frames").returncode == 0
    for args in (("sessions",), ("connections",), ("show",), ("diagram",)):
        done = wsproxy(*args, str(folder))
        assert done.returncode == 0, (args, done.stderr)


async def test_a_folder_being_written_is_read_live_with_the_current_segment(chat_server, tmp_path) -> None:
    folder = tmp_path / "rec"
    session = await recording(folder, chat_server.url, FolderPlan(rotation=Rotation(bytes=20_000)))
    try:
        await load_in_rounds(session, 2, users=4, messages=50, window=4)
        assert session.recorder.stats.segments >= 2
        async with aiohttp.ClientSession() as http:
            client = await ChatClient.connect(session.url, "latecomer", session=http)
            await client.subscribe()
            deadline = time.monotonic() + 5
            while True:  # the newest frames are only in the segment being written: a snapshot has them
                found = await live_rows(folder, "SELECT count(*) FROM messages WHERE user_name = 'latecomer'")
                if found == [(2,)] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert found == [(2,)]
            total = await live_rows(folder, "SELECT count(*) FROM frames")
            assert total[0][0] == session.recorder.stats.rows_written
            await client.close()
    finally:
        await session.stop()


async def test_keep_deletes_the_oldest_closed_segments(chat_server, tmp_path) -> None:
    folder = tmp_path / "rec"
    session = await recording(folder, chat_server.url,
                              FolderPlan(rotation=Rotation(bytes=10_000), retention=Retention(count=2)))
    await load_in_rounds(session, 6, users=4, messages=25, window=2)
    await session.stop()
    assert session.recorder.stats.segments >= 5
    kept = seg_files(folder)
    assert len(kept) == 2 and kept[-1].endswith(f"{session.recorder.stats.segments:06d}.duckdb")
    assert not list(folder.glob("*.parts")) and not list(folder.glob("*.wal"))
    assert rows(folder, "SELECT count(*) > 0 FROM frames") == [(True,)]


async def test_rotation_by_age_happens_while_idle(chat_server, tmp_path) -> None:
    folder = tmp_path / "rec"
    session = await recording(folder, chat_server.url, FolderPlan(rotation=Rotation(seconds=0.3)))
    await eventually(lambda: session.recorder.stats.segments >= 3)
    await session.stop()
    assert len(seg_files(folder)) >= 3
    assert rows(folder, "SELECT count(*) FROM sessions") == [(1,)]


# --- several writers of one folder ---

async def test_two_writers_share_a_port_and_a_folder_with_unique_ids(chat_server, tmp_path) -> None:
    folder = tmp_path / "rec"
    first = await recording(folder, chat_server.url, FolderPlan(worker=0, workers=2, session_id=1, conn_base=0),
                            reuse_port=True)
    second = await recording(folder, chat_server.url, FolderPlan(worker=1, workers=2, session_id=1, conn_base=0),
                             listen=f"127.0.0.1:{first.port}", reuse_port=True)
    try:
        result = await run_load(first.url, users=40, messages=10, window=4)
    finally:
        await first.stop()
        await second.stop()
    assert result.responses == 400
    assert first.relay.counters.total > 0 and second.relay.counters.total > 0, "the kernel spreads connections"
    assert rows(folder, "SELECT count(*), count(DISTINCT conn_id), count(*) FILTER (conn_id % 2 = 1) "
                        "FROM connections") == [(40, 40, first.relay.counters.total)]
    written = first.recorder.stats.rows_written + second.recorder.stats.rows_written
    assert rows(folder, "SELECT count(*), count(DISTINCT (conn_id, seq)) FROM frames") == [(written, written)]
    assert rows(folder, "SELECT count(*) FROM violations") == [(0,)]
    assert rows(folder, "SELECT count(*) FROM sessions") == [(1,)]


async def test_large_frames_of_a_segment_are_parquet_parts_read_and_packed_with_the_folder(chat_server, tmp_path) -> None:
    folder = tmp_path / "rec"
    session = await recording(folder, chat_server.url, FolderPlan(rotation=Rotation(bytes=500_000)))
    body = "x" * 40_000
    async with aiohttp.ClientSession() as http:
        client = await ChatClient.connect(session.url, "big", session=http)
        await client.subscribe()
        for n in range(20):
            batches = session.recorder.stats.batches
            await client.request("new", {"chatId": "someone", "message": f"{n:03d}{body}"})
            if n % 5 == 4:  # a batch at a time: rotations happen between batches
                await eventually(lambda batches=batches: session.recorder.stats.batches > batches)
        await client.close()
    await eventually(lambda: session.recorder.backlog == 0)
    # the segment being written keeps them as Parquet parts; a live reader reads them with its snapshot
    assert list(folder.glob("*.duckdb.parts/*.parquet"))
    large = "SELECT count(*), min(length(text)) > 40000 FROM frames WHERE size > 40000 AND sender = 'client'"
    assert await live_rows(folder, large) == [(20, True)]
    await session.stop()
    assert len(seg_files(folder)) >= 2
    assert rows(folder, large) == [(20, True)]
    packed = pack(folder, tmp_path / "one.duckdb")
    assert packed.frames == rows(folder, "SELECT count(*) FROM frames")[0][0]
    moved = tmp_path / "elsewhere" / "one.duckdb"
    moved.parent.mkdir()
    shutil.move(tmp_path / "one.duckdb", moved)
    shutil.rmtree(folder)
    con = open_recording(moved)
    try:
        assert con.execute("SELECT count(*) FROM frames WHERE size > 40000 AND sender = 'client'").fetchall() == [(20,)]
        assert con.execute("SELECT count(*) FROM connections").fetchall() == [(1,)]
    finally:
        con.close()


# --- bad folders ---

def test_an_empty_folder_or_a_pattern_that_matches_nothing_says_so(tmp_path) -> None:
    with pytest.raises(StoreError, match="holds no recording segments"):
        open_recording(tmp_path)
    with pytest.raises(StoreError, match="holds no recording segments"):
        open_recording(tmp_path / "s*.duckdb")
    done = wsproxy("query", str(tmp_path), "SELECT 1")
    assert done.returncode == 2 and "holds no recording segments" in done.stderr


async def test_a_damaged_segment_is_named(chat_server, tmp_path) -> None:
    folder = tmp_path / "rec"
    session = await recording(folder, chat_server.url, FolderPlan(rotation=Rotation(bytes=10_000)))
    await load_in_rounds(session, 2, users=2, messages=50, window=2)
    await session.stop()
    victim = folder / seg_files(folder)[0]
    victim.write_bytes(victim.read_bytes()[:5000])
    done = wsproxy("query", str(folder), "SELECT count(*) FROM frames")
    assert done.returncode == 2 and victim.name in done.stderr and "Traceback" not in done.stderr
    stray = folder / "notes.duckdb"
    victim.unlink()
    duckdb.connect(str(stray)).execute("CREATE TABLE t (x INT)").close()
    done = wsproxy("query", str(folder), "SELECT count(*) FROM frames")
    assert done.returncode == 2 and "notes.duckdb is not a wsproxy recording segment" in done.stderr


def test_record_into_a_folder_refuses_a_file_and_bad_values(tmp_path) -> None:
    afile = tmp_path / "rec.duckdb"
    afile.write_bytes(b"")
    for args, says in [(("--rotate", "1h", "--db", str(afile)), "is a file"),
                       (("--keep", "3"), "--keep deletes closed segments"),
                       (("--workers", "0"), "--workers '0'"),
                       (("--rotate", "5"), "give a unit")]:
        done = wsproxy("record", "--listen", "127.0.0.1:0", *args)
        assert done.returncode == 2 and says in done.stderr, (args, done.stderr)


async def test_a_segment_cut_while_a_request_waited_checks_clean_alone(faulty_chat_server, proxy, tmp_path) -> None:
    # A rotation between a request and its response: the first segment ends with the request waiting and
    # its connection carried into the next segment. Checked alone, it is not "unanswered" there (the
    # answer is in the next segment); a recording that just stops (a killed recorder) still says so.
    server = await faulty_chat_server("drop-response")
    db = tmp_path / "rec.duckdb"
    session = await proxy(server.url, db=db)
    client = await ChatClient.connect(session.url, "alice")
    await client.subscribe()
    await client.send_json({"type": "request", "timestamp": time.time(), "id": "lost", "payloadType": "new",
                            "payload": {"chatId": "bob", "message": "hi"}})
    await eventually(lambda: session.recorder.stats.rows_written >= 3)
    await client.close()
    await session.stop()
    with duckdb.connect(str(db)) as con:  # as the first segment of a rotation has it: nothing closed yet
        con.execute("UPDATE connections SET closed_at = NULL, close_code = NULL, closed_by = NULL")
        con.execute("UPDATE sessions SET ended_at = NULL")
        con.execute("DELETE FROM frame_store WHERE kind = 'close'")
        con.execute("DELETE FROM violations")
    folder = tmp_path / "rec"
    folder.mkdir()
    first = folder / "s00001-w000-000001.duckdb"
    shutil.copy(db, first)
    codes = lambda path: [f["code"] for f in json.loads(wsproxy("check", str(path), "--format", "json").stdout)["findings"]]  # noqa: E731
    assert codes(db) == ["unanswered-request"]  # a recording that stopped: the request was never answered
    assert codes(first) == ["unanswered-request"]  # the last segment: nothing follows it
    shutil.copy(db, folder / "s00001-w000-000002.duckdb")
    assert codes(first) == []  # the next segment follows: the request's connection goes on there
