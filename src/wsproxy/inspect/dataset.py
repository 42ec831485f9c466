"""``wsproxy export --format parquet``: a recording's tables as Parquet that every engine reads the same.

Each table is one file (``DIR/frames.parquet``), or with ``--partition`` a hive-partitioned dataset
(``DIR/frames/date=2026-12-04/worker=1/<name>-0.parquet``) that Spark, ClickHouse, DuckDB, Polars and
Trino read as one table. The column types are fixed (docs/scale.md), whatever the data:

- every column is OPTIONAL (nullable): a file's flags never depend on what its rows happen to hold;
- times are TIMESTAMP (microseconds, adjusted to UTC); integers are signed INT32/INT64, never unsigned;
- JSON (``payload``, headers) is a plain string holding the bytes as sent, with no JSON annotation, so
  that no engine re-sorts or re-formats it;
- every table carries ``session_id``, and ``connections``, ``frames``, ``exchanges``, ``events``,
  ``violations`` and ``injections`` the ``worker`` that recorded them (0 for a single recorder).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from wsproxy.core.errors import UserError
from wsproxy.core.segments import parse_segment_name
from wsproxy.store.folder import segments

PartitionKey = Literal["date", "worker", "session"]
PARTITION_KEYS: tuple[str, ...] = get_args(PartitionKey)

# Each table, the time its date partition is taken from, and whether it has a worker.
TABLES: dict[str, tuple[str, bool]] = {
    "sessions": ("started_at", False),
    "connections": ("opened_at", True),
    "frames": ("ts", True),
    "exchanges": ("request_ts", True),
    "events": ("ts", True),
    "violations": ("ts", True),
    "injections": ("ts", True),
}
_COLUMN_CASTS = {"JSON": "VARCHAR", "UBIGINT": "BIGINT", "UINTEGER": "BIGINT", "USMALLINT": "INTEGER",
                 "UTINYINT": "INTEGER", "HUGEINT": "BIGINT", "TIMESTAMP": "TIMESTAMPTZ"}
BATCH_ROWS = 64 * 1024
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # the folder name Spark, ClickHouse and DuckDB read as NULL


@dataclass(frozen=True)
class Written:
    tables: dict[str, int]  # rows written per table
    files: int


def parse_partition(text: str | None) -> list[PartitionKey]:
    if not text:
        return []
    keys = [key.strip() for key in text.split(",") if key.strip()]
    for key in keys:
        if key not in PARTITION_KEYS:
            raise UserError(f"--partition {key!r} is not one of {', '.join(PARTITION_KEYS)} (e.g. --partition date,worker)")
    return keys  # type: ignore[return-value]  # checked just above


def workers_of(con: duckdb.DuckDBPyConnection, recording: Path) -> str:
    """SQL for a table (conn_id, worker): which worker recorded each connection (segment names say)."""
    found = segments(recording) if recording.is_dir() or not recording.exists() else []
    catalogs = [row[0] for row in con.execute(
        "SELECT database_name FROM duckdb_databases() WHERE database_name LIKE 'seg_%'").fetchall()]
    if not found or not catalogs:
        return "SELECT conn_id, 0 AS worker FROM connections"
    parts = []
    for index, segment in enumerate(found):
        name = parse_segment_name(segment.name)
        parts.append(f"SELECT conn_id, {name.worker if name else 0} AS worker FROM seg_{index}.connections")
    return "SELECT conn_id, min(worker) AS worker FROM (" + " UNION ALL ".join(parts) + ") GROUP BY conn_id"


def table_sql(table: str, sessions: list[int]) -> str:
    """A table's rows for ``sessions``, with ``session_id``, ``worker`` and ``date`` (the partition keys)."""
    time_column, has_worker = TABLES[table]
    chosen = ", ".join(str(int(s)) for s in sessions)
    if table == "frames":
        source = ("SELECT c.session_id, f.* FROM frames f JOIN connections c USING (conn_id) "
                  f"WHERE c.session_id IN ({chosen})")
    else:
        source = f"SELECT * FROM {table} WHERE session_id IN ({chosen})"
    worker = ", coalesce(w.worker, 0) AS worker" if has_worker else ""
    join = " LEFT JOIN wsproxy_conn_worker w USING (conn_id)" if has_worker else ""
    return (f"SELECT t.*{worker}, strftime(timezone('UTC', t.{time_column}), '%Y-%m-%d') AS date "
            f"FROM ({source}) t{join}")


