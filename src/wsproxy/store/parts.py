"""Large frames as Parquet files beside the recording ("parts"), read through the ``frames`` view.

DuckDB takes ~300 us of CPU to store one 64 KiB string (written to its log, then again at the
checkpoint); pyarrow writes the same row into an uncompressed Parquet file in ~60 us, and DuckDB
reads Parquet natively (docs/performance.md). So the writer keeps frames of ``LARGE_FRAME_BYTES``
or more as whole ``frame_store`` rows in Parquet parts, in a folder named after the recording
(``rec.duckdb`` -> ``rec.duckdb.parts/``), and ``frames`` is ``frame_store`` UNION ALL the parts.

A part is written (to a temporary name, then renamed) before the transaction that lists it in
``frame_parts`` and redefines the view commits, so a reader sees a batch's small and large frames
together or not at all. Parts are named by session and number; the view names them relative to
the recording's folder, which every wsproxy connection sets as DuckDB's ``file_search_path``.
Small parts are merged as they pile up; a recording whose parts hold little is folded back into
its one file when it closes (and ``wsproxy pack`` folds any recording into one file).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from wsproxy.core.rows import FrameRow
from wsproxy.store.schema import frames_view, sql_literal

LARGE_FRAME_BYTES = 8 * 1024  # frames of this size or more are written to parts (measured: bench_bodies)
# Small parts (a batch with a few large frames) are merged as they pile up: 16 under 4 MiB into one, so
# that a recording of occasional large frames keeps a handful of files. A flood writes parts of ~8 MiB
# (a batch) that are not merged: merging them again cost three times their first write and held the
# writer seconds behind (docs/performance.md); `--rotate` (segments) bounds how many a file gathers.
MERGE_PARTS = 16
MERGE_BELOW = 4 * 1024 * 1024
# Every batch redefines ``frames`` over the list of parts, and DuckDB looks at each file of the list when
# it binds the view and when a query reads it (~5 us a file): past this many parts the 16 smallest are
# merged, so that an hour-long flood of large frames costs a rewrite of its bytes, not a time per batch
# that grows with the recording.
MAX_PARTS = 256
FOLD_AT_CLOSE_BELOW = 16 * 1024 * 1024  # bytes in parts: folded into the file when the recording closes
# Statistics only on the small columns (min/max of 64 KiB strings cost time and say nothing)
_STATISTICS = ["conn_id", "seq", "ts", "size", "event_id"]


def parts_dir(db: Path) -> Path:
    """The folder beside ``db`` that holds its parts."""
    return db.with_name(db.name + ".parts")


def listed_parts(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The parts a recording lists, relative to its folder, in order; none before schema 6."""
    try:
        return [row[0] for row in con.execute("SELECT part FROM frame_parts ORDER BY part").fetchall()]
    except duckdb.CatalogException:
        return []


def allow(con: duckdb.DuckDBPyConnection, db: Path) -> None:
    """Let every connection to ``db``'s database find its parts (relative names), also once user SQL
    has turned external access off (``store.sql``): only the parts folder stays readable."""
    folder = db.resolve().parent
    parts = parts_dir(db)
    con.execute(f"SET GLOBAL file_search_path = {sql_literal(str(folder))}")
    con.execute("SET GLOBAL parquet_metadata_cache = true")  # safe: a part is never rewritten, only replaced
    con.execute(f"SET GLOBAL allowed_directories = [{sql_literal(str(parts.resolve()) + '/')}, "
                f"{sql_literal(parts.name + '/')}]")


def missing_parts(con: duckdb.DuckDBPyConnection, db: Path) -> list[str]:
    folder = db.resolve().parent
    return [name for name in listed_parts(con) if not (folder / name).exists()]


