"""The relay: accept a client, dial the upstream, pump frames both ways, record them.

One symmetric pump per direction forwards every frame unchanged and at once: text,
binary, ping, pong and close (code and reason). Both legs run with ``autoping=False``
and ``autoclose=False`` so that aiohttp neither answers pings nor rewrites closes.
How a connection ends is decided by ``core.closing``; the relay only carries it out.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from yarl import URL

from wsproxy.clock import now_us
from wsproxy.core.closing import Side, other
from wsproxy.core.inject import Injector
from wsproxy.core.protocol import MessageDecoder, ParsedMessage
from wsproxy.core.rows import ConnectionOpened, frame_row, redact_headers, redact_query
from wsproxy.core.vocab import ClosedBy
from wsproxy.record.hands import Hands
from wsproxy.record.injection import relay_injected, send_held, settle
from wsproxy.record.legs import CLOSE_TIMEOUT, Conn, carry_out
from wsproxy.record.writer import Recorder
from wsproxy.ws import (
    DEFAULT_MAX_MESSAGE,
    aiohttp_limit,
    bound_pending,
    coalesce_writes,
    drop,
    errors_as_messages,
    upstream_headers,
    went_away,
)

# Handshake headers that belong to one leg only; everything else is forwarded upstream.
_HOP_HEADERS = frozenset({
    "host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-extensions", "sec-websocket-protocol", "content-length", "transfer-encoding",
    "keep-alive", "te", "trailer", "proxy-connection"})


CONNECT_TIMEOUT = 10.0  # seconds to reach the upstream and complete its handshake (--connect-timeout)
HANDSHAKE_TIMEOUT = 10.0  # seconds a client has to send its handshake request (--handshake-timeout)
MAX_PENDING = 1024  # connections still in their handshake; more are closed at once, until some finish


@dataclass(kw_only=True)
class RelayConfig:
    upstream: URL
    max_message_size: int = DEFAULT_MAX_MESSAGE
    redact: bool = True
    ssl_context: ssl.SSLContext | bool | None = None  # for wss:// upstreams
    connect_timeout: float = CONNECT_TIMEOUT
    handshake_timeout: float = HANDSHAKE_TIMEOUT
    max_pending: int = MAX_PENDING


@dataclass
class Counters:
    """Live figures for the status line."""

    open: int = 0
    total: int = 0
    failed_handshakes: int = 0
    frames: dict[str, int] = field(default_factory=lambda: {"client": 0, "server": 0})
    bytes: dict[str, int] = field(default_factory=lambda: {"client": 0, "server": 0})
    injected: int = 0  # actions --inject rules carried out
    refused_pending: int = 0  # connections closed at once: too many others were still in their handshake


class Observer(Protocol):
    """What the relay tells the live checker, with the same times it records."""

    def opened(self, conn_id: int, ts: int) -> None: ...
    def frame_relayed(self, conn_id: int, seq: int, ts: int, sender: str, parsed: ParsedMessage) -> None: ...
    def closed(self, conn_id: int, ts: int) -> None: ...
    def injected(self, conn_id: int) -> None: ...  # an --inject rule acted on this connection


class Relay:
    """The aiohttp application of ``wsproxy record``."""

    def __init__(self, config: RelayConfig, recorder: Recorder, decoder: MessageDecoder | None = None,
                 observer: Observer | None = None, injector: Injector | None = None, hands: Hands | None = None) -> None:
        self.config = config
        self.injector = injector  # --inject rules; None: every frame is relayed as it came
        self.hands = hands  # breakpoints and sending by hand (--intercept, the web view); None: not offered
        if hands is not None:
            hands.attach(self)
        self.recorder = recorder
        self.decoder = decoder or MessageDecoder()
        self.observer = observer
        self.counters = Counters()
        self.stopped_reason: str | None = None
        self.on_notice: Callable[[str], None] = lambda message: None  # said once per episode, not per event
        self._sockets: set[web.WebSocketResponse] = set()
        self._closing: set[asyncio.Future[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._saturated = False

    def watch(self, server: web.Server) -> None:
        """Bound the connections still in their handshake (aiohttp closes idle ones after
        ``handshake_timeout``, its keep-alive timeout): past ``max_pending`` a new one is closed at once
        and the user is told, once until the number falls again."""
        def full(pending: int) -> None:
            self.counters.refused_pending += 1
            if not self._saturated:
                self._saturated = True
                self.on_notice(f"{pending} connections have not finished their handshake: new ones are closed "
                               f"at once until they do (each has {self.config.handshake_timeout:g} s)")

        def fine() -> None:
            self._saturated = False
        bound_pending(server, self.config.max_pending, lambda: self.counters.open, full, fine)

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
            task = asyncio.ensure_future(ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"wsproxy cannot record"))
            self._closing.add(task)  # referenced until done: the loop keeps only weak references to tasks
            task.add_done_callback(self._closing.discard)

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
                     error: str | None = None) -> ConnectionOpened:
            return ConnectionOpened(
                conn_id=conn_id, session_id=recorder.session_id, opened_at=opened_us, path=request.path,
                query=redact_query(request.rel_url.raw_query_string, config.redact), client_addr=client_addr,
                subprotocol=subprotocol, request_headers=redact_headers(list(request.headers.items()), config.redact),
                response_headers=None if response_headers is None else redact_headers(response_headers, config.redact),
                status=status, error=error)

        # Compression per leg: offer permessage-deflate upstream only when the client offered it,
        # so the proxy never adds compression work the client did not ask for.
        wants_deflate = "permessage-deflate" in request.headers.get("Sec-WebSocket-Extensions", "").lower()
        assert self._session is not None
        try:
            async with asyncio.timeout(config.connect_timeout):
                upstream = await self._session.ws_connect(
                    url, protocols=offered, headers=forward, autoclose=False, autoping=False,
                    max_msg_size=aiohttp_limit(config.max_message_size), compress=15 if wants_deflate else 0,
                    heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
                    proxy=None)
        except TimeoutError:
            reason = (f"upstream {url} did not complete the WebSocket handshake within {config.connect_timeout:g} s "
                      f"(--connect-timeout)")
            return self._refused(open_row(504, None, None, reason), conn_id, 504, reason)
        except aiohttp.WSServerHandshakeError as exc:
            status = exc.status or 502
            if status == 101:  # upgraded but the handshake was invalid
                status = 502
            headers = list((exc.headers or {}).items())
            row = open_row(status, None, headers, f"upstream refused the handshake: {status} {exc.message}")
            return self._refused(row, conn_id, status, f"upstream {url} answered {status} {exc.message}", "server")
        except (aiohttp.ClientError, OSError) as exc:
            reason = f"cannot reach upstream {url}: {str(exc) or type(exc).__name__}"
            return self._refused(open_row(502, None, None, reason), conn_id, 502, reason)

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
            return went_away(request)
        errors_as_messages(client)
        coalesce_writes(client)
        coalesce_writes(upstream)
        recorder.connection_opened(open_row(101, chosen, upstream_headers(upstream)))
        observer = self.observer
        if observer is not None:
            observer.opened(conn_id, opened_us)
        self._sockets.add(client)
        self.counters.open += 1
        conn = Conn(conn_id, observer=observer.frame_relayed if observer is not None else None)
        closing = conn.closing
        legs = {"client": client, "server": upstream}
        if self.injector is not None or self.hands is not None:  # what conn=KEY:VALUE selectors read
            values = {**dict(request.query), **dict(request.headers)}
            if self.injector is not None:
                self.injector.opened(conn_id, values)
            if self.hands is not None:
                self.hands.opened(conn, legs, str(request.rel_url), values)
        pumps = {asyncio.create_task(self._pump(legs, conn, "client"), name=f"pump-{conn_id}-up"),
                 asyncio.create_task(self._pump(legs, conn, "server"), name=f"pump-{conn_id}-down")}
        try:
            _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            if pending:  # one side closed: the other has CLOSE_TIMEOUT to finish the handshake
                _, pending = await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)
            for task in pending:
                task.cancel()
                closing.timed_out(CLOSE_TIMEOUT)
            for task in pumps:
                if not task.cancelled() and task.done() and task.exception() is not None:
                    closing.crashed(repr(task.exception()))
            if pending:
                await asyncio.wait(pending)
                drop(client)
                drop(upstream)
        finally:
            if self.injector is not None:
                await settle(conn, recorder)  # what --inject still held: recorded, as not delivered
                self.injector.closed(conn_id)
            if self.hands is not None:
                self.hands.closed(conn_id)
            self._sockets.discard(client)
            self.counters.open -= 1
            if not upstream.closed:
                await upstream.close()
            closed_us = now_us()
            recorder.connection_closed(conn_id, closing.close_code, closing.close_reason, closing.closed_by,
                                       closing.error, closed_us)
            if observer is not None:
                observer.closed(conn_id, closed_us)
        return client

    def _refused(self, row: ConnectionOpened, conn_id: int, status: int, reason: str,
                 closed_by: ClosedBy = "proxy") -> web.Response:
        """The upstream could not be had: the client gets ``status`` and why; the recording says the same."""
        self.recorder.connection_opened(row)
        self.recorder.connection_closed(conn_id, None, None, closed_by, None)
        self.counters.failed_handshakes += 1
        return web.Response(status=status, text=reason + "\n")

    async def _pump(self, legs: dict[str, Any], conn: Conn, sender: Side) -> None:
        """Forward every frame from ``sender``'s leg to the other one, in order, and record it."""
        recorder, decode, counters = self.recorder, self.decoder.decode, self.counters
        observe = self.observer.frame_relayed if self.observer is not None else None
        source, dest = legs[sender], legs[other(sender)]
        closing = conn.closing
        hands = self.hands
        ahead = conn.ahead[sender]  # read on behind a held message: relayed first
        while True:
            msg = ahead.popleft() if ahead else await source.receive()
            kind = msg.type
            if recorder.error is not None:
                return  # stop_relaying closes both sides
            if (kind is WSMsgType.TEXT or kind is WSMsgType.BINARY) and (
                    self.injector is not None or (hands is not None and hands.armed)):
                is_text = kind is WSMsgType.TEXT
                # a breakpoint first (what it does not hold goes on to the --inject rules, if any)
                if await (hands.relay_frame(legs, conn, sender, is_text, msg.data, ahead)
                          if hands is not None and hands.armed else
                          relay_injected(self, legs, conn, sender, is_text, msg.data)):
                    return  # a rule closed the connection
                if recorder.holding:
                    await recorder.wait_for_capacity()
            elif kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
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
                recorder.add_frame(frame_row(conn.conn_id, seq, ts, sender, "text" if is_text else "binary", data, parsed))
                counters.frames[sender] += 1
                counters.bytes[sender] += len(data)
                if observe is not None:
                    observe(conn.conn_id, seq, ts, sender, parsed)
                if recorder.holding:
                    await recorder.wait_for_capacity()
            elif kind is WSMsgType.PING or kind is WSMsgType.PONG:
                try:
                    await (dest.ping(msg.data) if kind is WSMsgType.PING else dest.pong(msg.data))
                except (ConnectionError, RuntimeError):
                    pass
                recorder.add_frame(frame_row(conn.conn_id, conn.next_seq(), now_us(), sender,
                                         "ping" if kind is WSMsgType.PING else "pong", msg.data, None))
            elif kind is WSMsgType.CLOSE:
                await send_held(conn, sender, dest, recorder)
                code, reason = msg.data, msg.extra or ""
                recorder.add_frame(frame_row(conn.conn_id, conn.next_seq(), now_us(), sender, "close", reason,
                                         None, code))
                await carry_out(closing.close_frame(sender, code, reason), legs)
                return
            elif kind is WSMsgType.ERROR:  # the peer broke the protocol (or its transport failed)
                exc = msg.data
                code = getattr(exc, "code", None)
                await carry_out(closing.protocol_error(sender, code, too_big(str(exc), self.config.max_message_size)
                                                       if code == WSCloseCode.MESSAGE_TOO_BIG else str(exc)), legs)
                return
            elif kind is WSMsgType.CLOSING:  # we closed this leg ourselves meanwhile
                await carry_out(closing.leg_closing(sender), legs)
                return
            else:  # CLOSED: the peer vanished without a close frame
                await carry_out(closing.vanished(sender), legs)
                return


def too_big(text: str, limit: int) -> str:
    """aiohttp's "Message size N exceeds limit L" names its own limit, one more than ours (``ws.aiohttp_limit``)."""
    size = text.split("Message size ", 1)[-1].split(" ", 1)[0]
    return f"a message of {size} bytes, over the limit of {limit} (--max-message-size)"


def upstream_url(base: URL, rel: URL) -> URL:
    """The upstream URL for a client request: base path prefix + client path + client query,
    all kept exactly as encoded by the client (no decoding, no re-encoding)."""
    return URL.build(scheme=base.scheme, user=base.raw_user, password=base.raw_password, host=base.raw_host or "",
                     port=base.explicit_port, path=base.raw_path.rstrip("/") + rel.raw_path,
                     query_string=rel.raw_query_string, encoded=True)


