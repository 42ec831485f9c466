"""A folder of segments (``record --workers N`` or ``--rotate``), or a glob of segment files, read as one
recording: every segment is attached read-only to an in-memory DuckDB, and the tables and views users
know (``frames``, ``connections``, ``sessions``, ``violations`` ... and the reader views on top) are
views over all of them, so every command and every user's SQL reads the folder as it reads a file.

A segment still being written is locked by its worker (DuckDB lets one process open a file it
writes); its rows then come from that worker as a consistent snapshot (``store.snapshot``), found
through the sidecar beside the segment. A segment that closes meanwhile is opened again from the file.
"""

from __future__ import annotations

import glob
import time
from pathlib import Path

import duckdb

from wsproxy.core.errors import first_line
from wsproxy.core.segments import SEGMENT_SUFFIX
from wsproxy.store.files import (
    RecordingLocked,
    StoreError,
    create_reader_views,
    damaged,
    sidecar_path,
)
from wsproxy.store.parts import allow_folder
from wsproxy.store.schema import SCHEMA_VERSION, sql_literal
from wsproxy.store.snapshot import SnapshotUnavailable, fetch_snapshot, load_snapshot

GLOB_CHARACTERS = frozenset("*?[")
SNAPSHOT_PATIENCE_SECONDS = 5.0  # a segment that is closing: how long to wait for its file to be free
# Tables each segment has (snapshots too), read as one across segments.
UNION_TABLES = ("frame_store", "frame_parts", "violations", "injections")


def is_folder(path: Path) -> bool:
    """A recording folder or a glob of segments, rather than one recording file (a file whose name has
    glob characters, "runs/[b]/today.duckdb", is that file)."""
    return path.is_dir() or (not path.exists() and bool(GLOB_CHARACTERS & set(str(path))))


def segments(path: Path) -> list[Path]:
    """The segment files of a folder (or matched by a glob), in the order they were written."""
    if path.is_dir():
        found = sorted(path.glob(f"*{SEGMENT_SUFFIX}"))
    else:
        found = sorted(Path(p) for p in glob.glob(str(path)) if p.endswith(SEGMENT_SUFFIX))
    return [segment for segment in found if segment.is_file()]


def open_folder(path: Path) -> duckdb.DuckDBPyConnection:
    """The segments of ``path`` as one read-only recording (an in-memory database; close it when done)."""
    found = segments(path)
    if not found:
        what = "folder" if path.is_dir() else "pattern"
        raise StoreError(f"{path}: this {what} holds no recording segments (*{SEGMENT_SUFFIX}): give the --db "
                         f"folder `wsproxy record --workers/--rotate` wrote")
    con = duckdb.connect()
    try:
        allow_folder(con, sorted({segment.resolve().parent for segment in found}), found)
        catalogs = [_attach(con, segment, f"seg_{index}") for index, segment in enumerate(found)]
        _create_views(con, catalogs)
        create_reader_views(con)
    except duckdb.Error as exc:
        con.close()
        raise StoreError(f"{path} cannot be read as one recording: {first_line(exc)}") from None
    except BaseException:
        con.close()
        raise
    return con


def _attach(con: duckdb.DuckDBPyConnection, segment: Path, catalog: str) -> str:
    """Attach one segment as ``catalog``: its file, or its worker's snapshot while the file is locked."""
    give_up = time.monotonic() + SNAPSHOT_PATIENCE_SECONDS
    while True:
        try:
            con.execute(f"ATTACH {sql_literal(str(segment))} AS {catalog} (READ_ONLY)")
            break
        except duckdb.Error as exc:
            if not _held(exc):
                raise damaged(segment, exc) from None
        try:
            load_snapshot(con, catalog, fetch_snapshot(segment, sidecar_path(segment)))
            break
        except SnapshotUnavailable as exc:  # closing just now, or its worker is gone: try the file again
            if time.monotonic() > give_up:
                raise RecordingLocked(f"{segment} is locked and {exc}") from None
            time.sleep(0.05)
    _validate(con, segment, catalog)
    return catalog


