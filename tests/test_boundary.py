"""The SQL boundary, tried as a hostile user would: every statement that once got through (issue 23)
and what else reaches past "read the recording", against all three places a user's SQL runs — a
finished file (`wsproxy query`, `wsproxy ui FILE`), the recorder's live endpoint (`wsproxy query` on
a file being recorded) and the web view's WHERE (`record --ui`). Each must be refused in one line,
or stopped by its time limit, and leave the recording and the recorder as they were."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from helpers import child, eventually, free_port, read_until, recorded, stop
from wsproxy.chat.client import ChatClient
from wsproxy.store.query import query_live, query_live_async, run_query
from wsproxy.store.sql import QueryError, UserSql
from wsproxy.store.sql_guard import check_query, check_where
from wsproxy.ui.reader import FileReader, RecorderReader
from wsproxy.ui.server import UiServer

FIXTURE = Path(__file__).parent.parent / "fixtures" / "schema-v4-demo.duckdb"
LONG = "SELECT count(*) FROM range(100000000000) a, range(10) b"  # minutes of work: only a time limit ends it

# (statement, what the one-line error says): each got through once, or would reach past the recording
HOSTILE = [
    ("EXPLAIN ANALYZE DELETE FROM frame_store", "read-only: EXPLAIN"),
    ("EXPLAIN ANALYZE UPDATE wsproxy_meta SET value = 'x'", "read-only: EXPLAIN"),
    ("EXPLAIN ANALYZE DROP VIEW frames", "read-only: EXPLAIN"),
    ("EXPLAIN ANALYZE COPY (SELECT 42) TO '{tmp}/written.csv'", "read-only: EXPLAIN"),
    ("EXPLAIN SELECT 1", "read-only: EXPLAIN"),
    ("SELECT 1; DELETE FROM frame_store", "read-only: DELETE"),
    ("COPY frames TO '{tmp}/written.csv'", "read-only: COPY"),
    ("EXPORT DATABASE '{tmp}/exported'", "read-only: EXPORT"),
    ("ATTACH '{tmp}/other.duckdb' AS other", "read-only: ATTACH"),
    ("INSTALL httpfs", "read-only"),
    ("LOAD httpfs", "read-only"),
    ("SET memory_limit = '1MB'", "read-only: SET"),
    ("RESET threads", "read-only"),
    ("PRAGMA enable_profiling", "read-only: PRAGMA"),
    ("CALL enable_logging()", "read-only: CALL"),
    ("CHECKPOINT", "read-only"),
    ("CREATE TEMP TABLE x AS SELECT 1", "read-only: CREATE"),
    ("PIVOT frames ON sender USING count(*)", "read-only"),
    ("SELECT * FROM enable_logging(storage = 'file', storage_path = '/proc/nope')", "enable_logging() is refused"),
    ("SELECT * FROM read_text('/etc/passwd')", "read_text() is refused"),
    ("SELECT * FROM READ_TEXT('/etc/passwd')", "read_text() is refused"),
    ("SELECT * FROM system.main.read_blob('/etc/passwd')", "read_blob() is refused"),
    ("SELECT (SELECT count(*) FROM read_csv('/etc/passwd'))", "read_csv() is refused"),
    ("WITH x AS (SELECT * FROM read_text('/etc/passwd')) SELECT * FROM x", "read_text() is refused"),
    ("SELECT * FROM frames WHERE text IN (SELECT content FROM read_text('/etc/passwd'))", "read_text() is refused"),
    ("SELECT * FROM '/etc/passwd'", "names a file"),
    ("FROM 'x.parquet'", "names a file"),
    ("SELECT * FROM glob('/*')", "glob() is refused"),
    ("SELECT * FROM parquet_metadata('/etc/passwd')", "parquet_metadata() is refused"),
    ("SELECT * FROM query('SELECT 1')", "query() is refused"),
    ("SELECT * FROM query_table('frames')", "query_table() is refused"),
    ("SELECT * FROM checkpoint()", "checkpoint() is refused"),
    ("SELECT * FROM force_checkpoint()", "force_checkpoint() is refused"),
    ("SELECT * FROM duckdb_secrets()", "duckdb_secrets() is refused"),
    ("SELECT * FROM truncate_duckdb_logs()", "truncate_duckdb_logs() is refused"),
    ("SELECT nextval('s')", "nextval() is refused"),
    ("SELECT write_log('x')", "write_log() is refused"),
    ("SELECT sleep_ms(100000)", "sleep_ms() is refused"),
    ("SELEC 1", "does not parse"),
    ("", "no SQL statement"),
]
WRITTEN = ("written.csv", "exported", "other.duckdb")


def statements(tmp: Path) -> list[tuple[str, str]]:
    return [(sql.format(tmp=tmp), message) for sql, message in HOSTILE]


def untouched(tmp: Path) -> None:
    for name in WRITTEN:
        assert not (tmp / name).exists(), f"{name} was written"


# --- the parser's decisions, alone ---

@pytest.mark.parametrize("sql,message", HOSTILE)
def test_the_guard_refuses_each_hostile_statement(sql, message, tmp_path) -> None:
    with pytest.raises(QueryError, match=message.replace("(", r"\(").replace(")", r"\)")) as refused:
        check_query(sql.format(tmp=tmp_path))
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("sql", [
    "SELECT 1", "WITH a AS (SELECT 1 AS x) SELECT x FROM a", "FROM frames LIMIT 1", "VALUES (1), (2)",
    "DESCRIBE frames", "SHOW TABLES", "SUMMARIZE frames", "SELECT * FROM range(3)", "SELECT unnest([1, 2])",
    "SELECT * FROM json_each('{\"a\": 1}')", "SELECT * FROM duckdb_tables()", "SELECT 1; SELECT 2",
    "SELECT current_setting('threads')",
])
def test_the_guard_lets_queries_through(sql) -> None:
    check_query(sql)


@pytest.mark.parametrize("where,message", [
    ("1=1) OR (1=1", "must be one condition"),
    ("seq > $1", "may not use parameters"),
    ("seq > ?", "may not use parameters"),
    ("1=1; DELETE FROM frame_store", "must be one condition"),
    ("seq > 1 LIMIT 5", "must be one condition"),
    ("seq, 1", "must be one condition"),
    ("seq > 1 FROM frames", "must be one condition"),
    ("seq > 1 UNION SELECT 1", "must be one condition"),
    ("EXISTS (SELECT * FROM read_text('/etc/passwd'))", "read_text() is refused"),
])
def test_a_where_is_one_expression_and_nothing_more(where, message) -> None:
    with pytest.raises(QueryError, match=message.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")):
        check_where(where)
    check_where("seq > 1 AND EXISTS (SELECT 1 FROM violations v WHERE v.seq = f.seq) -- a note")


# --- entry point 1: a finished file ---

def test_a_finished_file_refuses_every_hostile_statement_and_is_unchanged(tmp_path) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copy(FIXTURE, db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for sql, message in statements(tmp_path):
        with pytest.raises(QueryError) as refused:
            run_query(db, sql)
        assert message in str(refused.value) and "\n" not in str(refused.value), sql
    untouched(tmp_path)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    settings = run_query(db, "SELECT current_setting('enable_external_access'), current_setting('lock_configuration')")
    assert settings.rows == [(False, True)]


def test_query_command_refuses_in_one_line_with_exit_2(tmp_path) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copy(FIXTURE, db)
    result = subprocess.run([sys.executable, "-m", "wsproxy", "query", str(db),
                             f"EXPLAIN ANALYZE COPY (SELECT 42) TO '{tmp_path}/written.csv'"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "read-only: EXPLAIN" in result.stderr
    untouched(tmp_path)


def test_a_long_query_on_a_file_stops_at_its_time_limit(tmp_path) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copy(FIXTURE, db)
    with pytest.raises(QueryError, match=r"ran longer than 0.5 s and was stopped.*--sql-timeout"):
        run_query(db, LONG, timeout=0.5)
    result = subprocess.run([sys.executable, "-m", "wsproxy", "query", str(db), LONG, "--sql-timeout", "0.5"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "ran longer than 0.5 s" in result.stderr
    bad = subprocess.run([sys.executable, "-m", "wsproxy", "query", str(db), "SELECT 1", "--sql-timeout", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--sql-timeout must be more than 0" in bad.stderr


def test_ctrl_c_stops_a_running_query_at_once(tmp_path) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copy(FIXTURE, db)
    process = subprocess.Popen([sys.executable, "-m", "wsproxy", "query", str(db), LONG, "--sql-timeout", "300"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        import time
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=5)
    finally:
        process.kill()
    assert process.returncode == 130, err


# --- entry point 2: the recorder's live endpoint ---

async def traffic(url: str, user: str) -> None:
    client = await ChatClient.connect(url, user)
    await client.subscribe()
    await client.close()


async def test_the_live_endpoint_refuses_every_hostile_statement_and_keeps_recording(chat_server, proxy,
                                                                                       tmp_path) -> None:
    session = await proxy(chat_server.url, db=tmp_path / "live.duckdb")
    await traffic(session.url, "alice")
    assert session.sql is not None
    count = "SELECT count(*) FROM frames"
    await eventually(lambda: session.recorder.stats.rows_written >= 4 and session.recorder.backlog == 0)
    frames = (await session.sql.query(count)).rows[0][0]
    for sql, message in statements(tmp_path):
        with pytest.raises(QueryError) as refused:
            await asyncio.to_thread(query_live, session.options.db, sql)
        assert message in str(refused.value) and "\n" not in str(refused.value), sql
    untouched(tmp_path)
    assert (await session.sql.query(count)).rows[0][0] == frames
    settings = await asyncio.to_thread(query_live, session.options.db, "SELECT current_setting('enable_external_access')")
    assert settings.rows == [(False,)]
    await traffic(session.url, "bob")  # the recorder goes on: a new client is relayed and recorded
    await session.stop()
    assert session.recorder.error is None
    assert recorded(session.options.db, count)[0][0] > frames
    assert recorded(session.options.db, "SELECT count(*) FROM sessions WHERE ended_at IS NULL") == [(0,)]


async def test_concurrent_live_queries_each_get_their_own_answer(chat_server, proxy, tmp_path) -> None:
    session = await proxy(chat_server.url, db=tmp_path / "live.duckdb")
    await traffic(session.url, "alice")
    sql = "SELECT ?::INTEGER AS n, (SELECT count(*) FROM frames f, range(20)) AS work"

    def ask(n: int) -> int:
        return int(query_live(session.options.db, sql, [n]).rows[0][0])
    answers = await asyncio.gather(*(asyncio.to_thread(ask, n) for n in range(200)))
    assert answers == list(range(200))
    assert session.sql is not None
    direct = await asyncio.gather(*(session.sql.query(sql, [n]) for n in range(200)))
    assert [result.rows[0][0] for result in direct] == list(range(200))


async def test_a_long_live_query_stops_at_its_limit_and_holds_back_neither_writes_nor_checkpoints(
        upstream, proxy, tmp_path) -> None:
    session = await proxy(upstream, db=tmp_path / "live.duckdb", sql_timeout=60)
    db = session.options.db
    wal = db.with_name(db.name + ".wal")
    asked = asyncio.create_task(asyncio.to_thread(query_live, db, LONG, None, 30))
    await eventually(lambda: session.sql is not None and session.sql.running == 1)
    largest = 0
    async with aiohttp.ClientSession() as http:
        # 6 x 1,200 messages of 8,000 B each way (under store.parts' 8 KiB: DuckDB stores them): 115 MB,
        # seven times DuckDB's 16 MB checkpoint threshold; one at a time, as a chat is (sent in bursts,
        # a writer on a busy machine takes bigger batches, and the log passes its limit by one of them)
        for _ in range(6):
            async with http.ws_connect(f"{session.url}/echo", max_msg_size=0) as ws:  # each close: an UPDATE
                for _ in range(1200):
                    await ws.send_str("x" * 8_000)
                    await ws.receive(timeout=10)
                    largest = max(largest, _size(wal))
    await eventually(lambda: session.recorder.stats.rows_written >= 14_400, timeout=30)
    assert largest < 48 * 1024 * 1024, f"the WAL grew to {largest:,} bytes: checkpoints were held back"
    with pytest.raises(QueryError, match="stopped so that the recording could checkpoint"):
        await asked  # the writer came first
    with pytest.raises(QueryError, match=r"ran longer than 0\.5 s"):
        await asyncio.to_thread(query_live, db, LONG, None, 0.5)  # the asker's own, shorter limit


def _size(path: Path) -> int:
    """A file's size, 0 while it does not exist (a checkpoint removes the WAL at any moment)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


