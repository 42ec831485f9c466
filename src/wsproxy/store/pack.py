"""``wsproxy pack``: a recording and its Parquet parts folded into one DuckDB file, to hand on as one thing."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from wsproxy.core.errors import first_line
from wsproxy.store.files import RecordingError, StoreError, close_checkpoint, open_for_writing, open_recording
from wsproxy.store.parts import allow, fold, listed_parts


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
    con = open_recording(source)  # says what is wrong with a locked, damaged or incomplete recording
    try:
        frames = con.execute("SELECT count(*) FROM frames").fetchall()[0][0]
        parts = len(listed_parts(con))
    finally:
        con.close()
    temporary = output.with_name(output.name + ".packing")
    _remove(temporary)
    try:
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
    except OSError as exc:
        _remove(temporary)
        raise RecordingError(f"cannot write {output}: {exc.strerror or exc}") from None
    except (duckdb.Error, StoreError) as exc:
        _remove(temporary)
        if isinstance(exc, StoreError):
            raise
        raise RecordingError(f"cannot pack {source} into {output}: {first_line(exc)}") from None
    return Packed(frames=frames, parts=parts, bytes=output.stat().st_size)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
