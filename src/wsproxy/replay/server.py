"""The aiohttp shell around the replay plan: accept clients, carry out the plan's sends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from wsproxy.clock import now_us
from wsproxy.core.checker import Checker
from wsproxy.core.inject import Injector, Seen, outcome
from wsproxy.core.protocol import decode
from wsproxy.core.recorded import RecordedSession
from wsproxy.core.replay_plan import Divergence, ReplayPlan, Send, render
from wsproxy.core.vocab import Sender
from wsproxy.ws import DEFAULT_MAX_MESSAGE, aiohttp_limit, went_away


@dataclass
class ReplayCounters:
    clients: int = 0
    open: int = 0
    refused: int = 0
    received: int = 0
    sent: int = 0
    injected: int = 0  # actions --inject rules carried out


@dataclass
class ReplayServer:
    session: RecordedSession
    plan: ReplayPlan
    max_message_size: int = DEFAULT_MAX_MESSAGE
    counters: ReplayCounters = field(default_factory=ReplayCounters)
    divergences: list[Divergence] = field(default_factory=list)
    listeners: list[Callable[[Divergence], None]] = field(default_factory=list)
    injector: Injector | None = None  # --inject: the mock server misbehaves on what it sends
    checker: Checker | None = None  # --spec: both sides' messages against an AsyncAPI document

    def __post_init__(self) -> None:
        self._seqs: dict[int, int] = {}  # slot -> the last message's number, for --spec findings
        self._outboxes: dict[int, asyncio.Queue[Send]] = {}
        self._later: set[asyncio.Task] = set()  # --inject delay=: sends still to come
        self._sockets: set[web.WebSocketResponse] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        app.on_shutdown.append(self._close_all)
        return app

    async def _close_all(self, app: web.Application) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"wsproxy replay shutting down")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        probe = web.WebSocketResponse()
        if not probe.can_prepare(request).ok:
            return web.Response(status=426, text="wsproxy replay serves WebSocket connections only\n",
                                headers={"Upgrade": "websocket"})
        offered = [p.strip() for h in request.headers.getall("Sec-WebSocket-Protocol", [])
                   for p in h.split(",") if p.strip()]
        bound = self.plan.bind(request.path, request.rel_url.raw_query_string, dict(request.headers), offered,
                               now_us())
        if bound.slot is None:
            self.counters.refused += 1
            self._diverge([Divergence(0, now_us(), "refused", f"refused {request.path_qs}: {bound.error}")])
            return web.Response(status=503, text=f"wsproxy replay: {bound.error}\n")
        slot = bound.slot
        ws = web.WebSocketResponse(protocols=(bound.subprotocol,) if bound.subprotocol else (), autoping=True,
                                   max_msg_size=aiohttp_limit(self.max_message_size), heartbeat=None)
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError):  # the client went away: as if it connected and left at once
            self._diverge(self.plan.client_closed(slot, now_us()))
            self._route(self.plan.release(now_us()))
            return went_away(request)
        self.counters.clients += 1
        self.counters.open += 1
        self._sockets.add(ws)
        outbox: asyncio.Queue[Send] = asyncio.Queue()
        self._outboxes[slot] = outbox
        if self.injector is not None:
            self.injector.opened(slot, {**dict(request.query), **dict(request.headers)})
        writer = asyncio.create_task(self._write(ws, outbox, slot), name=f"replay-{slot}")
        if self.checker is not None:
            self.checker.open(slot, now_us())
        try:
            self._route(self.plan.connected(slot, now_us()))
            async for msg in ws:
                if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                    self.counters.received += 1
                    if self.checker is not None:
                        self._check(slot, "client", "text" if msg.type is WSMsgType.TEXT else "binary", msg.data)
                    if self.injector is not None and msg.type is WSMsgType.TEXT:  # for type= on its response
                        asked = decode("text", msg.data, "client")
                        if asked.msg_type == "request" and asked.msg_id is not None and asked.payload_type:
                            self.injector.asked(slot, asked.msg_id, asked.payload_type)
                    sends, divergences = self.plan.client_message(
                        slot, "text" if msg.type is WSMsgType.TEXT else "binary", msg.data, now_us())
                    self._diverge(divergences)
                    self._route(sends)
        finally:
            self._sockets.discard(ws)
            self.counters.open -= 1
            del self._outboxes[slot]
            writer.cancel()
            if self.checker is not None:
                self.checker.close(slot, now_us())
            self._diverge(self.plan.client_closed(slot, now_us()))
            self._route(self.plan.release(now_us()))
        return ws

    def _route(self, sends: list[Send]) -> None:
        for send in sends:
            outbox = self._outboxes.get(send.slot)
            if outbox is not None:  # a client that already left gets nothing
                outbox.put_nowait(send)

    async def _write(self, ws: web.WebSocketResponse, outbox: asyncio.Queue[Send], slot: int) -> None:
        """Send in order, each at its time (sleeping only when --timing asks for gaps)."""
        held: list = []  # reorder: the message waiting for the next one
        while True:
            send = await outbox.get()
            delay = (send.at_us - now_us()) / 1_000_000
            if delay > 0:
                await asyncio.sleep(delay)
            kind, value = render(send, now_us())
            if self.checker is not None and kind in ("text", "binary"):
                self._check(slot, "server", kind, value)
            try:
                if kind in ("text", "binary") and self.injector is not None:
                    if await self._inject(ws, slot, kind, value, held):
                        return
                elif kind == "text":
                    await ws.send_str(value)
                elif kind == "binary":
                    await ws.send_bytes(value)
                else:
                    code, reason = value
                    await ws.close(code=code, message=reason.encode()[:120])
                    return
            except (ConnectionError, RuntimeError):
                return
            self.counters.sent += 1

    async def _inject(self, ws: web.WebSocketResponse, slot: int, kind: str, value: str | bytes, held: list) -> bool:
        """One message of the mock server as the --inject rules say (what ``record --inject`` does to a
        server's message, on the replay's only leg). True when a rule closed the connection."""
        assert self.injector is not None  # called only with --inject
        parsed = decode(kind, value, "server")
        fired = self.injector.fire(Seen(slot, "server", parsed.msg_type, parsed.payload_type or parsed.event_type,
                                        parsed.msg_id))
        rule = fired[0] if fired else None
        self.counters.injected += rule is not None
        out = outcome(rule, value)

        async def send(data: str | bytes) -> None:
            await (ws.send_str(data) if isinstance(data, str) else ws.send_bytes(data))

        async def later(seconds: float) -> None:
            await asyncio.sleep(seconds)
            await send(value)

        if out.close is not None and rule is not None:  # only a close= rule closes
            await ws.close(code=out.close, message=f"wsproxy --inject: {rule.text}".encode()[:120])
            return True
        if out.pause:
            await asyncio.sleep(out.pause)
        for item in out.sends:
            await send(item)
        while held:  # as in record: one held before goes out after this one, or now if this one is held
            await send(held.pop())
        if out.hold:
            held.append(value)
        if out.later is not None:
            task = asyncio.create_task(later(out.later))
            self._later.add(task)  # referenced until done (the loop keeps only weak references)
            task.add_done_callback(self._later.discard)
        return False

    def _check(self, slot: int, sender: Sender, kind: str, data: str | bytes) -> None:
        """--spec: one message against the document; what breaks it is a divergence of kind spec."""
        assert self.checker is not None
        seq = self._seqs[slot] = self._seqs.get(slot, 0) + 1
        findings = self.checker.message(slot, seq, now_us(), sender, decode(kind, data, sender))
        self._diverge([Divergence(slot, f.ts or now_us(), "spec", f"{sender} message {seq}: {f.code}: {f.message}",
                                  got=data if isinstance(data, str) else None)
                       for f in findings if f.code.startswith("spec-")])

    def _diverge(self, divergences: list[Divergence]) -> None:
        for divergence in divergences:
            self.divergences.append(divergence)
            for listener in self.listeners:
                listener(divergence)


@dataclass
class RunningReplay:
    server: ReplayServer
    runner: web.AppRunner
    url: str

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_replay(session: RecordedSession, plan: ReplayPlan, host: str = "127.0.0.1", port: int = 0,
                       max_message_size: int = DEFAULT_MAX_MESSAGE, injector: Injector | None = None,
                       checker: Checker | None = None) -> RunningReplay:
    server = ReplayServer(session, plan, max_message_size, injector=injector, checker=checker)
    runner = web.AppRunner(server.app(), handle_signals=False, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    return RunningReplay(server, runner, f"ws://{shown}:{bound_port}")