async def test_a_live_query_whose_asker_hangs_up_is_interrupted(chat_server, proxy, tmp_path) -> None:
    session = await proxy(chat_server.url, db=tmp_path / "live.duckdb", sql_timeout=120)
    import json

    from wsproxy.store.files import sidecar_path
    info = json.loads(sidecar_path(session.options.db).read_text())
    async with aiohttp.ClientSession() as http:
        with pytest.raises(asyncio.TimeoutError):
            async with http.post(f"http://127.0.0.1:{info['port']}/query", json={"sql": LONG},
                                 headers={"X-Wsproxy-Token": info["token"]},
                                 timeout=aiohttp.ClientTimeout(total=1)):
                pass
    assert session.sql is not None
    await eventually(lambda: session.sql.running == 0, timeout=5)
    async with aiohttp.ClientSession() as http, http.post(  # a request that is not a query request: 400, not a traceback
            f"http://127.0.0.1:{info['port']}/query", data=b"{not json", headers={"X-Wsproxy-Token": info["token"]}
    ) as response:
        assert response.status == 400 and "not a query request" in (await response.json())["error"]


async def test_the_web_view_of_a_file_another_process_records_hangs_up_on_the_recorder(chat_server, proxy,
                                                                                        tmp_path) -> None:
    """`ui FILE` asks the recorder of FILE over HTTP: a page that goes away must stop the recorder's query too."""
    session = await proxy(chat_server.url, db=tmp_path / "live.duckdb", sql_timeout=120)
    assert session.sql is not None
    asker = asyncio.create_task(query_live_async(session.options.db, LONG, None, 120))
    await eventually(lambda: session.sql is not None and session.sql.running == 1)
    asker.cancel()
    await eventually(lambda: session.sql is not None and session.sql.running == 0, timeout=5)
    answer = await query_live_async(session.options.db, "SELECT 42")
    assert answer.rows == [(42,)]
    with pytest.raises(QueryError, match="read_text"):
        await query_live_async(session.options.db, "SELECT * FROM read_text('/etc/passwd')")


