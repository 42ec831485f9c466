"""Large frames as Parquet parts beside the recording, read as one recording; `wsproxy pack` (issue 25)."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import duckdb
import msgspec
import pytest

from helpers import eventually, recorded, wsproxy
from wsproxy.clock import now_us
from wsproxy.core.rows import frame_row
from wsproxy.record.writer import Recorder
from wsproxy.store import parts as parts_module
from wsproxy.store.files import RecordingError
from wsproxy.store.parts import LARGE_FRAME_BYTES, listed_parts, parts_dir
from wsproxy.store.query import query_live

BIG = 64 * 1024
COUNT = 320  # 320 x 64 KiB each way: 40 MiB, more than is folded into the file at close


def big_text(n: int) -> str:
    """A distinct 64 KiB text message (JSON, as the protocol's, but the echo upstream does not mind)."""
    head = f'{{"type":"event","timestamp":1,"eventType":"blob","id":{n},"payload":{{"n":{n},"x":"'
    return head + (f"{n:08d}" * (BIG // 8))[: BIG - len(head) - 3] + '"}}'


def digest(texts) -> str:
    return hashlib.sha256("\n".join(sorted(texts)).encode()).hexdigest()


async def send_big_and_small(url: str, count: int = COUNT) -> list[str]:
    """``count`` large and ``count`` small messages through the proxy to the echo upstream, each echoed."""
    sent = []
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/echo", max_msg_size=0) as ws:
        for n in range(count):
            for text in (big_text(n), f'{{"small":{n}}}'):
                await ws.send_str(text)
                sent.append(text)
            for _ in range(2):
                await ws.receive(timeout=10)
    return sent


@pytest.fixture
async def big_recording(upstream, proxy, tmp_path) -> tuple[Path, list[str]]:
    session = await proxy(upstream, db=tmp_path / "big.duckdb")
    sent = await send_big_and_small(session.url)
    await session.stop()
    return session.options.db, sent


async def test_large_frames_are_parts_and_every_reader_sees_one_recording(big_recording, tmp_path) -> None:
    db, sent = big_recording
    folder = parts_dir(db)
    files = sorted(folder.iterdir())
    assert files and all(f.suffix == ".parquet" for f in files)  # no half-written .tmp left behind
    with duckdb.connect(str(db), read_only=True) as con:
        listed = listed_parts(con)
    assert sorted(f"{folder.name}/{f.name}" for f in files) == sorted(listed)
    # DuckDB itself stores only the small ones
    assert recorded(db, f"SELECT count(*) FROM frame_store WHERE size >= {LARGE_FRAME_BYTES}") == [(0,)]
    # every frame, byte for byte, both ways, with the protocol's columns
    texts = [row[0] for row in recorded(db, "SELECT text FROM frames WHERE kind = 'text' AND sender = 'client'")]
    assert digest(texts) == digest(sent)
    assert recorded(db, "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM frames WHERE kind = 'text'") \
        == [(4 * COUNT, 4 * COUNT, 1, 4 * COUNT)]
    assert recorded(db, "SELECT count(*) FROM frames WHERE event_type = 'blob' AND payload->>'n' = event_id::VARCHAR") \
        == [(2 * COUNT,)]
    # wsproxy's commands, from another folder
    elsewhere = {"cwd": "/"}
    answer = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "wsproxy", "query", str(db), "--format", "json",
                             "SELECT count(*) AS n, sum(size) AS bytes FROM messages"], capture_output=True, text=True,
                            timeout=60, **elsewhere)
    assert answer.returncode == 0, answer.stderr
    assert msgspec.json.decode(answer.stdout) == [{"n": 4 * COUNT, "bytes": sum(len(t) for t in sent) * 2}]
    checked = wsproxy("check", str(db))  # the echo sends the client's events back: findings, from every frame
    assert checked.returncode == 1 and f"{2 * COUNT} errors" in checked.stdout, checked.stdout[-500:]
    exported = tmp_path / "big.jsonl"
    assert wsproxy("export", str(db), "-o", str(exported)).returncode == 0
    assert exported.stat().st_size > 2 * COUNT * BIG
    # plain DuckDB, as docs/sql.md says: in the recording's folder, or with file_search_path
    script = ("import duckdb; print(duckdb.connect('big.duckdb', read_only=True)"
              ".execute(\"SELECT count(*) FROM frames WHERE kind = 'text'\").fetchall()[0][0])")
    plain = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script],
                           capture_output=True, text=True, cwd=db.parent, timeout=60)
    assert plain.stdout.strip() == str(4 * COUNT), plain.stderr


async def test_user_sql_reads_the_parts_but_not_the_files(big_recording) -> None:
    db, _ = big_recording
    for sql in (f"SELECT * FROM read_parquet('{parts_dir(db).name}/*.parquet')",
                f"SELECT * FROM '{parts_dir(db)}/x.parquet'"):
        refused = wsproxy("query", str(db), sql)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr


