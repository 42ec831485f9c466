"""Rows into DuckDB as Arrow batches: one column per field of a ``core.rows`` Struct, by name.

Columnar Arrow batches are the fastest way in (executemany could not keep up: see
docs/performance.md): DuckDB scans the Arrow table in place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import cache
from operator import attrgetter
from typing import Any

import duckdb
import pyarrow as pa

from wsproxy.core.rows import ConnectionClosed, ConnectionOpened, FrameRow, InjectionRow, ViolationRow, columns
from wsproxy.store.parts import Parts

ARROW_TYPES = {"int32": pa.int32(), "int64": pa.int64(), "timestamp": pa.timestamp("us", tz="UTC"),
               "string": pa.string(), "binary": pa.binary(), "bool": pa.bool_()}
RETRY_FOR_SECONDS = 10.0  # how long after its first failure a write that ran out of memory is retried
BATCH = "wsproxy_batch"  # the name an Arrow table has in the statement ``execute_with`` runs


@cache
def arrow_schema(row_type: type) -> pa.Schema:
    """The Arrow schema of a row Struct: its fields, in order, with their column kinds."""
    return pa.schema([(name, ARROW_TYPES[kind]) for name, kind in columns(row_type)])


def warm_up() -> None:
    """Pay pyarrow's one-time costs before the relay runs: its first ``pa.array`` of Python objects
    imports pandas when pandas is installed (0.3-0.7 s holding the GIL: every response in flight
    waited that long; bench_record's p99 at 5,000 msgs/s went from 4 ms to 1 s)."""
    pa.array([0], type=pa.int64())


def arrow_table(rows: Sequence[Any], row_type: type) -> pa.Table:
    """Rows (instances of ``row_type``) as a columnar Arrow table, built column by column by name."""
    schema = arrow_schema(row_type)
    arrays = []
    for column in schema:
        arrays.append(pa.array(list(map(attrgetter(column.name), rows)), type=column.type))
        # Converting Python objects holds the GIL, and the relay waits for it: a whole batch at once
        # held it for ~1.5 ms every 200 ms, which showed in the relay's p99 latency. One column at a
        # time, with the GIL offered back in between, keeps each wait to a fraction of that.
        time.sleep(0)
    return pa.Table.from_arrays(arrays, schema=schema)


def execute_with(con: duckdb.DuckDBPyConnection, table: pa.Table, sql: str) -> None:
    """Run ``sql`` with ``table`` registered as ``BATCH``."""
    con.register(BATCH, table)
    try:
        con.execute(sql)
    finally:
        try:
            con.unregister(BATCH)
        except duckdb.Error:  # the statement failed and aborted the transaction: report its error, not this
            pass


def insert_rows(con: duckdb.DuckDBPyConnection, table_name: str, rows: Sequence[Any], row_type: type) -> None:
    """Insert rows of ``row_type`` into ``table_name``, matching columns by name."""
    execute_with(con, arrow_table(rows, row_type), f"INSERT INTO {table_name} BY NAME SELECT * FROM {BATCH}")


def insert_frames(con: duckdb.DuckDBPyConnection, rows: Sequence[FrameRow]) -> None:
    """Insert ``frame_store`` rows (``core.rows.frame_row``) as one Arrow batch."""
    insert_rows(con, "frame_store", rows, FrameRow)


def frames_table(rows: Sequence[FrameRow]) -> pa.Table:
    return arrow_table(rows, FrameRow)


def update_closed(con: duckdb.DuckDBPyConnection, rows: Sequence[ConnectionClosed]) -> None:
    """Fill in how connections ended (``connections`` rows inserted when they opened)."""
    execute_with(con, arrow_table(rows, ConnectionClosed),
                 "UPDATE connections SET closed_at = c.closed_at, close_code = c.close_code, "
                 "close_reason = c.close_reason, closed_by = c.closed_by, "
                 f"error = coalesce(c.error, connections.error) FROM {BATCH} c WHERE connections.conn_id = c.conn_id")


def write_batch(con: duckdb.DuckDBPyConnection, batch: list[Any], parts: Parts | None, large_frame_bytes: int) -> int:
    """Write a backlog (rows of every kind, in the order they came) in one transaction; frames of
    ``large_frame_bytes`` or more go to a Parquet part that the same transaction lists. Returns the
    number of frames written. Nothing is committed if anything fails (and the part's file goes)."""
    opens = [item for item in batch if type(item) is ConnectionOpened]
    closes = [item for item in batch if type(item) is ConnectionClosed]
    rows = [item for item in batch if type(item) is FrameRow]
    violations = [item for item in batch if type(item) is ViolationRow]
    injections = [item for item in batch if type(item) is InjectionRow]
    large = [row for row in rows if row.size >= large_frame_bytes] if parts is not None else []
    if large:  # DuckDB's string ingest is slow for them (store.parts)
        rows = [row for row in rows if row.size < large_frame_bytes]
    part: tuple[str, int] | None = None
    con.execute("BEGIN TRANSACTION")
    try:
        # One statement per kind and batch (a statement per connection cost memory and time)
        if opens:
            insert_rows(con, "connections", opens, ConnectionOpened)
        if rows:
            insert_frames(con, rows)
        if large:
            assert parts is not None
            part = parts.add(con, large, frames_table(large))
        if violations:
            insert_rows(con, "violations", violations, ViolationRow)
        if injections:
            insert_rows(con, "injections", injections, InjectionRow)
        if closes:
            update_closed(con, closes)
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:  # a failed COMMIT has rolled back already: report why it failed, not this
            pass
        if part is not None and parts is not None:
            parts.discard(part[0])
        raise
    if part is not None and parts is not None:
        parts.added(*part)
    return len(rows) + len(large)


def split_by_size(batch: list[Any], batch_bytes: int, limit: int) -> list[list[Any]]:
    """``batch`` in order, cut into parts of at most ``limit`` bytes of frames (each part holds at least
    one item). ``batch_bytes`` is what the relay counted: small batches are not looked at."""
    if batch_bytes <= limit:
        return [batch]
    parts, start, size = [], 0, 0
    for index, item in enumerate(batch):
        if type(item) is FrameRow:
            size += item.size
            if size > limit and index > start:
                parts.append(batch[start:index])
                start, size = index, item.size
    parts.append(batch[start:])
    return parts


def write_patiently(write: Callable[[], None], retried: Callable[[], None]) -> None:
    """Write, retrying for a while when DuckDB is out of memory: a query on the live recording
    shares the writer's memory and can hold most of it for a moment (it made writes fail, and the
    relay stop). Meanwhile back pressure holds the relay. A failed write committed nothing.

    The time allowed counts from the first failure, not from the start of the first write: a write
    that takes longer than the allowance before it fails (DuckDB 2 spills first) is still retried."""
    give_up: float | None = None
    delay = 0.05
    while True:
        try:
            write()
            return
        except duckdb.Error as exc:
            if not out_of_memory(exc):
                raise
            if give_up is None:
                give_up = time.monotonic() + RETRY_FOR_SECONDS
            if time.monotonic() + delay > give_up:
                raise
            retried()
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def out_of_memory(exc: duckdb.Error) -> bool:
    """DuckDB ran out of memory in a statement, or in the COMMIT (which then rolled back)."""
    text = str(exc)
    return isinstance(exc, duckdb.OutOfMemoryException) or (
        "Failed to commit" in text and ("Out of Memory" in text or "failed to pin" in text
                                        or "failed to allocate" in text))