# --- entry point 3: the web view's WHERE (record --ui, and ui FILE) ---

HOSTILE_WHERE = [
    ("EXISTS (SELECT * FROM enable_logging(storage='file', storage_path='/proc/nope'))", "enable_logging() is refused"),
    ("EXISTS (SELECT * FROM read_text('/etc/passwd'))", "read_text() is refused"),
    ("EXISTS (FROM '/etc/passwd')", "names a file"),
    ("(SELECT count(*) FROM query('SELECT 1')) > 0", "query() is refused"),
    ("EXISTS (SELECT * FROM checkpoint())", "checkpoint() is refused"),
    ("nextval('s') > 0", "nextval() is refused"),
    ("1=1) OR (1=1", "must be one condition"),
    ("seq > $1", "may not use parameters"),
]


async def test_the_live_web_view_refuses_every_hostile_where(chat_server, proxy, tmp_path) -> None:
    session = await proxy(chat_server.url, db=tmp_path / "live.duckdb")
    await traffic(session.url, "alice")
    await traffic(session.url, "bob")
    await eventually(lambda: session.recorder.stats.rows_written >= 4)
    assert session.sql is not None
    server = UiServer(RecorderReader(session.sql), session.recorder.session_id)
    await server.start()
    try:
        async with aiohttp.ClientSession(headers={"X-Wsproxy-Token": server.token}) as http:
            url = server.url.split("/?")[0] + "/api/connections/1/frames"
            for where, message in HOSTILE_WHERE:
                async with http.get(url, params={"where": where}) as response:
                    body = await response.json()
                assert response.status == 400 and message in body["error"], (where, body)
            async with http.get(url, params={"where": "seq >= 0"}) as response:
                rows = (await response.json())["rows"]
            assert rows and {row["conn_id"] for row in rows} == {1}  # this connection's frames only
        await traffic(session.url, "carol")  # still recording, nothing refused
        assert session.relay.stopped_reason is None
    finally:
        await server.stop()