async def test_the_web_view_pages_and_filters_a_recording_with_parts(big_recording) -> None:
    from wsproxy.ui.reader import FileReader
    from wsproxy.ui.server import UiServer
    db, _ = big_recording
    reader = FileReader(db)
    server = UiServer(reader)
    await server.start()
    try:
        base = server.url.split("/?")[0]
        async with aiohttp.ClientSession(headers={"X-Wsproxy-Token": server.token}) as http:
            async with http.get(f"{base}/api/connections/1/frames", params={"offset": 1, "limit": 4}) as response:
                page = await response.json()
                assert response.status == 200, page
            assert page["total"] == 4 * COUNT + 2 and [r["seq"] for r in page["rows"]] == [2, 3, 4, 5]
            async with http.get(f"{base}/api/connections/1/frames",
                                params={"where": "f.size >= 8192 AND f.sender = 'client'", "limit": 1}) as response:
                large = await response.json()
                assert response.status == 200, large
            assert large["total"] == COUNT
    finally:
        await server.stop()
        reader.close()


async def test_pack_folds_a_recording_into_one_file_and_leaves_it_unchanged(big_recording, tmp_path) -> None:
    db, sent = big_recording
    before = {f.name: f.stat().st_size for f in parts_dir(db).iterdir()}
    packed = tmp_path / "elsewhere" / "one.duckdb"
    packed.parent.mkdir()
    done = wsproxy("pack", str(db), "-o", str(packed))
    assert done.returncode == 0, done.stderr
    assert f"packed {4 * COUNT + 2:,} frames" in done.stderr  # the two close frames too
    assert "Parquet part(s) folded in" in done.stderr
    assert sorted(p.name for p in packed.parent.iterdir()) == ["one.duckdb"]  # nothing beside it
    shutil.rmtree(parts_dir(db))  # the original's parts gone: the packed file does not need them
    with duckdb.connect(str(packed), read_only=True) as con:  # from the test's folder, no search path
        texts = [row[0] for row in con.execute("SELECT text FROM frames WHERE sender = 'client' AND kind = 'text'")
                 .fetchall()]
        assert con.execute("SELECT count(*) FROM frame_parts").fetchall() == [(0,)]
    assert digest(texts) == digest(sent)
    assert before  # the original had parts, untouched until we removed them above
    again = wsproxy("pack", str(db), "-o", str(packed))
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr


async def test_a_recording_whose_parts_are_missing_says_what_to_do(big_recording, tmp_path) -> None:
    db, _ = big_recording
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(db, moved / db.name)  # copied without its folder
    for command in (["query", str(moved / db.name), "SELECT count(*) FROM frames"], ["check", str(moved / db.name)],
                    ["pack", str(moved / db.name), "-o", str(tmp_path / "x.duckdb")]):
        result = wsproxy(*command)
        assert result.returncode == 2, result.stderr
        assert "big.duckdb.parts" in result.stderr and "wsproxy pack" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


async def test_a_few_large_frames_are_folded_into_the_file_when_it_closes(upstream, proxy, tmp_path) -> None:
    session = await proxy(upstream, db=tmp_path / "few.duckdb")
    sent = await send_big_and_small(session.url, count=20)  # 1.3 MiB of large frames: less than 16 MiB
    await session.stop()
    db = session.options.db
    assert not parts_dir(db).exists()
    with duckdb.connect(str(db), read_only=True) as con:  # one file, as before: no search path needed
        texts = [row[0] for row in con.execute("SELECT text FROM frames WHERE sender = 'client' AND kind = 'text'")
                 .fetchall()]
    assert digest(texts) == digest(sent)


async def test_live_queries_see_a_batch_of_large_and_small_frames_together(upstream, proxy, tmp_path) -> None:
    """A part is listed in the transaction that commits its batch: a reader never sees a later small
    frame before an earlier large one (`show --follow` and the web view go by order)."""
    session = await proxy(upstream, db=tmp_path / "live.duckdb")
    db = session.options.db
    gaps: list[tuple] = []
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            answer = await asyncio.to_thread(
                query_live, db, "SELECT count(*), coalesce(max(seq), 0) FROM frames WHERE kind = 'text'", None, 10)
            count, top = answer.rows[0]
            if count != top:
                gaps.append((count, top))
            await asyncio.sleep(0.01)
    watcher = asyncio.create_task(watch())
    await send_big_and_small(session.url, count=150)
    await eventually(lambda: session.recorder.stats.rows_written >= 600, timeout=20)
    answer = await asyncio.to_thread(query_live, db, "SELECT count(*) FILTER (WHERE size >= 8192) FROM frames", None, 10)
    stop.set()
    await watcher
    assert answer.rows == [(300,)]
    assert gaps == []