class Parts:
    """The writer's parts of one recording: writes, lists, merges and folds them (writer thread only)."""

    def __init__(self, db: Path, con: duckdb.DuckDBPyConnection, session_id: int) -> None:
        self.db = db
        self.session_id = session_id
        self.retired: list[str] = []  # no longer listed; deleted once no reader can be reading them
        self._folder = db.resolve().parent
        self._numbers = 0
        # the listed parts, in order, with their bytes
        self._sizes: dict[str, int] = dict(con.execute("SELECT part, bytes FROM frame_parts ORDER BY part").fetchall())
        self._delete_unlisted()

    @property
    def names(self) -> list[str]:
        """The parts the recording lists (committed), in the order they were listed."""
        return list(self._sizes)

    def _delete_unlisted(self) -> None:
        """Files in the folder that no committed transaction listed: a part (or half of one) written by a
        recorder that was killed before its commit, or merged away before it could delete them. Nothing
        reads them; the writer is alone with the file (DuckDB's lock)."""
        folder = parts_dir(self.db)
        if not folder.is_dir():
            return
        listed = {Path(name).name for name in self.names}
        delete_files(self.db, [f"{folder.name}/{f.name}" for f in folder.iterdir() if f.name not in listed])

    def add(self, con: duckdb.DuckDBPyConnection, rows: Sequence[FrameRow], table: pa.Table) -> tuple[str, int]:
        """Write ``rows`` (as ``table``) as a new part and list it, in the writer's open transaction.
        Returns the part's name and bytes: the caller calls ``added`` once the transaction commits,
        ``discard`` if it does not."""
        name = self._write(table)
        size = sum(row.size for row in rows)
        con.execute("INSERT INTO frame_parts VALUES (?, ?, ?, ?)", [name, self.session_id, len(rows), size])
        con.execute(frames_view([*self.names, name]))
        return name, size

    def added(self, name: str, size: int) -> None:
        """The transaction that listed ``name`` committed."""
        self._sizes[name] = size

    def discard(self, name: str) -> None:
        """The transaction that listed ``name`` failed: its file goes."""
        (self._folder / name).unlink(missing_ok=True)

    def merge_small(self, con: duckdb.DuckDBPyConnection, at_least: int = MERGE_PARTS) -> None:
        """Merge the parts under ``MERGE_BELOW`` into one once there are ``at_least`` of them."""
        names = [name for name in self.names if self._sizes[name] < MERGE_BELOW]
        if len(names) >= max(at_least, 2):
            self._merge(con, names)
        if len(self.names) > MAX_PARTS:
            self._merge(con, sorted(self.names, key=self._sizes.__getitem__)[:MERGE_PARTS])

    def _merge(self, con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
        """Write the rows of ``names`` as one part and list it instead of them, in one transaction. The
        old files stay until no reader's statement can still be reading them (``delete_retired``)."""
        into = self._write([self._folder / name for name in names])
        size, rows = sum(self._sizes[name] for name in names), 0
        for name in names:
            rows += pq.ParquetFile(self._folder / name).metadata.num_rows
        merged = set(names)
        kept = [name for name in self.names if name not in merged]
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("DELETE FROM frame_parts WHERE list_contains(?, part)", [names])
            con.execute("INSERT INTO frame_parts VALUES (?, ?, ?, ?)", [into, self.session_id, rows, size])
            con.execute(frames_view([*kept, into]))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            self.discard(into)
            raise
        for name in names:
            del self._sizes[name]
        self._sizes[into] = size
        self.retired += names

    def close(self, con: duckdb.DuckDBPyConnection) -> None:
        """When the recording closes: fold little into the file, or merge what is small."""
        if not self.names:
            return
        size = con.execute("SELECT coalesce(sum(bytes), 0) FROM frame_parts").fetchall()[0][0]
        if size < FOLD_AT_CLOSE_BELOW:
            self.retired += fold(con)
            self._sizes = {}
        else:
            self.merge_small(con, at_least=2)
        delete_files(self.db, self.retired)
        self.retired = []

    def delete_retired(self) -> None:
        """Delete the files of merged parts (call when no reader's statement is running)."""
        if self.retired:
            delete_files(self.db, self.retired)
            self.retired = []

    def _write(self, content: pa.Table | list[Path]) -> str:
        """Write a table (or the rows of parts, one at a time: memory holds one part, not all) as a new
        part, under a temporary name and then renamed, so that no reader ever finds half a part.
        Returns the new part's name (relative to the recording's folder)."""
        parts_dir(self.db).mkdir(exist_ok=True)
        while True:  # the next number no file has (one of an earlier run may, in a recording copied back)
            self._numbers += 1
            name = f"{parts_dir(self.db).name}/{self.session_id:06d}-{self._numbers:06d}.parquet"
            path = self._folder / name
            if not path.exists():
                break
        temporary = path.with_name(path.name + ".tmp")
        if isinstance(content, pa.Table):
            tables: Iterable[pa.Table] = [content]
            schema = content.schema
        else:
            tables = (pq.read_table(part) for part in content)
            schema = pq.read_schema(content[0])
        with pq.ParquetWriter(temporary, schema, compression="none", use_dictionary=False,
                              write_statistics=_STATISTICS) as writer:
            for table in tables:
                writer.write_table(table)
        os.replace(temporary, path)
        return name


def fold(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Move every part's rows into ``frame_store`` (one transaction); returns the names no longer listed,
    whose files the caller deletes once nothing reads them."""
    names = listed_parts(con)
    if not names:
        return []
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("INSERT INTO frame_store BY NAME SELECT * FROM read_parquet(?)", [names])
        con.execute("DELETE FROM frame_parts")
        con.execute(frames_view([]))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return names


def delete_files(db: Path, names: Sequence[str]) -> None:
    """Delete parts no longer listed; the folder too once it is empty."""
    folder = db.resolve().parent
    for name in names:
        (folder / name).unlink(missing_ok=True)
    try:
        parts_dir(db).rmdir()
    except OSError:  # not empty (parts still listed), or not there
        pass



def allow_folder(con: duckdb.DuckDBPyConnection, folders: list[Path], segments: list[Path]) -> None:
    """``allow`` for a folder of segments (``store.folder``): every segment's parts, found relative to
    the segments' folders."""
    con.execute(f"SET GLOBAL file_search_path = {sql_literal(','.join(str(folder) for folder in folders))}")
    con.execute("SET GLOBAL parquet_metadata_cache = true")
    allowed = [sql_literal(str(parts_dir(segment).resolve()) + "/") for segment in segments]
    allowed += sorted({sql_literal(parts_dir(segment).name + "/") for segment in segments})
    con.execute(f"SET GLOBAL allowed_directories = [{', '.join(allowed)}]")
