"""The recorder's live SQL endpoint. DuckDB lets one process write a file and no other open it, so
the recorder serves read-only SQL on a loopback endpoint (never on the proxy's port), and
``wsproxy query`` asks it when the file is locked (``store.query``). The endpoint's port and a random
token are in a sidecar file next to the recording (``<db>.wsproxy-live``, readable by its owner only)."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

import duckdb
import msgspec
from aiohttp import web

from wsproxy.store.files import create_reader_views
from wsproxy.store.query import MAX_LIVE_ROWS, sidecar_path
from wsproxy.store.sql import QueryError, execute, json_value

class LiveQueryServer:
    """Started by ``RecordSession``: answers POST /query with the rows of read-only SQL."""

    def __init__(self, db: Path, connection: duckdb.DuckDBPyConnection) -> None:
        self.db = db
        self._connection = connection
        self._token = secrets.token_urlsafe(24)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        self._cursor = self._connection.cursor()  # its own connection to the same database
        create_reader_views(self._cursor)
        app = web.Application()
        app.router.add_post("/query", self._query)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
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
        self._cursor.close()

    async def _query(self, request: web.Request) -> web.Response:
        if not secrets.compare_digest(request.headers.get("X-Wsproxy-Token", ""), self._token):
            return web.json_response({"error": "wrong token"}, status=403)
        body = msgspec.json.decode(await request.read())
        try:
            # DuckDB releases the GIL while it works; a thread keeps the relay's loop free meanwhile
            result = await asyncio.to_thread(execute, self._cursor, body["sql"], body.get("params"), MAX_LIVE_ROWS + 1)
        except QueryError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        truncated = len(result.rows) > MAX_LIVE_ROWS
        rows = [[json_value(v) for v in row] for row in result.rows[:MAX_LIVE_ROWS]]
        payload = {"columns": result.columns, "types": result.types, "rows": rows, "truncated": truncated}
        return web.Response(body=msgspec.json.encode(payload), content_type="application/json")
