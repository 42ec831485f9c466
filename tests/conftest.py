"""Shared fixtures: real servers on 127.0.0.1, on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from wsproxy.chat.faults import Faults
from wsproxy.chat.server import RunningServer, start_chat_server

pytest_plugins = ["pytester"]  # the pytest plugin's tests run the documented example in a subprocess


@pytest.fixture
async def chat_server() -> AsyncIterator[RunningServer]:
    """The reference chat server, well-behaved."""
    server = await start_chat_server("127.0.0.1", 0)
    yield server
    await server.stop()


@pytest.fixture
async def faulty_chat_server() -> AsyncIterator[Callable]:
    """A factory: ``await faulty_chat_server("drop-response")`` starts a misbehaving server."""
    servers: list[RunningServer] = []

    async def start(spec: str, seed: int = 0) -> RunningServer:
        server = await start_chat_server("127.0.0.1", 0, Faults.parse(spec, seed))
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


# --- a programmable upstream for relay tests, and the recording proxy in front of it ---

import asyncio  # noqa: E402
from pathlib import Path  # noqa: E402

import duckdb  # noqa: E402
import msgspec  # noqa: E402
from aiohttp import WSMsgType, web  # noqa: E402

from wsproxy.record.session import RecordOptions, RecordSession  # noqa: E402

FLOOD_SENT = [0]  # messages /flood managed to send (the test resets it)


def upstream_app() -> web.Application:
    """Echo and misbehaviour on demand, by path:

    /echo           echoes text and binary unchanged (pings answered by aiohttp)
    /headers        sends the request headers and query back as one JSON text message
    /close-after    after the first message, closes with ?code= and ?reason=
    /die            after the first message, drops the TCP connection without a close
    /bad-utf8       sends a text frame that is not UTF-8
    /forbidden      refuses the handshake with 403
    /burst          at once sends ?n= numbered text messages, then closes with 4000
    /flood          sends ?size= byte messages as fast as the socket takes them; counts them in FLOOD_SENT
    """
    async def handle(request: web.Request) -> web.StreamResponse:
        path = "/" + request.path.rsplit("/", 1)[-1]  # the last segment decides, whatever the prefix
        if path == "/forbidden":
            raise web.HTTPForbidden(text="no entry")
        ws = web.WebSocketResponse(protocols=("chat.v2", "chat.v1"), max_msg_size=32 * 1024 * 1024)
        await ws.prepare(request)
        if path == "/headers":
            await ws.send_str(msgspec.json.encode({"headers": dict(request.headers),
                                                   "query": request.rel_url.raw_query_string, "path": request.path,
                                                   "protocol": ws.ws_protocol}).decode())
        if path == "/flood":
            chunk = "x" * int(request.query.get("size", "65536"))
            try:
                while not ws.closed:
                    await ws.send_str(chunk)  # waits while the proxy does not read (TCP back pressure)
                    FLOOD_SENT[0] += 1
            except (ConnectionError, RuntimeError):
                pass
            return ws
        if path == "/burst":
            for i in range(int(request.query.get("n", "100"))):
                await ws.send_str(str(i))
            await ws.close(code=4000, message=b"burst done")
        if path == "/bad-utf8":
            await ws.send_frame(b"\xff\xfe not utf-8", WSMsgType.TEXT)
        async for msg in ws:
            if path == "/close-after":
                await ws.close(code=int(request.query.get("code", "1000")),
                               message=request.query.get("reason", "").encode())
                break
            if path == "/die":
                request.transport.abort()
                break
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


@pytest.fixture
async def upstream():
    runner = web.AppRunner(upstream_app(), handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"ws://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.fixture
async def proxy(tmp_path: Path):
    """A factory: ``session = await proxy(upstream_url, **options)`` starts `record` on a free port."""
    sessions: list[RecordSession] = []

    async def start(upstream_url: str, **options) -> RecordSession:
        options.setdefault("db", tmp_path / "rec.duckdb")
        session = RecordSession(RecordOptions(listen="127.0.0.1:0", upstream=upstream_url, **options))
        await session.start()
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        await session.stop()


def recorded(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


async def eventually(predicate, timeout: float = 5.0) -> None:
    """Wait until predicate() is true (for effects on the other side of a socket)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