def _held(exc: duckdb.Error) -> bool:
    """Another process writes the file (DuckDB's lock), or this one does (``record --ui``, tests)."""
    text = str(exc)
    return "lock" in text.lower() or "Unique file handle conflict" in text


def _validate(con: duckdb.DuckDBPyConnection, segment: Path, catalog: str) -> None:
    tables = {row[0] for row in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = ?", [catalog]).fetchall()}
    if "wsproxy_meta" not in tables or "frame_store" not in tables:
        raise StoreError(f"{segment} is not a wsproxy recording segment of this version (schema {SCHEMA_VERSION}): "
                         f"move it out of the folder")
    version = dict(con.execute(f"SELECT key, value FROM {catalog}.wsproxy_meta").fetchall()).get("schema_version", "")
    if version != str(SCHEMA_VERSION):
        raise StoreError(f"{segment} has schema {version or '?'}, not {SCHEMA_VERSION}: a folder's segments are "
                         f"written by one wsproxy version; move it out of the folder")
    folder = segment.resolve().parent
    listed = con.execute(f"SELECT part FROM {catalog}.frame_parts").fetchall()
    missing = [name for (name,) in listed if not (folder / name).exists()]
    if missing:
        raise StoreError(f"{segment} keeps large frames in Parquet parts, but {len(missing)} are missing "
                         f"(first: {missing[0]}): copy its .parts folder along with it")


def _union(catalogs: list[str], table: str) -> str:
    return " UNION ALL BY NAME ".join(f"SELECT * FROM {catalog}.{table}" for catalog in catalogs)


def _create_views(con: duckdb.DuckDBPyConnection, catalogs: list[str]) -> None:
    """The recording's tables and ``frames`` as views over every segment (in the default catalog)."""
    for table in UNION_TABLES:
        con.execute(f"CREATE VIEW {table} AS {_union(catalogs, table)}")
    con.execute(f"CREATE VIEW frames AS {_union(catalogs, 'frames')}")
    con.execute(f"CREATE VIEW wsproxy_meta AS SELECT * FROM {catalogs[0]}.wsproxy_meta")
    # A connection open across a rotation is in each of its segments; its newest row knows how it ended.
    numbered = " UNION ALL BY NAME ".join(f"SELECT {index} AS segment_, * FROM {catalog}.connections"
                                          for index, catalog in enumerate(catalogs))
    con.execute(f"CREATE VIEW connections AS SELECT * EXCLUDE (segment_) FROM ({numbered}) "
                f"QUALIFY row_number() OVER (PARTITION BY conn_id ORDER BY closed_at IS NULL, segment_ DESC) = 1")
    # A session spans the segments of every worker: it started with the first and ended with the last.
    con.execute(f"""CREATE VIEW sessions AS
        SELECT session_id, any_value(label) AS label, min(started_at) AS started_at, max(ended_at) AS ended_at,
               any_value(listen) AS listen, any_value(upstream) AS upstream,
               any_value(wsproxy_version) AS wsproxy_version, bool_or(redacted) AS redacted
        FROM ({_union(catalogs, 'sessions')}) GROUP BY session_id""")


def folder_stats(path: Path) -> tuple[int, int]:
    """The highest session id and connection id in a folder's closed segments (0 when it has none):
    a new session of ``record --workers/--rotate`` numbers on from them."""
    found = segments(path) if path.exists() else []
    if not found:
        return 0, 0
    con = open_folder(path)
    try:
        row = con.execute("SELECT (SELECT coalesce(max(session_id), 0) FROM sessions), "
                          "(SELECT coalesce(max(conn_id), 0) FROM connections)").fetchall()[0]
        return int(row[0]), int(row[1])
    finally:
        con.close()
