"""A consistent copy of a segment that a worker is writing, for readers of its folder (``store.folder``).

DuckDB lets no other process open a file being written, so a reader of a folder asks the segment's
worker (its live endpoint, named in the sidecar beside the segment) for the segment's rows: every
table read in one transaction, sent as Arrow IPC streams, one per table. Large frames are not in it:
they are Parquet parts the reader opens itself (the snapshot's ``frame_parts`` lists them).
"""

from __future__ import annotations

import http.client
import struct
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import duckdb
import msgspec
import pyarrow as pa

from wsproxy.store.schema import frames_view

TABLES = ("wsproxy_meta", "sessions", "connections", "frame_store", "frame_parts", "violations", "injections")
SNAPSHOT_TIMEOUT = 30.0  # seconds to wait for a worker's snapshot
_LENGTH = struct.Struct(">Q")


class SnapshotUnavailable(Exception):
    """The worker did not give a snapshot (gone, or the segment is closing): says why, for an error line."""


def take_snapshot(cursor: duckdb.DuckDBPyConnection) -> bytes:
    """Every table of a recording being written, in one read transaction (on ``cursor``, a cursor of the
    writer's database: DuckDB keeps the writer's commits out of it), as framed Arrow IPC streams."""
    try:
        cursor.execute("BEGIN TRANSACTION")
        tables: dict[str, pa.Table] = {}
        for name in TABLES:
            tables[name] = cursor.sql(f"SELECT * FROM {name}").to_arrow_table()
        cursor.execute("COMMIT")
    finally:
        cursor.close()
    out = bytearray()
    for name, table in tables.items():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        body = sink.getvalue()
        out += _LENGTH.pack(len(name)) + name.encode() + _LENGTH.pack(body.size) + body.to_pybytes()
    return bytes(out)


def read_snapshot(data: bytes) -> dict[str, pa.Table]:
    tables: dict[str, pa.Table] = {}
    at = 0
    while at < len(data):
        (size,) = _LENGTH.unpack_from(data, at)
        name = data[at + 8:at + 8 + size].decode()
        at += 8 + size
        (size,) = _LENGTH.unpack_from(data, at)
        tables[name] = pa.ipc.open_stream(data[at + 8:at + 8 + size]).read_all()
        at += 8 + size
    return tables


def load_snapshot(con: duckdb.DuckDBPyConnection, catalog: str, data: bytes) -> None:
    """The snapshot as an in-memory database ``catalog`` with the segment's tables and ``frames`` view."""
    tables = read_snapshot(data)
    missing = set(TABLES) - set(tables)
    if missing:
        raise SnapshotUnavailable(f"its worker sent a snapshot without {', '.join(sorted(missing))}")
    con.execute(f"ATTACH ':memory:' AS {catalog}")
    cursor = con.cursor()
    try:
        cursor.execute(f"USE {catalog}")
        for name, table in tables.items():
            cursor.register("snapshot_table", table)
            cursor.execute(f"CREATE TABLE {name} AS SELECT * FROM snapshot_table")
            cursor.unregister("snapshot_table")
        parts = [row[0] for row in cursor.execute("SELECT part FROM frame_parts ORDER BY part").fetchall()]
        cursor.execute(frames_view(parts))
    finally:
        cursor.close()


def fetch_snapshot(segment: Path, sidecar: Path) -> bytes:
    """Ask the worker writing ``segment`` for its snapshot (blocking)."""
    try:
        info = msgspec.json.decode(sidecar.read_bytes())
        port, token = int(info["port"]), str(info["token"])
    except (OSError, msgspec.DecodeError, KeyError, TypeError, ValueError):
        raise SnapshotUnavailable("no wsproxy worker says it writes it (a DuckDB client holding it?)") from None
    query = urllib.parse.urlencode({"segment": segment.name})
    request = urllib.request.Request(f"http://127.0.0.1:{port}/snapshot?{query}",
                                     headers={"X-Wsproxy-Token": token})
    try:
        with urllib.request.urlopen(request, timeout=SNAPSHOT_TIMEOUT) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        raise SnapshotUnavailable(f"its worker answered {exc.code} {exc.reason}") from None
    except TimeoutError:
        raise SnapshotUnavailable(f"its worker did not answer within {SNAPSHOT_TIMEOUT:g} s") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        raise SnapshotUnavailable(f"its worker does not answer (did it crash? then remove {sidecar})") from None