def _fixed(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[str, pa.Schema]:
    """``sql`` with its columns cast to the types every engine reads alike, and the Arrow schema with
    every field nullable (the Parquet OPTIONAL flag, fixed)."""
    relation = con.sql(sql)
    columns = []
    for name, kind in zip(relation.columns, relation.types, strict=True):
        target = _COLUMN_CASTS.get(str(kind)) or ("DOUBLE" if str(kind).startswith("DECIMAL") else None)
        quoted = '"' + name.replace('"', '""') + '"'
        columns.append(f"CAST({quoted} AS {target}) AS {quoted}" if target else quoted)
    fixed = f"SELECT {', '.join(columns)} FROM ({sql})"
    arrow = con.sql(fixed).limit(0).to_arrow_table().schema
    fields = [pa.field(f.name, pa.timestamp("us", tz="UTC") if pa.types.is_timestamp(f.type) else f.type,
                       nullable=True) for f in arrow]
    return fixed, pa.schema(fields)


def write_dataset(con: duckdb.DuckDBPyConnection, recording: Path, output: Path, sessions: list[int],
                  partition: list[PartitionKey], basename: str) -> Written:
    """Write every table of ``sessions`` into ``output`` (one file each, or a partitioned dataset)."""
    output.mkdir(parents=True, exist_ok=True)
    con.execute(f"CREATE OR REPLACE TEMP TABLE wsproxy_conn_worker AS {workers_of(con, recording)}")
    counts: dict[str, int] = {}
    files = 0
    for table in TABLES:
        has_worker = TABLES[table][1]
        keys = [key for key in partition if key != "worker" or has_worker]
        sql, schema = _fixed(con, table_sql(table, sessions))
        kept = [f for f in schema if f.name != "date" or "date" in keys]  # a date is in every row's time
        if "session" in keys:  # the hive key is the column itself
            kept = [f for f in kept if f.name != "session_id"] + [pa.field("session_id", pa.int32())]
        names = [f.name for f in kept]
        target = pa.schema(kept)
        selected = f"SELECT {', '.join(chr(34) + n + chr(34) for n in names)} FROM ({sql})"
        reader = con.sql(selected).to_arrow_reader(BATCH_ROWS)
        batches = (batch.cast(target) for batch in reader)
        rows = 0
        if not keys:
            with pq.ParquetWriter(output / f"{table}.parquet", target) as writer:
                for batch in batches:
                    writer.write_batch(batch)
                    rows += batch.num_rows
            files += 1
        else:
            columns = [{"session": "session_id"}.get(key, key) for key in keys]
            counted = _counting(batches, counts, table)
            written: list[str] = []
            ds.write_dataset(
                pa.RecordBatchReader.from_batches(target, counted), output / table, format="parquet",
                partitioning=ds.partitioning(pa.schema([target.field(c) for c in columns]), flavor="hive"),
                basename_template=f"{basename}-{{i}}.parquet", existing_data_behavior="overwrite_or_ignore",
                file_visitor=lambda f, into=written: into.append(f.path))
            rows = counts.get(table, 0)
            if not rows:  # no rows, no file: leave one empty file so that engines still find the table
                empty = output / table / "/".join(f"{c}={HIVE_NULL}" for c in columns)
                empty.mkdir(parents=True, exist_ok=True)
                pq.write_table(target.empty_table().drop_columns(columns), empty / f"{basename}-0.parquet")
                written.append(str(empty))
            files += len(written)
        counts[table] = rows
    return Written(counts, files)


def _counting(batches: Iterator[pa.RecordBatch], counts: dict[str, int], table: str) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        counts[table] = counts.get(table, 0) + batch.num_rows
        yield batch
