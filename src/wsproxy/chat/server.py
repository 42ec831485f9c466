"""The reference chat server: an aiohttp shell around ``ChatCore``.

Each WebSocket connection (any path, ``?user=NAME``) has an outbox queue and one writer
task, so frames leave in exactly the order the core produced them.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from aiohttp import WSCloseCode, WSMsgType, web

from wsproxy.chat.core import ChatCore, Outgoing
from wsproxy.chat.faults import Faults
from wsproxy.ws import went_away

CORE_KEY = web.AppKey("chat_core", ChatCore)
OUTBOXES_KEY = web.AppKey("chat_outboxes", dict)
SOCKETS_KEY = web.AppKey("chat_sockets", set[web.WebSocketResponse])
_CLOSE = object()  # sentinel: the writer task ends


def make_app(faults: Faults | None = None, max_msg_size: int = 16 * 1024 * 1024,
             first_message_id: int = 1) -> web.Application:
    """The chat server as an aiohttp application (message ids count up from ``first_message_id``)."""
    app = web.Application()
    app[CORE_KEY] = ChatCore(faults, first_message_id=first_message_id)
    app[OUTBOXES_KEY] = {}
    app[SOCKETS_KEY] = set()
    ids = itertools.count(1)

    async def close_all(app: web.Application) -> None:
        """On shutdown, say goodbye (1001) to every client instead of waiting for them."""
        sockets: set[web.WebSocketResponse] = app[SOCKETS_KEY]
        for ws in list(sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")

    app.on_shutdown.append(close_all)

    async def handle(request: web.Request) -> web.StreamResponse:
        user = request.query.get("user", "")
        if not user:
            raise web.HTTPBadRequest(text="missing ?user=NAME on the WebSocket URL\n")
        ws = web.WebSocketResponse(max_msg_size=max_msg_size, heartbeat=None)
        if not ws.can_prepare(request).ok:
            raise web.HTTPUpgradeRequired(text="this is a WebSocket endpoint (?user=NAME)\n")
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError):
            return went_away(request)
        app[SOCKETS_KEY].add(ws)
        conn_id = next(ids)
        core, outboxes = app[CORE_KEY], app[OUTBOXES_KEY]
        outbox: asyncio.Queue = asyncio.Queue()
        outboxes[conn_id] = outbox
        writer = asyncio.create_task(_write(ws, outbox), name=f"chat-writer-{conn_id}")
        _deliver(outboxes, core.connect(conn_id, user))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    _deliver(outboxes, core.receive(conn_id, msg.data))
        finally:
            app[SOCKETS_KEY].discard(ws)
            del outboxes[conn_id]
            _deliver(outboxes, core.disconnect(conn_id))
            outbox.put_nowait(_CLOSE)
            await writer
        return ws

    app.router.add_get("/{tail:.*}", handle)
    return app


def _deliver(outboxes: dict[int, asyncio.Queue], frames: list[Outgoing]) -> None:
    for conn_id, frame in frames:
        outbox = outboxes.get(conn_id)
        if outbox is not None:  # the connection may have gone meanwhile
            outbox.put_nowait(frame)


async def _write(ws: web.WebSocketResponse, outbox: asyncio.Queue) -> None:
    while (frame := await outbox.get()) is not _CLOSE:
        try:
            if isinstance(frame, str):
                await ws.send_str(frame)
            else:
                await ws.send_bytes(frame)
        except (ConnectionError, RuntimeError):
            return  # the client went away; the reader side cleans up


@dataclass
class RunningServer:
    """A started server; ``url`` is its ws:// base address."""

    runner: web.AppRunner
    url: str
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_chat_server(host: str = "127.0.0.1", port: int = 0, faults: Faults | None = None,
                            first_message_id: int = 1) -> RunningServer:
    """Start the chat server on host:port (0: a free port) and return it running."""
    runner = web.AppRunner(make_app(faults, first_message_id=first_message_id), handle_signals=False, access_log=None,
                           shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    return RunningServer(runner, f"ws://{host}:{bound_port}", bound_port)


async def serve_until(stop: asyncio.Event, host: str, port: int, faults: Faults | None, announce,
                      first_message_id: int = 1) -> None:
    """Run until ``stop`` is set (Ctrl-C, SIGTERM), then close every connection cleanly."""
    server = await start_chat_server(host, port, faults, first_message_id)
    announce(server)
    try:
        await stop.wait()
    finally:
        await server.stop()
