"""The recorder's live SQL endpoint. DuckDB lets one process write a file and no other open it, so
the recorder serves read-only SQL on a loopback endpoint (never on the proxy's port), and
``wsproxy query`` asks it when the file is locked (``store.query``). The endpoint's port and a random
token are in a sidecar file next to the recording (``<db>.wsproxy-live``, readable by its owner only).

Each request runs in the session's ``store.sql.UserSql`` (its own cursor, read-only, a time limit);
a request whose asker hangs up is interrupted."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import msgspec
from aiohttp import web

from wsproxy.core.errors import first_line
from wsproxy.store.files import sidecar_path
from wsproxy.store.query import MAX_LIVE_ROWS
from wsproxy.store.snapshot import take_snapshot
from wsproxy.store.sql import QueryError, UserSql, json_value

MAX_REQUEST_BYTES = 1024 * 1024  # a question's size (the SQL and its parameters)


class LiveRequest(msgspec.Struct, forbid_unknown_fields=True):
    sql: str
    params: list[Any] = []
    timeout: float | None = None


class LiveQueryServer:
    """Started by ``RecordSession``: answers POST /query with the rows of read-only SQL on a recording
    file; for a folder of segments (``sql`` None), GET /snapshot?segment=NAME with a copy of the segment
    being written (``store.snapshot``), advertised by a sidecar beside each segment while it is written."""

    def __init__(self, db: Path, sql: UserSql | None,
                 snapshot: Callable[[str], duckdb.DuckDBPyConnection | None] | None = None) -> None:
        self.db = db
        self._sql = sql
        self._snapshot = snapshot
        self._token = secrets.token_urlsafe(24)
        self._runner: web.AppRunner | None = None
        self._advertised: set[Path] = set()
        self.port = 0
        self.last_snapshot = 0.0  # time.monotonic() of the last snapshot served

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post("/query", self._query)
        app.router.add_get("/snapshot", self._snapshot_of)
        # handler_cancellation: a client that hangs up cancels its handler, which interrupts its SQL
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, handler_cancellation=True,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        if self._sql is not None:
            self.advertise(self.db)

    def advertise(self, db: Path) -> None:
        """Leave the sidecar that tells readers of ``db`` where to ask (any thread)."""
        fd = os.open(sidecar_path(db), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(msgspec.json.encode({"port": self.port, "token": self._token, "pid": os.getpid()}).decode())
        self._advertised.add(db)

    def withdraw(self, db: Path) -> None:
        """``db`` is closed: readers open the file now."""
        sidecar_path(db).unlink(missing_ok=True)
        self._advertised.discard(db)

    def segment_changed(self, segment: Path, written: bool) -> None:
        """``Recorder.on_segment``: a segment is now written, or closed."""
        if written:
            self.advertise(segment)
        else:
            self.withdraw(segment)

    async def stop(self) -> None:
        for db in list(self._advertised):
            self.withdraw(db)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _snapshot_of(self, request: web.Request) -> web.Response:
        if not secrets.compare_digest(request.headers.get("X-Wsproxy-Token", ""), self._token):
            return web.json_response({"error": "wrong token"}, status=403)
        cursor = self._snapshot(request.query.get("segment", "")) if self._snapshot is not None else None
        if cursor is None:  # closed meanwhile (or never ours): the reader opens the file
            return web.json_response({"error": "this segment is not being written here"}, status=409)
        self.last_snapshot = time.monotonic()
        try:
            body = await asyncio.to_thread(take_snapshot, cursor)
        except duckdb.Error as exc:
            return web.json_response({"error": first_line(exc)}, status=409)
        self.last_snapshot = time.monotonic()
        return web.Response(body=body, content_type="application/vnd.apache.arrow.stream")

    async def _query(self, request: web.Request) -> web.Response:
        if not secrets.compare_digest(request.headers.get("X-Wsproxy-Token", ""), self._token):
            return web.json_response({"error": "wrong token"}, status=403)
        if self._sql is None:
            return web.json_response({"error": "this recorder writes a folder of segments: open the folder, "
                                               "which asks for snapshots"}, status=409)
        try:
            asked = msgspec.json.decode(await request.read(), type=LiveRequest)
        except msgspec.DecodeError as exc:
            return web.json_response({"error": f"not a query request: {exc}"}, status=400)
        try:
            result = await self._sql.query(asked.sql, asked.params, MAX_LIVE_ROWS, asked.timeout)
        except QueryError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        rows = [[json_value(v) for v in row] for row in result.rows]
        payload = {"columns": result.columns, "types": result.types, "rows": rows, "truncated": result.truncated}
        return web.Response(body=msgspec.json.encode(payload), content_type="application/json")
