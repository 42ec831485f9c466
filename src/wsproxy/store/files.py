"""Opening recordings: read-only for every inspecting command, for appending in the recorder and the
importer, creating and upgrading the schema as needed. Every way a file can be unusable ends here,
as a ``StoreError`` that says what to do."""

from __future__ import annotations

from pathlib import Path

import duckdb

from wsproxy.core.errors import EXIT_USAGE, UserError, first_line
from wsproxy.store.parts import allow, missing_parts, parts_dir
from wsproxy.store.schema import (
    APPLICATION,
    DDL,
    EXCHANGES_VIEW,
    INJECTIONS_TABLE,
    MIGRATIONS,
    SCHEMA_VERSION,
    USER_NAME_SQL,
    VIEWS,
    VIOLATIONS_TABLE,
)

MEMORY_LIMIT = "1GB"  # DuckDB's buffer pool in the recorder; beyond it DuckDB evicts (and spills) pages
# When DuckDB checkpoints (moves its write-ahead log into the file, every 16 MB of log) it also
# merges the table's partly filled row groups, rewriting them whole ("vacuum"). A recording of
# large messages was rewritten again and again: successive checkpoints of 256 MB took 0.4, 1.7,
# 0.4, 3.4 ... 12 s, and large-message throughput fell as the file grew (docs/performance.md).
# The recorder only appends, so it writes without merging, and merges once when it closes a
# recording small enough for that to be quick.
WRITE_CONFIG: dict[str, str | bool | int | float | list[str]] = {"memory_limit": MEMORY_LIMIT, "max_vacuum_tasks": 0}
MERGE_AT_CLOSE_BELOW = 64 * 1024 * 1024  # bytes of recorded messages (not of the file: it is compressed)


class StoreError(UserError):
    """A recording that cannot be read; the message says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class RecordingError(StoreError):
    """A recording file that cannot be opened or written; the message says why and what to do."""


class RecordingLocked(RecordingError):
    """Another process holds the recording: a recorder writing it (ask it: ``store.query``), or a
    reader while we want to write."""


def sidecar_path(db: Path) -> Path:
    """Where a recorder says how to reach its live SQL endpoint (``record.live_query``)."""
    return db.with_name(db.name + ".wsproxy-live")


def _locked(exc: duckdb.Error) -> bool:
    """Another process holds DuckDB's lock on the file (not: a damaged "block", say)."""
    text = str(exc)
    return "Could not set lock on file" in text or "Conflicting lock" in text


def _holder(exc: duckdb.Error) -> str:
    """Which process holds a file, as DuckDB's lock error names it ("... (PID 123)")."""
    text = str(exc)
    start = text.find("(PID ")
    return f" (PID {text[start + 5:text.find(')', start)]})" if start >= 0 else ""


def open_file(path: Path) -> duckdb.DuckDBPyConnection:
    """Open a recording file read-only (it may be being written: DuckDB then refuses, and we say so)."""
    if not path.exists():
        raise StoreError(f"{path} does not exist: give the --db file `wsproxy record` wrote")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        text = first_line(exc)
        if _locked(exc):
            raise RecordingLocked(f"{path} is being written by another process{_holder(exc)}: stop it first, "
                                  f"or query a copy of the file") from None
        if "Corrupt" in text or "checksum" in text:
            raise damaged(path, exc) from None
        raise StoreError(f"{path} is not a DuckDB recording: {text}") from None
    try:
        allow(con, path)
        _validate(con, path)
    except duckdb.Error as exc:
        con.close()
        raise damaged(path, exc) from None
    except BaseException:
        con.close()
        raise
    return con


def damaged(path: Path | str, exc: BaseException) -> StoreError:
    """The error for a recording DuckDB cannot read through (a copy cut short, a disk that failed)."""
    return StoreError(f"{path} cannot be read ({first_line(exc)}): is it truncated or damaged? "
                      f"Use an intact copy")


