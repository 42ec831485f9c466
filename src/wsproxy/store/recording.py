"""Opening any recording for reading: one DuckDB file, or a folder of segments (or a glob of them) that
``record --workers/--rotate`` wrote, read as one."""

from __future__ import annotations

from pathlib import Path

import duckdb

from wsproxy.store.files import open_file
from wsproxy.store.folder import is_folder, open_folder


def open_recording(path: Path) -> duckdb.DuckDBPyConnection:
    """``path`` read-only, with the reader views; a ``StoreError`` that says what to do if it cannot be."""
    return open_folder(path) if is_folder(path) else open_file(path)
