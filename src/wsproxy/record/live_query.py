"""The recorder's live SQL endpoint. DuckDB lets one process write a file and no other open it, so
the recorder serves read-only SQL on a loopback endpoint (never on the proxy's port), and
``wsproxy query`` asks it when the file is locked (``store.query``). The endpoint's port and a random
token are in a sidecar file next to the recording (``<db>.wsproxy-live``, readable by its owner only).

Each request runs in the session's ``store.sql.UserSql`` (its own cursor, read-only, a time limit);
a request whose asker hangs up is interrupted."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from wsproxy.store.files import sidecar_path
from wsproxy.store.query import MAX_LIVE_ROWS
from wsproxy.store.sql import QueryError, UserSql, json_value

MAX_REQUEST_BYTES = 1024 * 1024  # a question's size (the SQL and its parameters)


class LiveRequest(msgspec.Struct, forbid_unknown_fields=True):
    sql: str
    params: list[Any] = []
    timeout: float | None = None


class LiveQueryServer:
    """Started by ``RecordSession``: answers POST /query with the rows of read-only SQL."""

    def __init__(self, db: Path, sql: UserSql) -> None:
        self.db = db
        self._sql = sql
        self._token = secrets.token_urlsafe(24)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post("/query", self._query)
        # handler_cancellation: a client that hangs up cancels its handler, which interrupts its SQL
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, handler_cancellation=True,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        path = sidecar_path(self.db)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(msgspec.json.encode({"port": self.port, "token": self._token, "pid": os.getpid()}).decode())

    async def stop(self) -> None:
        sidecar_path(self.db).unlink(missing_ok=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _query(self, request: web.Request) -> web.Response:
        if not secrets.compare_digest(request.headers.get("X-Wsproxy-Token", ""), self._token):
            return web.json_response({"error": "wrong token"}, status=403)
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
