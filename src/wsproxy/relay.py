"""The relay: accept a client, dial the upstream, pump frames both ways, record them.

One symmetric pump per direction forwards every frame unchanged and at once: text,
binary, ping, pong and close (code and reason). Both legs run with ``autoping=False``
and ``autoclose=False`` so that aiohttp neither answers pings nor rewrites closes.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiohttp import WSCloseCode, WSMessage, WSMsgType, web
from aiohttp.http_websocket import WebSocketError
from yarl import URL

from wsproxy.protocol import MessageDecoder, ParsedMessage
from wsproxy.recorder import Recorder, now_us
from wsproxy.schema import frame_row, redact_headers, redact_query

# Handshake headers that belong to one leg only; everything else is forwarded upstream.
_HOP_HEADERS = frozenset({
    "host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-extensions", "sec-websocket-protocol", "content-length", "transfer-encoding",
    "keep-alive", "te", "trailer", "proxy-connection"})
DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024
CLOSE_TIMEOUT = 5.0
FORBIDDEN_CLOSE_CODES = frozenset({1005, 1006, 1015})  # "MUST NOT be set as a status code in a Close frame"


def aiohttp_limit(max_message_size: int) -> int:
    """aiohttp refuses a message of exactly ``max_msg_size`` bytes; ours is the largest one allowed."""
    return max_message_size + 1 if max_message_size else 0


@dataclass
class RelayConfig:
    upstream: URL
    max_message_size: int = DEFAULT_MAX_MESSAGE
    redact: bool = True
    ssl_context: ssl.SSLContext | bool | None = None  # for wss:// upstreams
    connect_timeout: float = 10.0


@dataclass
class Counters:
    """Live figures for the status line."""

    open: int = 0
    total: int = 0
    failed_handshakes: int = 0
    frames: dict[str, int] = field(default_factory=lambda: {"client": 0, "server": 0})
    bytes: dict[str, int] = field(default_factory=lambda: {"client": 0, "server": 0})


class Observer(Protocol):
    """What the relay tells the live checker, with the same times it records."""

    def opened(self, conn_id: int, ts: int) -> None: ...
    def frame(self, conn_id: int, seq: int, ts: int, sender: str, parsed: ParsedMessage) -> None: ...
    def closed(self, conn_id: int, ts: int) -> None: ...


class Relay:
    """The aiohttp application of ``wsproxy record``."""

    def __init__(self, config: RelayConfig, recorder: Recorder, decoder: MessageDecoder | None = None,
                 observer: Observer | None = None) -> None:
        self.config = config
        self.recorder = recorder
        self.decoder = decoder or MessageDecoder()
        self.observer = observer
        self.counters = Counters()
        self.stopped_reason: str | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        app.cleanup_ctx.append(self._client_session)
        app.on_shutdown.append(self._close_all)
        return app

    async def _client_session(self, app: web.Application):
        connector = aiohttp.TCPConnector(ssl=self.config.ssl_context if self.config.ssl_context is not None else True,
                                         limit=0)
        # auto_decompress off and no cookie jar: the relay must not interpret traffic.
        self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                              auto_decompress=False)
        yield
        await self._session.close()

    async def _close_all(self, app: web.Application) -> None:
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"wsproxy shutting down")

    def stop_relaying(self, reason: str) -> None:
        """The recording failed: refuse new clients and close the open ones (1011)."""
        self.stopped_reason = reason
        for ws in list(self._sockets):
            asyncio.ensure_future(ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"wsproxy cannot record"))

    # --- one client connection ---

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.stopped_reason is not None:
            return web.Response(status=503, text=f"wsproxy stopped relaying: {self.stopped_reason}\n")
        probe = web.WebSocketResponse()
        if not probe.can_prepare(request).ok:
            return web.Response(status=426, text="wsproxy relays WebSocket connections only\n",
                                headers={"Upgrade": "websocket"})
        recorder, config = self.recorder, self.config
        conn_id = recorder.new_conn_id()
        opened_us = now_us()
        url = upstream_url(config.upstream, request.rel_url)
        offered = [p.strip() for h in request.headers.getall("Sec-WebSocket-Protocol", [])
                   for p in h.split(",") if p.strip()]
        forward = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS]
        peer = request.transport.get_extra_info("peername") if request.transport else None
        client_addr = f"{peer[0]}:{peer[1]}" if peer else None
        self.counters.total += 1

        def open_row(status: int, subprotocol: str | None, response_headers: list[tuple[str, str]] | None,
                     error: str | None = None) -> tuple[Any, ...]:
            return (conn_id, recorder.session_id, opened_us, request.path,
                    redact_query(request.rel_url.raw_query_string, config.redact), client_addr, subprotocol,
                    redact_headers(list(request.headers.items()), config.redact),
                    None if response_headers is None else redact_headers(response_headers, config.redact),
                    status, error)

        # Compression per leg: offer permessage-deflate upstream only when the client offered it,
        # so the proxy never adds compression work the client did not ask for.
        wants_deflate = "permessage-deflate" in request.headers.get("Sec-WebSocket-Extensions", "").lower()
        assert self._session is not None
        try:
            upstream = await self._session.ws_connect(
                url, protocols=offered, headers=forward, autoclose=False, autoping=False,
                max_msg_size=aiohttp_limit(config.max_message_size), compress=15 if wants_deflate else 0, heartbeat=None,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
                proxy=None)
        except aiohttp.WSServerHandshakeError as exc:
            status = exc.status or 502
            if status == 101:  # upgraded but the handshake was invalid
                status = 502
            headers = list((exc.headers or {}).items())
            recorder.connection_opened(open_row(status, None, headers, f"upstream refused the handshake: "
                                                f"{status} {exc.message}"))
            recorder.connection_closed(conn_id, None, None, "server", None)
            self.counters.failed_handshakes += 1
            return web.Response(status=status, text=f"upstream {url} answered {status} {exc.message}\n")
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            reason = f"cannot reach upstream {url}: {exc or type(exc).__name__}"
            recorder.connection_opened(open_row(502, None, None, reason))
            recorder.connection_closed(conn_id, None, None, "proxy", None)
            self.counters.failed_handshakes += 1
            return web.Response(status=502, text=reason + "\n")

        chosen = upstream.protocol
        client = web.WebSocketResponse(protocols=(chosen,) if chosen else (), autoclose=False, autoping=False,
                                       max_msg_size=aiohttp_limit(config.max_message_size), compress=True, heartbeat=None,
                                       timeout=CLOSE_TIMEOUT)
        try:
            await client.prepare(request)
        except (ConnectionError, RuntimeError) as exc:
            await upstream.close(code=WSCloseCode.GOING_AWAY, message=b"client went away during the handshake")
            recorder.connection_opened(open_row(101, chosen, None, f"client went away during the handshake: {exc}"))
            recorder.connection_closed(conn_id, None, None, "client", None)
            return client
        upstream_headers = list(upstream._response.headers.items())  # noqa: SLF001 - the 101 response
        client._reader = _ErrorsAsMessages(client._reader)  # noqa: SLF001 - see the class
        _coalesce_writes(client)
        _coalesce_writes(upstream)
        recorder.connection_opened(open_row(101, chosen, upstream_headers))
        observer = self.observer
        if observer is not None:
            observer.opened(conn_id, opened_us)
        self._sockets.add(client)
        self.counters.open += 1
        conn = _Conn(conn_id)
        pumps = {asyncio.create_task(self._pump(conn, client, upstream, "client"), name=f"pump-{conn_id}-up"),
                 asyncio.create_task(self._pump(conn, upstream, client, "server"), name=f"pump-{conn_id}-down")}
        try:
            _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            if pending:  # one side closed: the other has CLOSE_TIMEOUT to finish the handshake
                _, pending = await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)
            for task in pending:
                task.cancel()
                conn.error = conn.error or f"no close reply within {CLOSE_TIMEOUT:g} s"
            for task in pumps:
                if not task.cancelled() and task.done() and task.exception() is not None:
                    conn.error = f"relay error: {task.exception()!r}"
            if pending:
                await asyncio.wait(pending)
                await _drop(client)
                await _drop(upstream)
        finally:
            self._sockets.discard(client)
            self.counters.open -= 1
            if not upstream.closed:
                await upstream.close()
            closed_us = now_us()
            recorder.connection_closed(conn_id, conn.close_code, conn.close_reason, conn.closed_by, conn.error,
                                       closed_us)
            if observer is not None:
                observer.closed(conn_id, closed_us)
        return client

    async def _pump(self, conn: _Conn, source: Any, dest: Any, sender: str) -> None:
        """Forward every frame from source to dest, in order, and record it."""
        recorder, decode, counters = self.recorder, self.decoder.decode, self.counters
        observe = self.observer.frame if self.observer is not None else None
        while True:
            msg = await source.receive()
            kind = msg.type
            if recorder.error is not None:
                return  # stop_relaying closes both sides
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                is_text = kind is WSMsgType.TEXT
                try:
                    if is_text:
                        await dest.send_str(msg.data)
                    else:
                        await dest.send_bytes(msg.data)
                except (ConnectionError, RuntimeError):
                    pass  # dest is going away; its own pump records how
                data = msg.data
                ts = now_us()
                seq = conn.next_seq()
                parsed = decode("text" if is_text else "binary", data, sender)
                recorder.frame(frame_row(conn.conn_id, seq, ts, sender, "text" if is_text else "binary", data, parsed))
                counters.frames[sender] += 1
                counters.bytes[sender] += len(data)
                if observe is not None:
                    observe(conn.conn_id, seq, ts, sender, parsed)
                if recorder.behind:
                    await recorder.wait_for_capacity()
            elif kind is WSMsgType.PING or kind is WSMsgType.PONG:
                try:
                    await (dest.ping(msg.data) if kind is WSMsgType.PING else dest.pong(msg.data))
                except (ConnectionError, RuntimeError):
                    pass
                recorder.frame(frame_row(conn.conn_id, conn.next_seq(), now_us(), sender,
                                         "ping" if kind is WSMsgType.PING else "pong", msg.data, None))
            elif kind is WSMsgType.CLOSE:
                code, reason = msg.data, msg.extra or ""
                recorder.frame(frame_row(conn.conn_id, conn.next_seq(), now_us(), sender, "close", reason,
                                         None, code))
                if code in FORBIDDEN_CLOSE_CODES:  # aiohttp lets 1006 through; RFC 6455 7.4.1 forbids sending it
                    problem = WebSocketError(WSCloseCode.PROTOCOL_ERROR,
                                             f"close code {code} must not be sent in a close frame")
                    await self._abnormal_end(conn, source, dest, sender, WSMessage(WSMsgType.ERROR, problem, None))
                    if sender == "server":  # aiohttp did not answer it: we do, with 1002
                        await _finish_close(source, WSCloseCode.PROTOCOL_ERROR, "")
                    return
                if conn.closed_by is None:  # this side starts the closing handshake
                    conn.closed_by, conn.close_code, conn.close_reason = sender, code, reason
                    await _send_close_frame(dest, code, reason)
                    return  # the other pump relays the reply, then both transports close
                if conn.failed:  # dest broke the protocol: it gets the error code, whatever the reply said
                    code, reason = conn.close_code, conn.close_reason or ""
                await _finish_close(dest, code, reason)  # the reply: completes dest's handshake too
                await _drop(source)
                return
            else:  # CLOSED, CLOSING or ERROR: the peer vanished or broke the protocol
                await self._abnormal_end(conn, source, dest, sender, msg)
                return

    async def _abnormal_end(self, conn: _Conn, source: Any, dest: Any, sender: str, msg: Any) -> None:
        if conn.closed_by is not None and conn.closed_by != sender:
            await _drop(dest)  # we are finishing a close that dest started; source went quiet
            return
        if msg.type is WSMsgType.ERROR:
            exc = msg.data
            code = getattr(exc, "code", None) or WSCloseCode.PROTOCOL_ERROR
            reason = f"{sender} broke the protocol: {exc}"[:120]
            conn.error = f"{sender} sent an invalid frame ({code}): {exc}"
            if sender == "client":
                # The client leg hands us its protocol error without closing (_ErrorsAsMessages): the
                # server's replies to the valid frames before it still reach the client, then the
                # server's answer to our close ends both legs in order, as a server would.
                conn.closed_by, conn.close_code, conn.close_reason = sender, int(code), reason
                conn.failed = True
                await _send_close_frame(dest, int(code), reason)
                return
        elif conn.closed_by is None and msg.type is WSMsgType.CLOSED:
            code = WSCloseCode.INTERNAL_ERROR if sender == "server" else WSCloseCode.GOING_AWAY
            reason = f"{'upstream' if sender == 'server' else 'client'} went away without a close frame"
            conn.error = reason
        else:
            return
        # closed_by says who went away; the code and reason are what the proxy sent the other side.
        conn.closed_by, conn.close_code, conn.close_reason = sender, int(code), reason
        try:
            await asyncio.wait_for(dest.close(code=int(code), message=reason.encode()[:120]), CLOSE_TIMEOUT)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            await _drop(dest)


@dataclass
class _Conn:
    conn_id: int
    seq: int = 0
    closed_by: str | None = None
    close_code: int | None = None
    close_reason: str | None = None
    error: str | None = None
    failed: bool = False  # the closing side broke the protocol (close_code is the proxy's verdict)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


def upstream_url(base: URL, rel: URL) -> URL:
    """The upstream URL for a client request: base path prefix + client path + client query,
    all kept exactly as encoded by the client (no decoding, no re-encoding)."""
    return URL.build(scheme=base.scheme, user=base.raw_user, password=base.raw_password, host=base.raw_host,
                     port=base.explicit_port, path=base.raw_path.rstrip("/") + rel.raw_path,
                     query_string=rel.raw_query_string, encoded=True)


class _ErrorsAsMessages:
    """The client leg's frame queue, returning a protocol error as an ERROR message instead of
    raising it. aiohttp's receive() answers a raised error with its own close frame at once, so the
    server's replies to the client's valid frames before the bad one would be lost (Autobahn 3.*,
    4.*, 5.15: NON-STRICT); returned as a message, the relay closes in order instead. After the
    error every read raises it, so aiohttp's own close() still ends the connection."""

    __slots__ = ("_queue", "_failed")

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

    __slots__ = ("_transport", "_chunks", "_loop")

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


