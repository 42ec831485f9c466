"""``wsproxy pack``: a recording and its Parquet parts folded into one DuckDB file, to hand on as one thing."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from wsproxy.core.errors import first_line
from wsproxy.store.files import RecordingError, StoreError, close_checkpoint, open_for_writing
from wsproxy.store.folder import is_folder
from wsproxy.store.parts import allow, fold
from wsproxy.store.recording import open_recording
from wsproxy.store.schema import sql_literal


@dataclass(frozen=True)
class Packed:
    frames: int
    parts: int  # Parquet parts folded in
    bytes: int  # the packed file's size


def pack(source: Path, output: Path, *, force: bool = False) -> Packed:
    """Write ``source`` (a recording, with its parts if it has any) as the single file ``output``.
    ``source`` is not changed. Refused while a recorder writes ``source`` (its open transaction would
    not be in the copy)."""
    if output.exists() and not force:
        raise StoreError(f"{output} already exists: choose another -o, or add --force to replace it")
    if output.resolve() == source.resolve():
        raise StoreError("-o must name a new file, not the recording itself")
    if output.is_dir():
        raise StoreError(f"{output} is a folder: -o names the one file to write")
    con = open_recording(source)  # says what is wrong with a locked, damaged or incomplete recording
    try:
        frames = con.execute("SELECT count(*) FROM frames").fetchall()[0][0]
        parts = con.execute("SELECT count(*) FROM frame_parts").fetchall()[0][0]
        temporary = output.with_name(output.name + ".packing")
        _remove(temporary)
        try:
            if is_folder(source):
                _copy_folder(con, temporary)
            else:
                shutil.copyfile(source, temporary)
                wal = source.with_name(source.name + ".wal")
                if wal.exists():  # a recorder that did not close cleanly: DuckDB replays its log on open
                    shutil.copyfile(wal, temporary.with_name(temporary.name + ".wal"))
            writer = open_for_writing(temporary)
            try:
                allow(writer, source)  # the parts are found beside the source, not the copy
                fold(writer)
                close_checkpoint(writer)
            finally:
                writer.close()
            os.replace(temporary, output)
        finally:
            con.close()
    except OSError as exc:
        _remove(temporary)
        raise RecordingError(f"cannot write {output}: {exc.strerror or exc}") from None
    except (duckdb.Error, StoreError) as exc:
        _remove(temporary)
        if isinstance(exc, StoreError):
            raise
        raise RecordingError(f"cannot pack {source} into {output}: {first_line(exc)}") from None
    return Packed(frames=frames, parts=parts, bytes=output.stat().st_size)


def _copy_folder(con: duckdb.DuckDBPyConnection, into: Path) -> None:
    """Every segment's rows (``con``: the folder opened by ``store.folder``) into a new recording file;
    the Parquet parts are folded in afterwards, as for a single file."""
    open_for_writing(into).close()  # the schema
    catalogs = [row[0] for row in con.execute(
        "SELECT database_name FROM duckdb_databases() WHERE database_name LIKE 'seg_%' ORDER BY database_name").fetchall()]
    con.execute(f"ATTACH {sql_literal(str(into))} AS packed")
    try:
        for table in ("sessions", "connections", "violations", "injections"):
            con.execute(f"INSERT INTO packed.{table} BY NAME SELECT * FROM {table}")
        for catalog in catalogs:
            con.execute(f"INSERT INTO packed.frame_store BY NAME SELECT * FROM {catalog}.frame_store")
            parts = [row[0] for row in con.execute(f"SELECT part FROM {catalog}.frame_parts").fetchall()]
            if parts:  # folded in here (not listed in the copy, where their names would not resolve)
                con.execute("INSERT INTO packed.frame_store BY NAME SELECT * FROM read_parquet(?)", [parts])
    finally:
        con.execute("DETACH packed")


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
