"""Where the web view's SQL runs: a recording file opened read-only, the recorder's live endpoint
while another process writes that file, or the recorder's own database (``record --ui``). Every
statement runs in a ``store.sql.UserSql``: checked by the parser, its own cursor, a time limit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Protocol

import duckdb

from wsproxy.store.files import RecordingLocked, sidecar_path
from wsproxy.store.folder import is_folder, segments
from wsproxy.store.query import query_live_async
from wsproxy.store.recording import open_recording
from wsproxy.store.sql import SQL_TIMEOUT, QueryResult, UserSql

REFRESH_SECONDS = 1.0  # a live folder's snapshots are taken again when this old
MAX_ROWS = 10_000  # no answer of the view needs more; a user's WHERE cannot make one bigger


class Reader(Protocol):
    async def query(self, sql: str, params: list[Any] | None = None) -> QueryResult: ...
    def close(self) -> None: ...


class FileReader:
    """A recording file: read directly, or through its recorder while one writes it (DuckDB then
    keeps other processes out); when that recording ends, from the file again. A folder of segments
    (``store.folder``) is opened again, with fresh snapshots of the segments being written, when its
    last opening is more than ``REFRESH_SECONDS`` old."""

    def __init__(self, path: Path, timeout: float = SQL_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self._sql: UserSql | None = None
        self._folder = is_folder(path)
        self._opened = 0.0
        self._open()

    def _open(self) -> bool:
        try:
            connection = open_recording(self.path)
        except RecordingLocked:
            return False
        self._replace(connection)
        return True

    def _replace(self, connection: duckdb.DuckDBPyConnection) -> None:
        old, self._sql = self._sql, UserSql(connection, timeout=self.timeout, owned=True)
        self._opened = time.monotonic()
        if old is not None:
            old.close()

    @property
    def live(self) -> bool:
        if self._folder:
            return any(sidecar_path(segment).exists() for segment in segments(self.path))
        return self._sql is None

    async def query(self, sql: str, params: list[Any] | None = None) -> QueryResult:
        if self._folder and time.monotonic() - self._opened > REFRESH_SECONDS and self.live:
            self._replace(await asyncio.to_thread(open_recording, self.path))
        if self._sql is None:
            try:
                return await query_live_async(self.path, sql, params, self.timeout)
            except RecordingLocked:  # the recorder stopped answering: the file, if it is free now
                if not self._open():
                    raise
        assert self._sql is not None
        return await self._sql.query(sql, params, MAX_ROWS)

    def close(self) -> None:
        if self._sql is not None:
            self._sql.close()
            self._sql = None


class RecorderReader:
    """``record --ui``: the recorder's own database, through the session's ``UserSql``."""

    def __init__(self, sql: UserSql) -> None:
        self._sql = sql

    async def query(self, sql: str, params: list[Any] | None = None) -> QueryResult:
        return await self._sql.query(sql, params, MAX_ROWS)

    def close(self) -> None:
        """The session closes its ``UserSql`` when it stops."""