async def test_a_long_where_stops_at_its_limit_and_when_the_browser_gives_up(tmp_path) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copy(FIXTURE, db)
    reader = FileReader(db, timeout=0.5)
    server = UiServer(reader)
    await server.start()
    where = "(SELECT count(*) FROM range(100000000000) a, range(10) b) > 0"
    try:
        async with aiohttp.ClientSession(headers={"X-Wsproxy-Token": server.token}) as http:
            url = server.url.split("/?")[0] + "/api/connections/1/frames"
            async with http.get(url, params={"where": where}) as response:
                assert response.status == 400 and "ran longer than 0.5 s" in (await response.json())["error"]
            reader.timeout = 120
            assert reader._sql is not None
            reader._sql.timeout = 120
            with pytest.raises(asyncio.TimeoutError):
                async with http.get(url, params={"where": where}, timeout=aiohttp.ClientTimeout(total=1)):
                    pass
            await eventually(lambda: reader._sql.running == 0, timeout=5)
    finally:
        await server.stop()
        reader.close()


# --- stopping while a query runs ---

async def long_where(url: str) -> asyncio.Task:
    """Start a page request whose WHERE runs for minutes; the task never finishes by itself."""
    async def ask() -> None:
        async with aiohttp.ClientSession() as http, http.get(url.replace("/?", "/api/connections/1/frames?"),
                            params={"where": "(SELECT count(*) FROM range(100000000000) a, range(10) b) > 0"}) as response:
            await response.read()
    task = asyncio.create_task(ask())
    await asyncio.sleep(1.5)
    return task


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_record_stops_within_5_s_while_a_query_runs_with_everything_written(chat_server, tmp_path, sig) -> None:
    db, port = tmp_path / "live.duckdb", free_port()
    async with child("record", "--listen", f"127.0.0.1:{port}", "--upstream", chat_server.url, "--db", str(db),
                     "--log-format", "json", "--ui", "127.0.0.1:0", "--sql-timeout", "300") as recorder:
        assert recorder.stderr is not None
        await read_until(recorder.stderr, '"event":"listening"', 20)
        url = json.loads((await read_until(recorder.stderr, '"event":"ui"', 20))[-1])["url"]
        await traffic(f"ws://127.0.0.1:{port}", "alice")
        asker = await long_where(url)
        started = asyncio.get_running_loop().time()
        code, _ = await stop(recorder, sig)
        assert code == 0 and asyncio.get_running_loop().time() - started < 5
        asker.cancel()
    assert recorded(db, "SELECT count(*) FROM sessions WHERE ended_at IS NULL") == [(0,)]
    assert recorded(db, "SELECT count(*) FROM frames WHERE sender = 'client'")[0][0] >= 1
    assert not db.with_name(db.name + ".wal").exists()  # checkpointed
    assert not db.with_name(db.name + ".wsproxy-live").exists()