def _coalesce_writes(ws: Any) -> None:
    writer = ws._writer  # noqa: SLF001 - aiohttp has no public hook for its frame writer's transport
    if writer is not None and writer.transport is not None:
        writer.transport = _CoalescingTransport(writer.transport, asyncio.get_running_loop())


async def _send_close_frame(ws: Any, code: int | None, reason: str) -> None:
    """Forward a close frame without entering aiohttp's close(), which would swallow the
    frames still in flight from that peer instead of letting the other pump relay them."""
    # 1005 (no status) and 0 are how aiohttp reports a close frame without a code
    payload = b"" if not code or code == 1005 else struct.pack("!H", code) + reason.encode()
    try:
        await ws.send_frame(payload, WSMsgType.CLOSE)
    except (ConnectionError, RuntimeError):
        pass


async def _finish_close(ws: Any, code: int | None, reason: str) -> None:
    """Answer a close that ``ws`` started: aiohttp sends our close frame and ends the transport."""
    try:
        await asyncio.wait_for(ws.close(code=code or WSCloseCode.OK, message=reason.encode()), CLOSE_TIMEOUT)
    except (asyncio.TimeoutError, ConnectionError, RuntimeError):
        await _drop(ws)


async def _drop(ws: Any) -> None:
    """End a connection whose closing handshake is complete (both close frames sent)."""
    if isinstance(ws, web.WebSocketResponse):
        ws._set_closed()  # noqa: SLF001 - aiohttp has no public "handshake done, close the socket"
        ws._close_transport()  # noqa: SLF001
    else:
        ws._closed = True  # noqa: SLF001
        ws._response.close()  # noqa: SLF001

