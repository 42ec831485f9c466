"""What many tests share: running wsproxy as a user would, waiting for effects on the other side of a
socket, reading a recording, a programmable upstream. Tests import these from here, never from
conftest (which holds the fixtures) or from another test module."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import duckdb
import msgspec
from aiohttp import WSMsgType, web


def wsproxy(*args: str) -> subprocess.CompletedProcess:
    """``wsproxy ARGS`` as a process, as a user runs it (a wide terminal, no colours)."""
    return subprocess.run([sys.executable, "-m", "wsproxy", *args], capture_output=True, text=True, timeout=60,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def recorded(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    """``sql`` on a finished recording, read by plain DuckDB as docs/sql.md tells a user to (the file's
    folder as ``file_search_path``, where a recording's Parquet parts are found)."""
    with duckdb.connect(str(db), read_only=True) as con:
        folder = str(Path(db).resolve().parent).replace("'", "''")
        try:
            con.execute(f"SET file_search_path = '{folder}'")
        except duckdb.InvalidInputException:  # a reader in this process locked it (set already: store.parts)
            pass
        return con.execute(sql, params or []).fetchall()


async def eventually(predicate, timeout: float = 5.0) -> None:
    """Wait until predicate() is true (for effects on the other side of a socket)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def read_until(stream: asyncio.StreamReader, text: str, timeout: float = 10.0) -> list[str]:
    """Lines of a child's output up to the first that holds ``text``; fails (never spins) when the child
    closes its output first or nothing comes for ``timeout`` seconds."""
    seen: list[str] = []
    while not seen or text not in seen[-1]:
        line = await asyncio.wait_for(stream.readline(), timeout)
        if not line:
            raise AssertionError(f"the output ended before {text!r}; it said: {''.join(seen)[-2000:]}")
        seen.append(line.decode())
    return seen


@contextlib.asynccontextmanager
async def child(*args: str, **kwargs) -> AsyncIterator[asyncio.subprocess.Process]:
    """``wsproxy ARGS`` as a process for the length of a test (its output piped); killed on the way out
    if a failing test left it running."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "wsproxy", *args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE, **kwargs)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stop(process: asyncio.subprocess.Process, sig: int = signal.SIGINT) -> tuple[int, str]:
    """Ctrl-C (or ``sig``) a child; its exit code and the rest of its stderr."""
    process.send_signal(sig)
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def until_listening(url: str) -> None:
    """Wait until a proxy relays WebSocket connections at ``url`` (an echo path of the test upstream)."""
    import aiohttp
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.ws_connect(url):
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"nothing relays at {url}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def start_recorder(upstream: str, db, port: int, *extra: str, log_format: str = "json"
                         ) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsproxy", "record", "--listen", f"127.0.0.1:{port}", "--upstream", upstream,
        "--db", str(db), "--log-format", log_format, *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        line = await asyncio.wait_for(process.stderr.readline(), 20)
        assert (b'"event":"listening"' if log_format == "json" else b"recording ") in line, line
    except BaseException:
        process.kill()  # never leave a recorder behind when a test fails early
        await process.wait()
        raise
    return process


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