async def test_ui_stops_at_once_while_a_query_runs(tmp_path) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copy(FIXTURE, db)
    async with child("ui", str(db), "--listen", "127.0.0.1:0", "--sql-timeout", "300") as ui:
        assert ui.stdout is not None
        url = (await asyncio.wait_for(ui.stdout.readline(), 20)).decode().strip()
        asker = await long_where(url)
        started = asyncio.get_running_loop().time()
        code, _ = await stop(ui)
        assert code == 0 and asyncio.get_running_loop().time() - started < 3
        asker.cancel()


def test_a_user_sql_runner_refuses_new_work_once_stopping() -> None:
    import duckdb
    runner = UserSql(duckdb.connect(":memory:"), owned=True)
    runner.interrupt_all()
    with pytest.raises(QueryError, match="wsproxy is stopping"):
        runner.run("SELECT 1")
    runner.close()


async def test_interrupts_at_any_moment_leave_every_cursor_usable(tmp_path) -> None:
    """A time limit or a departing asker may interrupt a statement just as it finishes; an interrupt that
    landed in the ROLLBACK after it left its cursor in an aborted transaction, and every later statement
    there failed with "Current transaction is aborted" (the web view's pages did, in CI)."""
    import random

    from wsproxy.store.files import open_for_writing
    con = open_for_writing(tmp_path / "r.duckdb")
    con.execute("CREATE TABLE t AS SELECT range AS x FROM range(200000)")
    runner = UserSql(con)
    chance = random.Random(25)
    failures: list[str] = []
    for _ in range(800):
        sql = chance.choice(["SELECT count(*) FROM t", "SELECT sum(x) FROM t, range(3)", "SELECT 1"])
        asker = asyncio.ensure_future(runner.query(sql, timeout=chance.choice([None, 0.001, 0.002])))
        await asyncio.sleep(chance.random() * 0.004)
        if chance.random() < 0.5:
            asker.cancel()
        try:
            await asker
        except asyncio.CancelledError:
            pass
        except QueryError as exc:  # stopped is fine; anything else is not
            if "was stopped" not in str(exc):
                failures.append(str(exc))
    assert failures == []
    answers = await asyncio.gather(*(runner.query("SELECT 42") for _ in range(8)))  # every cursor, and a few new
    assert [answer.rows for answer in answers] == [[(42,)]] * 8
    runner.close()
    con.close()
