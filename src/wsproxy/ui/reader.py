"""Where the web view's SQL runs: a recording file opened read-only, the recorder's live endpoint
while another process writes that file, or the recorder's own connection (``record --ui``).
Every statement passes the guard of ``wsproxy query`` (``store.sql.execute``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Protocol

import duckdb

from wsproxy.store.files import StoreError, create_reader_views, open_recording
from wsproxy.store.query import query_live
from wsproxy.store.sql import QueryResult, execute

MAX_ROWS = 10_000  # no answer of the view needs more; a user's WHERE cannot make one bigger
POOL = 2  # cursors answering at once (DuckDB releases the GIL while it works)


class Reader(Protocol):
    async def query(self, sql: str, params: list[Any] | None = None) -> QueryResult: ...
    def close(self) -> None: ...


class CursorPool:
    """Cursors of one open database, each with the reader views, used one query at a time."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, owned: bool) -> None:
        self._connection = connection
        self._owned = owned
        self._free: asyncio.Queue[duckdb.DuckDBPyConnection] = asyncio.Queue()
        self._cursors = [connection.cursor() for _ in range(POOL)]
        for cursor in self._cursors:
            create_reader_views(cursor)
            self._free.put_nowait(cursor)

    async def query(self, sql: str, params: list[Any] | None = None) -> QueryResult:
        cursor = await self._free.get()
        try:
            return await asyncio.to_thread(execute, cursor, sql, params, MAX_ROWS)
        finally:
            self._free.put_nowait(cursor)

    def close(self) -> None:
        for cursor in self._cursors:
            cursor.close()
        if self._owned:
            self._connection.close()


class FileReader:
    """A recording file: read directly, or through its recorder while one writes it (DuckDB then
    keeps other processes out); when that recording ends, from the file again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool: CursorPool | None = None
        self._open()

    def _open(self) -> bool:
        try:
            connection = open_recording(self.path)
        except StoreError as exc:
            if "is being written" not in str(exc):
                raise
            return False
        # no file access from SQL (read_text('/etc/passwd')): a token holder reads this recording,
        # not the machine's files (a setting, not a config: those must match other connections)
        connection.execute("SET enable_external_access = false")
        self._pool = CursorPool(connection, owned=True)
        return True

    @property
    def live(self) -> bool:
        return self._pool is None

    async def query(self, sql: str, params: list[Any] | None = None) -> QueryResult:
        if self._pool is None:
            try:
                return await asyncio.to_thread(query_live, self.path, sql, params)
            except StoreError as exc:
                if "locked" not in str(exc) or not self._open():
                    raise  # the SQL's own error, or a recorder that stopped answering
        assert self._pool is not None
        return await self._pool.query(sql, params)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class RecorderReader(CursorPool):
    """``record --ui``: cursors of the recorder's own connection (it stays the recorder's)."""

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        super().__init__(connection, owned=False)
