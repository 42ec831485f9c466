"""The Parquet dataset of a recording read by the engines people analyse traffic with: Apache Spark
(pyspark, local mode) and ClickHouse (chDB, in-process) give the same answers as DuckDB to the
cookbook's questions (docs/scale.md), payloads byte for byte (issue 26).

The recording: `record --workers 2 --rotate` in front of a chat server that misbehaves now and then
(findings to count), then a second session of clean traffic, each exported on its own into one
hive-partitioned dataset, as two exports of a week's recordings would be."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from helpers import free_port, wsproxy
from wsproxy.chat.client import ChatClient, run_load
from wsproxy.chat.faults import Faults
from wsproxy.chat.server import start_chat_server

pytestmark = pytest.mark.slow

TABLES = ("sessions", "connections", "frames", "exchanges", "events", "violations", "injections")
FAULTS = "skip-event-id:0.05,duplicate-response:0.05,repeat-event-id:0.05,orphan-response:0.05"
# Characters engines are known to mangle: non-ASCII, escapes, key order a JSON type would sort.
AWKWARD = {"chatId": "load0001", "message": "h\u00e9llo \U0001F600 \"quoted\" \\ tab\t", "zeta": 1, "alpha": [2, 1]}

# The cookbook's questions, in SQL the three engines share; {p50}/{p95} are each engine's exact,
# interpolating percentile (DuckDB quantile_cont, Spark percentile, ClickHouse quantileExactInclusive).
QUESTIONS = {
    "frames per sender and type":
        "SELECT sender, coalesce(msg_type, '-') AS t, count(*) AS n FROM frames GROUP BY sender, coalesce(msg_type, '-') "
        "ORDER BY sender, t",
    "requests per payloadType, answered, latency percentiles":
        "SELECT payload_type, count(*) AS requests, count(response_seq) AS answered, {p50} AS p50, {p95} AS p95 "
        "FROM exchanges GROUP BY payload_type ORDER BY payload_type",
    "highest event id per connection":
        "SELECT session_id, conn_id, max(event_id) AS last_event FROM frames WHERE msg_type = 'event' "
        "AND sender = 'server' GROUP BY session_id, conn_id ORDER BY session_id, conn_id",
    "findings per rule":
        "SELECT code, severity, count(*) AS n FROM violations GROUP BY code, severity ORDER BY code, severity",
    "rows and sessions per table":
        "SELECT * FROM (SELECT 'frames' AS t, count(*) AS n, count(DISTINCT session_id) AS s FROM frames UNION ALL "
        "SELECT 'connections', count(*), count(DISTINCT session_id) FROM connections UNION ALL "
        "SELECT 'events', count(*), count(DISTINCT session_id) FROM events) ORDER BY t",
    "payloads byte for byte":
        "SELECT session_id, conn_id, seq, text, payload, ts FROM frames WHERE kind = 'text' "
        "ORDER BY session_id, conn_id, seq",
    "connections per worker (a partition column)":
        "SELECT worker, count(*) AS n FROM connections GROUP BY worker ORDER BY worker",
}
PERCENTILES = {
    "duckdb": ("quantile_cont(latency_ms, 0.5)", "quantile_cont(latency_ms, 0.95)"),
    "spark": ("percentile(latency_ms, 0.5)", "percentile(latency_ms, 0.95)"),
    "clickhouse": ("quantileExactInclusive(0.5)(latency_ms)", "quantileExactInclusive(0.95)(latency_ms)"),
}


async def _record(folder: Path, faults: str, users: int, awkward: bool) -> None:
    server = await start_chat_server("127.0.0.1", 0, Faults.parse(faults, seed=7) if faults else None)
    port = free_port()
    master = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsproxy", "record", "--listen", f"127.0.0.1:{port}", "--upstream", server.url,
        "--db", str(folder), "--workers", "2", "--rotate", "1s", "--log-format", "json",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        assert master.stderr is not None
        while b'"event":"listening"' not in (line := await asyncio.wait_for(master.stderr.readline(), 90)):
            assert line, "the recorder ended before it listened"
        url = f"ws://127.0.0.1:{port}"
        await run_load(url, users=users, messages=15, window=4, timeout=30)
        if awkward:
            client = await ChatClient.connect(url, "awkward")
            await client.subscribe()
            await client.request("new", AWKWARD)
            await client.close()
        master.send_signal(signal.SIGINT)
        _, said = await asyncio.wait_for(master.communicate(), 90)
        assert master.returncode in (0, 1), said.decode()[-2000:]
    finally:
        if master.returncode is None:
            master.kill()
            await master.wait()
        await server.stop()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Two sessions in one recording folder, exported one at a time into one partitioned dataset."""
    root = tmp_path_factory.mktemp("engines")
    folder, out = root / "staging", root / "dataset"
    asyncio.run(_record(folder, FAULTS, users=12, awkward=True))
    asyncio.run(_record(folder, "", users=4, awkward=False))
    for session in ("1", "2"):
        done = wsproxy("export", str(folder), "--session", session, "--format", "parquet",
                       "--partition", "date,worker", "-o", str(out))
        assert done.returncode == 0, done.stderr
    return out


def _duckdb(dataset: Path) -> Callable[[str], list[tuple]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table in TABLES:
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{dataset}/{table}/**/*.parquet', "
                    f"hive_partitioning = true)")
    return lambda sql: [tuple(row) for row in con.execute(sql).fetchall()]


