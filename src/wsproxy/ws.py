"""Every use of aiohttp's internals, fenced in one place.

A transparent proxy needs a few things aiohttp has no public API for: the upstream's 101 headers,
the client leg's protocol errors as values, one ``send()`` per event-loop turn, and ending a
transport whose closing handshake is complete. Each is here, with why; ``tests/test_ws.py`` fails
loudly, naming the attribute, if an aiohttp upgrade removes one. pyproject caps aiohttp below 4.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from aiohttp import ClientWebSocketResponse, WSMessage, WSMsgType, web
from aiohttp.http_websocket import WebSocketError  # aiohttp's frame parser raises it for invalid frames

__all__ = ["DEFAULT_MAX_MESSAGE", "WebSocketError", "aiohttp_limit", "bound_pending", "coalesce_writes", "drop",
           "errors_as_messages", "upstream_headers", "went_away"]

DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024


def aiohttp_limit(max_message_size: int) -> int:
    """aiohttp refuses a message of exactly ``max_msg_size`` bytes; ours is the largest one allowed."""
    return max_message_size + 1 if max_message_size else 0


def upstream_headers(ws: ClientWebSocketResponse) -> list[tuple[str, str]]:
    """The headers of the upstream's 101 response (the client response object is private)."""
    return list(ws._response.headers.items())


def errors_as_messages(ws: web.WebSocketResponse) -> None:
    """Make the server-side leg return a protocol error as an ERROR message (see ``_ErrorsAsMessages``)."""
    # an aiohttp internal: the frame queue receive() reads, replaced by a stand-in of the same interface
    ws._reader = cast(Any, _ErrorsAsMessages(ws._reader))


def coalesce_writes(ws: Any) -> None:
    """Send the frames written during one event-loop turn in one ``send()`` (``_CoalescingTransport``)."""
    writer = ws._writer  # an aiohttp internal: it has no public hook for its frame writer's transport
    if writer is not None and writer.transport is not None:
        writer.transport = _CoalescingTransport(writer.transport, asyncio.get_running_loop())


def drop(ws: Any) -> None:
    """End a connection whose closing handshake is complete (both close frames sent), or that can no
    longer take part in one: aiohttp's close() would send another close frame and wait for a reply."""
    if isinstance(ws, web.WebSocketResponse):
        ws._set_closed()  # aiohttp internals: it has no public "handshake done, close the socket"
        ws._close_transport()
    else:
        ws._closed = True  # aiohttp internals, as above, for the client leg
        ws._response.close()


def went_away(request: web.BaseRequest) -> web.Response:
    """What a handler returns when ``prepare()`` failed because the client went away during the handshake.
    Returning the half-prepared WebSocketResponse would make aiohttp finish it, and its close() then
    raises "Call .prepare() first" (a traceback in the log, once in thousands of aborted handshakes); a
    plain response on an aborted transport ends quietly."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=400, text="the client went away during the handshake\n")


def bound_pending(server: web.Server, limit: int, upgraded: Callable[[], int], full: Callable[[int], None],
                  fine: Callable[[], None]) -> None:
    """Close a new connection at once while more than ``limit`` of the server's connections are not
    ``upgraded()`` yet (still in their handshake): aiohttp has no limit of its own, and idle sockets
    would otherwise take every file descriptor. ``full(pending)`` is told of each one closed,
    ``fine()`` when fewer than half the limit are pending again. aiohttp's ``Server.connection_made``
    is the one place every accepted connection passes before its first byte is read, and
    ``connection_lost`` the one it leaves by; counted here, not by listing ``server.connections`` (a copy
    of every open connection, on every accept)."""
    made, lost = server.connection_made, server.connection_lost
    accepted = 0

    def connection_made(handler: Any, transport: asyncio.Transport) -> None:
        nonlocal accepted
        made(handler, transport)
        accepted += 1
        pending = accepted - upgraded()
        if pending > limit:
            full(pending)
            transport.close()
        elif pending < limit // 2:
            fine()

    def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
        nonlocal accepted
        accepted -= 1
        lost(handler, exc)
    server.connection_made = connection_made  # type: ignore[method-assign]
    server.connection_lost = connection_lost  # type: ignore[method-assign]


class _ErrorsAsMessages:
    """The client leg's frame queue, returning a protocol error as an ERROR message instead of
    raising it. aiohttp's receive() answers a raised error with its own close frame at once, so the
    server's replies to the client's valid frames before the bad one would be lost (Autobahn 3.*,
    4.*, 5.15: NON-STRICT); returned as a message, the relay closes in order instead. After the
    error every read raises it, so aiohttp's own close() still ends the connection."""

    __slots__ = ("_failed", "_queue")

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self._failed: WebSocketError | None = None

    async def read(self) -> Any:
        if self._failed is not None:
            raise self._failed
        try:
            return await self._queue.read()
        except WebSocketError as exc:
            self._failed = exc
            return WSMessage(WSMsgType.ERROR, exc, None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


class _CoalescingTransport:
    """Data frames written during one event-loop turn leave in one ``send()``.

    Under load the pump relays every message already parsed from one TCP read before it
    waits again; writing each as its own syscall was a quarter of the proxy's CPU. The
    bytes and their order are unchanged; only the TCP segmentation differs. Anything that
    may be a control frame (close, ping, pong: opcode bit 0x08) flushes at once, so a
    close frame is never left behind when aiohttp closes the transport right after it.
    """

    __slots__ = ("_chunks", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._chunks: list[bytes] = []
        self._loop = loop

    def write(self, data: bytes) -> None:
        chunks = self._chunks
        chunks.append(data)
        if data[:1] and data[0] & 0x08:
            self.flush()
        elif len(chunks) == 1:
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        chunks = self._chunks
        if chunks:
            self._chunks = []
            if not self._transport.is_closing():
                self._transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
