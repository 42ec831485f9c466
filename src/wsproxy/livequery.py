"""Queries while recording. DuckDB lets one process write a file and no other open it, so the
recorder serves read-only SQL on a loopback endpoint (never on the proxy's port), and
``wsproxy query`` uses it when the file is locked. The endpoint's port and a random token are in
a sidecar file next to the recording (``<db>.wsproxy-live``, readable by its owner only)."""

from __future__ import annotations

import asyncio
import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import duckdb
import msgspec
from aiohttp import web

from wsproxy.query import QueryError, QueryResult, execute, json_value
from wsproxy.store import StoreError, create_reader_views

MAX_ROWS = 100_000  # a live query answers at most this many rows (say so when cut)


def sidecar_path(db: Path) -> Path:
    return db.with_name(db.name + ".wsproxy-live")


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
            result = await asyncio.to_thread(execute, self._cursor, body["sql"], body.get("params"), MAX_ROWS + 1)
        except QueryError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        truncated = len(result.rows) > MAX_ROWS
        rows = [[json_value(v) for v in row] for row in result.rows[:MAX_ROWS]]
        payload = {"columns": result.columns, "types": result.types, "rows": rows, "truncated": truncated}
        return web.Response(body=msgspec.json.encode(payload), content_type="application/json")


def query_live(db: Path, sql: str, params: list[Any] | None = None) -> QueryResult:
    """Ask the recorder that is writing ``db`` (the file itself is locked)."""
    path = sidecar_path(db)
    try:
        info = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        raise StoreError(f"{db} is locked by another program and no wsproxy recorder serves queries for it") from None
    request = urllib.request.Request(f"http://127.0.0.1:{info['port']}/query", method="POST",
                                     data=msgspec.json.encode({"sql": sql, "params": params or []}),
                                     headers={"X-Wsproxy-Token": info["token"], "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = msgspec.json.decode(response.read())
    except urllib.error.HTTPError as exc:
        message = msgspec.json.decode(exc.read()).get("error", str(exc))
        raise QueryError(message) from None
    except (urllib.error.URLError, OSError):
        raise StoreError(f"{db} is locked, and the recorder that wrote {path.name} does not answer "
                         f"(did it crash? then remove {path})") from None
    return QueryResult(answer["columns"], answer["types"], [tuple(row) for row in answer["rows"]])