def test_small_parts_are_merged_as_they_pile_up_and_merged_files_go(tmp_path) -> None:
    db = tmp_path / "trickle.duckdb"
    recorder = Recorder(db, commit_interval=0.01)
    recorder.start(label=None, listen="127.0.0.1:0", upstream="ws://127.0.0.1:1", redacted=True)
    try:
        for seq in range(1, 41):  # one large frame per commit: a part each
            recorder.add_frame(frame_row(1, seq, now_us(), "client", "text", big_text(seq), None))
            deadline = time.monotonic() + 5
            while recorder.stats.rows_written < seq and time.monotonic() < deadline:
                time.sleep(0.005)
        con = recorder.database.cursor()
        listed = listed_parts(con)
        assert len(listed) < parts_module.MERGE_PARTS  # 40 parts written, merged by 16
        assert con.execute("SELECT count(*), count(DISTINCT seq) FROM frames").fetchall() == [(40, 40)]
        on_disk = sorted(f"{parts_dir(db).name}/{f.name}" for f in parts_dir(db).iterdir())
        assert on_disk == sorted(listed)  # the merged ones deleted (no reader was reading)
    finally:
        recorder.stop()
    assert recorder.error is None
    assert recorded(db, "SELECT count(*), sum(size) FROM frames") == [(40, 40 * BIG)]


def test_files_no_transaction_listed_are_deleted_when_the_recording_is_opened_again(tmp_path) -> None:
    db = tmp_path / "crashed.duckdb"
    recorder = Recorder(db, large_frame_bytes=1)  # every frame a part
    recorder.start(label=None, listen="127.0.0.1:0", upstream="ws://127.0.0.1:1", redacted=True)
    recorder.add_frame(frame_row(1, 1, now_us(), "client", "text", big_text(1), None))
    recorder.stop()
    # what a recorder killed between writing a part and committing it leaves behind
    folder = parts_dir(db)
    folder.mkdir(exist_ok=True)
    (folder / "000009-000001.parquet").write_bytes(b"PAR1 not listed")
    (folder / "000009-000002.parquet.tmp").write_bytes(b"half")
    recorder = Recorder(db)
    recorder.start(label=None, listen="127.0.0.1:0", upstream="ws://127.0.0.1:1", redacted=True)
    recorder.stop()
    assert not folder.exists() or sorted(f.name for f in folder.iterdir()) == []
    assert recorded(db, "SELECT count(*) FROM frames") == [(1,)]


def test_the_number_of_parts_stays_bounded_in_a_long_flood(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(parts_module, "MERGE_BELOW", 0)  # every part as large as a flood's
    monkeypatch.setattr(parts_module, "MAX_PARTS", 6)
    db = tmp_path / "flood.duckdb"
    recorder = Recorder(db, commit_interval=0.01)
    recorder.start(label=None, listen="127.0.0.1:0", upstream="ws://127.0.0.1:1", redacted=True)
    try:
        for seq in range(1, 31):
            recorder.add_frame(frame_row(1, seq, now_us(), "client", "text", big_text(seq), None))
            deadline = time.monotonic() + 5
            while recorder.stats.rows_written < seq and time.monotonic() < deadline:
                time.sleep(0.005)
            assert len(listed_parts(recorder.database.cursor())) <= 7  # a new part, until the merge after it
    finally:
        recorder.stop()
    assert recorded(db, "SELECT count(*), count(DISTINCT seq) FROM frames") == [(30, 30)]


def test_a_merge_that_fails_fails_the_recording_loudly(tmp_path, monkeypatch) -> None:
    def no_space(self, con, names) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(parts_module.Parts, "_merge", no_space)
    recorder = Recorder(tmp_path / "full.duckdb", commit_interval=0.01)
    recorder.start(label=None, listen="127.0.0.1:0", upstream="ws://127.0.0.1:1", redacted=True)
    for seq in range(1, parts_module.MERGE_PARTS + 2):  # a part each: enough to merge
        recorder.add_frame(frame_row(1, seq, now_us(), "client", "text", big_text(seq), None))
        deadline = time.monotonic() + 5
        while recorder.stats.rows_written < seq and recorder.error is None and time.monotonic() < deadline:
            time.sleep(0.005)
    recorder.stop()
    assert recorder.error is not None and "merging the Parquet parts" in recorder.error
    assert "No space left" in recorder.error and "\n" not in recorder.error


async def test_a_parts_folder_that_cannot_be_made_stops_the_recording_loudly(upstream, proxy, tmp_path) -> None:
    db = tmp_path / "rec.duckdb"
    parts_dir(db).write_text("a file where the parts folder should be")
    session = await proxy(upstream, db=db)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{session.url}/echo", max_msg_size=0) as ws:
        await ws.send_str(big_text(1))
        closed = await ws.receive(timeout=10)
        while closed.type is aiohttp.WSMsgType.TEXT:
            closed = await ws.receive(timeout=10)
    assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1011
    error = session.recorder.error
    assert error is not None and "writing to" in error and str(parts_dir(db)) in error and "\n" not in error
    with pytest.raises(RecordingError, match="File exists"):
        await session.stop()