def _validate(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """A wsproxy recording of a schema this version reads, with the reader views."""
    tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "wsproxy_meta" not in tables or "frames" not in tables:
        raise StoreError(f"{path} is a DuckDB file but not a wsproxy recording")
    version = dict(con.execute("SELECT key, value FROM wsproxy_meta").fetchall()).get("schema_version", "")
    if not version.isdigit() or int(version) > SCHEMA_VERSION:
        raise StoreError(f"{path} was written by a newer wsproxy (schema {version}, this one reads up to "
                         f"{SCHEMA_VERSION}): upgrade wsproxy")
    missing = missing_parts(con, path)
    if missing:
        raise StoreError(f"{path} keeps its large frames in {parts_dir(path)}/, but {len(missing)} of its files "
                         f"are missing (first: {missing[0]}): copy that folder along with the file, or "
                         f"hand recordings on as one file with `wsproxy pack`")
    create_reader_views(con)


def create_reader_views(con: duckdb.DuckDBPyConnection) -> None:
    """The views for humans, as TEMP views: the same for every recording, whatever its version."""
    tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "violations" not in tables:  # a schema-1 recording: no findings were stored
        con.execute(VIOLATIONS_TABLE.format(temp="TEMP"))
    if "injections" not in tables:  # before schema 5: nothing was injected
        con.execute(INJECTIONS_TABLE.replace("CREATE TABLE", "CREATE TEMP TABLE"))
    con.execute(VIEWS.format(temp="TEMP", user_name=USER_NAME_SQL))
    con.execute(EXCHANGES_VIEW.format(temp="TEMP"))


def open_for_writing(path: Path) -> duckdb.DuckDBPyConnection:
    """Open a recording to append to, creating it (and upgrading it) as needed."""
    try:
        # DuckDB caches up to 80 % of RAM by default; a recorder runs for days next to other work
        con = duckdb.connect(str(path), config=WRITE_CONFIG)
    except duckdb.IOException as exc:
        text = first_line(exc)
        if _locked(exc):
            who = ("another `wsproxy record`" if sidecar_path(path).exists()
                   else "another process (`wsproxy ui`, `wsproxy query` or a DuckDB client)")
            raise RecordingLocked(f"{path} is open in {who}{_holder(exc)}: record into another file with "
                                  f"--db, or stop that process") from None
        raise RecordingError(f"cannot open {path}: {text}") from None
    except duckdb.Error as exc:
        raise RecordingError(f"{path} is not a DuckDB file wsproxy can use: {first_line(exc)}") from None
    try:
        allow(con, path)
        check_or_create_schema(con, path)
    except duckdb.Error as exc:
        con.close()
        raise damaged(path, exc) from None
    except BaseException:
        con.close()
        raise
    return con


def close_checkpoint(con: duckdb.DuckDBPyConnection) -> None:
    """The last checkpoint before closing a recording we wrote: it merges small row groups (many short
    sessions would otherwise leave a file 14x larger) unless there is too much to rewrite quickly."""
    if con.execute("SELECT coalesce(sum(size), 0) FROM frame_store").fetchall()[0][0] < MERGE_AT_CLOSE_BELOW:
        con.execute("RESET max_vacuum_tasks")
    con.execute("CHECKPOINT")


def check_or_create_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    tables = {row[0] for row in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
    if tables and "wsproxy_meta" not in tables:
        raise RecordingError(f"{path} is a DuckDB file but not a wsproxy recording (tables: "
                             f"{', '.join(sorted(tables)[:5])}): choose another --db file")
    if "wsproxy_meta" in tables:
        version = dict(con.execute("SELECT key, value FROM wsproxy_meta").fetchall()).get("schema_version")
        if version is None or not version.isdigit():
            raise RecordingError(f"{path} has no wsproxy schema version: it was not written by wsproxy")
        if int(version) > SCHEMA_VERSION:
            raise RecordingError(f"{path} was written by a newer wsproxy (schema {version}, this one reads "
                                 f"up to {SCHEMA_VERSION}): upgrade wsproxy")
        if int(version) < SCHEMA_VERSION:
            _upgrade(con, int(version))
        return
    con.execute("BEGIN TRANSACTION")
    con.execute(DDL)
    con.execute("INSERT INTO wsproxy_meta VALUES ('application', ?), ('schema_version', ?)",
                [APPLICATION, str(SCHEMA_VERSION)])
    con.execute("COMMIT")


def _upgrade(con: duckdb.DuckDBPyConnection, version: int) -> None:
    """Bring an older recording to SCHEMA_VERSION, one migration at a time, in one transaction."""
    con.execute("BEGIN TRANSACTION")
    for step in range(version + 1, SCHEMA_VERSION + 1):
        con.execute(MIGRATIONS[step])
    con.execute("UPDATE wsproxy_meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])
    con.execute("COMMIT")