def _spark(dataset: Path) -> Iterator[Callable[[str], list[tuple]]]:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master("local[2]").appName("wsproxy-engines")
             .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1").config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.shuffle.partitions", "4").getOrCreate())
    try:
        for table in TABLES:
            spark.read.parquet(str(dataset / table)).createOrReplaceTempView(table)
        yield lambda sql: [tuple(row) for row in spark.sql(sql).collect()]
    finally:
        spark.stop()


def _clickhouse(dataset: Path) -> Callable[[str], list[tuple]]:
    import chdb
    sources = {table: f"file('{dataset}/{table}/**/*.parquet', Parquet)" for table in TABLES}

    def ask(sql: str) -> list[tuple]:
        for table, source in sources.items():  # the table names as ClickHouse's file() table function
            sql = sql.replace(f" FROM {table} ", f" FROM {source} ").replace(f" FROM {table}", f" FROM {source}")
        result = chdb.query(sql + " SETTINGS use_hive_partitioning = 1, session_timezone = 'UTC'", "ArrowTable")
        return [tuple(row.values()) for row in result.to_pylist()]
    return ask


def _plain(value: Any) -> Any:
    """One value as all three engines' answers can be compared: whole numbers as int, others to 1e-9."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return round(value, 9) if math.isfinite(value) else value
    if isinstance(value, datetime):  # Spark hands naive datetimes in its session time zone (UTC here)
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return value


def _answers(ask: Callable[[str], list[tuple]], engine: str) -> dict[str, list[tuple]]:
    p50, p95 = PERCENTILES[engine]
    return {name: [tuple(_plain(v) for v in row) for row in ask(sql.format(p50=p50, p95=p95))]
            for name, sql in QUESTIONS.items()}


@pytest.fixture(scope="module")
def expected(dataset: Path) -> dict[str, list[tuple]]:
    answers = _answers(_duckdb(dataset), "duckdb")
    # the recording gave every question something to answer
    assert answers["findings per rule"], "the faulty server caused findings"
    assert len(answers["requests per payloadType, answered, latency percentiles"]) == 2  # new, subscribe
    assert {row[1] for row in answers["rows and sessions per table"]} != {0}
    assert [row[2] for row in answers["rows and sessions per table"]] == [2, 2, 2]
    assert len(answers["connections per worker (a partition column)"]) == 2
    texts = [row[3] for row in answers["payloads byte for byte"]]
    assert any(json.dumps(AWKWARD, ensure_ascii=False, separators=(",", ":"))[:-1] in text for text in texts)
    return answers


def test_every_file_has_the_documented_fixed_types(dataset: Path) -> None:
    import pyarrow as pa
    schemas: dict[str, pa.Schema] = {}
    for file in sorted(dataset.glob("*/**/*.parquet")):
        table = file.relative_to(dataset).parts[0]
        schema = pq.read_schema(file)
        assert all(field.nullable for field in schema), (file, schema)
        assert not any(pa.types.is_unsigned_integer(field.type) for field in schema), (file, schema)
        for field in schema:
            if pa.types.is_timestamp(field.type):
                assert field.type.unit == "us" and field.type.tz == "UTC", (file, field)
        assert "session_id" in schema.names, file
        assert schemas.setdefault(table, schema) == schema, f"{file} differs from the other {table} files"
    assert set(schemas) == set(TABLES)


@pytest.mark.skipif(not shutil.which("java") and not os.environ.get("CI"),
                    reason="Spark needs Java (CI installs Debian's openjdk-17-jre-headless; so does ./dev.sh test)")
def test_spark_answers_the_cookbook_as_duckdb_does(dataset: Path, expected) -> None:
    pytest.importorskip("pyspark")
    for ask in _spark(dataset):
        got = _answers(ask, "spark")
        for name in QUESTIONS:
            assert got[name] == expected[name], name


def test_clickhouse_answers_the_cookbook_as_duckdb_does(dataset: Path, expected) -> None:
    got = _answers(_clickhouse(dataset), "clickhouse")
    for name in QUESTIONS:
        assert got[name] == expected[name], name


def test_the_documented_clickhouse_setting_keeps_json_annotated_payloads_byte_exact(dataset: Path, tmp_path) -> None:
    """Our dataset has no JSON annotation; a Parquet file another tool wrote with one (DuckDB's own COPY of
    a recording's JSON column) is re-sorted by ClickHouse's JSON type unless docs/scale.md's setting is on."""
    import chdb
    annotated = tmp_path / "annotated.parquet"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT seq, payload::JSON AS payload FROM read_parquet('{dataset}/frames/**/*.parquet') "
                    f"WHERE payload LIKE '%zeta%') TO '{annotated}'")
        want = con.execute(f"SELECT payload::VARCHAR FROM '{annotated}'").fetchall()
    assert want and '"zeta":1,"alpha"' in want[0][0]
    source = f"SELECT payload FROM file('{annotated}', Parquet)"
    assert [tuple(r.values()) for r in chdb.query(source, "ArrowTable").to_pylist()] != want  # re-sorted keys
    kept = chdb.query(source + " SETTINGS input_format_parquet_enable_json_parsing = 0", "ArrowTable").to_pylist()
    assert [tuple(r.values()) for r in kept] == want
