"""Hands on the wire: breakpoints that hold messages until a person forwards, edits or drops them,
and messages a person composes or resends on a live connection (docs/ui.md). The web view's API
(``ui.server``) calls in; the relay's pump calls ``relay`` for each data frame while a breakpoint is on.

A held message holds its direction of its connection: its pump waits for the decision (order kept),
reading on only to see the connection close, which discards what was held. After ``hold_timeout`` a
held message goes out as it came. Everything done is recorded in ``injections`` (``source`` says who).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import WSMsgType

from wsproxy.clock import now_us
from wsproxy.core.closing import Side, other
from wsproxy.core.inject import Injector, Rule, Seen, parse_breakpoint
from wsproxy.core.protocol import ParsedMessage
from wsproxy.core.rows import InjectionRow, frame_row
from wsproxy.core.vocab import HeldAction, InjectAction, InjectionSource, Sender
from wsproxy.record.injection import relay_injected
from wsproxy.record.legs import Conn, send
from wsproxy.record.sending import HandsError, Sending

HOLD_TIMEOUT = 60.0  # seconds a held message waits for a person before it goes out as it came (--hold-timeout)
MAX_AHEAD = 1024  # messages read on behind a held one (to see a close); then the sender is made to wait
# what the sender's socket says when the connection is ending (its pump carries it out after the decision)
_ENDINGS = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR})


@dataclass
class Breakpoint:
    id: int
    rule: Rule
    enabled: bool = True

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "rule": self.rule.text, "enabled": self.enabled}


class Decision(msgspec.Struct, frozen=True):
    action: HeldAction
    source: InjectionSource
    text: str | None = None  # forward: what goes out instead
    why: str | None = None  # wsproxy decided: why (timeout, the connection closed)


@dataclass
class Held:
    id: int
    conn_id: int
    seq: int
    sender: Sender
    is_text: bool
    data: str | bytes
    ts: int  # when it came (µs)
    rule: str
    parsed: ParsedMessage = field(repr=False)
    decided: asyncio.Future[Decision] = field(repr=False)
    since: float = field(default_factory=time.monotonic)

    @property
    def original(self) -> str | None:
        """The message as its sender sent it, when it is text (what ``injections.original`` keeps)."""
        return self.data if isinstance(self.data, str) else None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "conn_id": self.conn_id, "seq": self.seq, "sender": self.sender,
                "direction": "client → server" if self.sender == "client" else "server → client",
                "to": other(self.sender), "kind": "text" if self.is_text else "binary",
                "text": self.data if self.is_text else None,
                "size": len(self.data.encode() if isinstance(self.data, str) else self.data),
                "held_at_us": self.ts, "rule": self.rule}


@dataclass
class _Live:
    """A connection the relay is relaying: what sending on it needs."""

    conn: Conn
    legs: dict[str, Any]
    path_qs: str


class Hands:
    """The breakpoints, the held messages and sending by hand, for one relay (``attach``)."""

    def __init__(self, rules: list[Rule] | None = None, hold_timeout: float = HOLD_TIMEOUT) -> None:
        self.hold_timeout = hold_timeout
        self.breakpoints: list[Breakpoint] = []
        self.held: dict[int, Held] = {}
        self.version = 0  # grows whenever breakpoints or held messages change (the page's live socket)
        self.armed = False  # a breakpoint is on: the pumps ask ``relay_frame`` about every data frame
        self._enabled: set[int] = set()  # id() of the rules of the breakpoints that are on
        self._matcher = Injector([])
        self.numbers = itertools.count(1)
        self.live: dict[int, _Live] = {}
        self.opening: dict[str, asyncio.Future[int]] = {}
        self.relay: Any = None
        self.sending = Sending(self)  # composing and resending (record.sending)
        self.own_url = ""  # the proxy's own ws:// address (new connections to the upstream go through it)
        for rule in rules or []:
            self._add(rule)

    def attach(self, relay: Any) -> None:
        self.relay = relay

    # --- breakpoints ---

    def _add(self, rule: Rule) -> Breakpoint:
        point = Breakpoint(next(self.numbers), rule)
        self.breakpoints.append(point)
        self._matcher.rules.append(rule)
        self._matcher._matched.append(0)
        self._changed()
        return point

    def add_breakpoint(self, text: str) -> Breakpoint:
        return self._add(parse_breakpoint(text))

    def set_breakpoint(self, point_id: int, enabled: bool | None = None, remove: bool = False) -> None:
        point = next((p for p in self.breakpoints if p.id == point_id), None)
        if point is None:
            raise HandsError(f"no breakpoint {point_id}", 404)
        if remove:
            index = self.breakpoints.index(point)
            del self.breakpoints[index]
            del self._matcher.rules[index]
            del self._matcher._matched[index]
        elif enabled is not None:
            point.enabled = enabled
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self._enabled = {id(point.rule) for point in self.breakpoints if point.enabled}
        self.armed = bool(self._enabled)

    def state(self) -> dict[str, Any]:
        return {"breakpoints": [p.as_json() for p in self.breakpoints], "held": len(self.held),
                "hold_timeout": self.hold_timeout, "version": self.version,
                "live": sorted(self.live)}

    # --- the relay's side ---

    def opened(self, conn: Conn, legs: dict[str, Any], path_qs: str, values: dict[str, str]) -> None:
        self.live[conn.conn_id] = _Live(conn, legs, path_qs)
        self._matcher.opened(conn.conn_id, values)
        waiter = self.opening.pop(self._matcher.value(conn.conn_id, "X-Wsproxy-Opened-By") or "", None)
        if waiter is not None and not waiter.done():
            waiter.set_result(conn.conn_id)
        self._changed()

    def closed(self, conn_id: int) -> None:
        """The connection is over: what it still held is discarded (its pump records it)."""
        self.live.pop(conn_id, None)
        self._matcher.closed(conn_id)
        for held in [h for h in self.held.values() if h.conn_id == conn_id]:
            if not held.decided.done():
                held.decided.set_result(Decision("drop", "proxy", why="the connection closed while it was held"))
        self._changed()

    async def relay_frame(self, legs: dict[str, Any], conn: Conn, sender: Side, is_text: bool, data: Any,
                          ahead: deque) -> bool:
        """Relay one data frame while breakpoints are on: held if one selects it, else as the relay would.
        True when the connection was closed (an --inject close= rule)."""
        relay = self.relay
        kind = "text" if is_text else "binary"
        parsed = relay.decoder.decode(kind, data, sender)
        fired = self._matcher.fire(Seen(conn.conn_id, sender, parsed.msg_type,
                                        parsed.payload_type or parsed.event_type, parsed.msg_id))
        rule = next((r for r in fired if id(r) in self._enabled), None) if fired else None
        if rule is None:
            if relay.injector is not None:
                return bool(await relay_injected(relay, legs, conn, sender, is_text, data))
            await send(legs[other(sender)], is_text, data)
            self.record_frame(conn, conn.next_seq(), now_us(), sender, is_text, data, parsed)
            return False
        held = Held(next(self.numbers), conn.conn_id, conn.next_seq(), sender, is_text, data, now_us(), rule.text,
                    parsed, asyncio.get_running_loop().create_future())
        self.held[held.id] = held
        self._changed()
        try:
            decision = await self._wait(held, legs[sender], ahead)
        except asyncio.CancelledError:  # the connection ended while it waited
            self._decided(held, Decision("drop", "proxy", why="the connection closed while it was held"))
            raise
        await self._carry_out(held, decision, legs[other(sender)], conn)
        return False

    async def _wait(self, held: Held, source: Any, ahead: deque) -> Decision:
        """The decision on ``held``: a person's, the hold timeout's, or the connection's end (read on
        behind it, into ``ahead``, which the pump relays next)."""
        deadline = held.since + self.hold_timeout
        reading: asyncio.Task | None = None
        try:
            while not held.decided.done():
                if any(m.type in _ENDINGS for m in ahead):  # pings and pongs wait their turn
                    return Decision("drop", "proxy", why="the connection closed while it was held")
                if reading is None and len(ahead) < MAX_AHEAD:
                    reading = asyncio.ensure_future(source.receive())
                left = deadline - time.monotonic()
                if left <= 0:
                    return Decision("forward", "proxy", why=f"released as it came after --hold-timeout "
                                                            f"{self.hold_timeout:g} s")
                waits = {held.decided, reading} if reading is not None else {held.decided}
                await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                if reading is not None and reading.done():
                    ahead.append(reading.result())
                    reading = None
            return held.decided.result()
        finally:
            if reading is not None:
                reading.cancel()
                try:
                    ahead.append(await reading)  # it came just as we stopped reading: not lost
                except asyncio.CancelledError:
                    pass

    def decide(self, held_id: int, action: str, text: str | None, source: InjectionSource) -> dict[str, Any]:
        """A person's decision on a held message (``POST /api/held/{id}``)."""
        held = self.held.get(held_id)
        if held is None or held.decided.done():
            raise HandsError(f"no held message {held_id}: it was released already (forwarded, dropped, timed "
                             f"out or its connection closed)", 404)
        if action not in ("forward", "drop"):
            raise HandsError(f'action must be "forward" or "drop", not {action!r}')
        if text is not None and not isinstance(text, str):
            raise HandsError("text must be a string (the message to send instead)")
        held.decided.set_result(Decision("forward" if action == "forward" else "drop", source,
                                         text if action == "forward" else None))
        return {"id": held_id, "conn_id": held.conn_id, "seq": held.seq, "action": action}

    async def _carry_out(self, held: Held, decision: Decision, dest: Any, conn: Conn) -> None:
        waited = f"held {time.monotonic() - held.since:.1f} s"
        detail = f"{waited}; {decision.why}" if decision.why else waited
        original = held.original
        if decision.action == "drop":
            self.mark(conn.conn_id)
            self.record_frame(conn, held.seq, held.ts, held.sender, held.is_text, held.data, held.parsed, delivered=0)
            self._decided(held, decision, "drop", detail, original=original)
            return
        replacement = decision.text if decision.text is not None and decision.text != original else None
        is_text = held.is_text or replacement is not None
        data = held.data if replacement is None else replacement
        if replacement is not None:
            self.mark(conn.conn_id)
        await send(dest, is_text, data)
        parsed = self.relay.decoder.decode("text" if is_text else "binary", data, held.sender)
        self.record_frame(conn, held.seq, held.ts, held.sender, is_text, data, parsed)
        if replacement is not None:
            self._decided(held, decision, "edit", detail, original=original, sent=replacement)
        else:
            self._decided(held, decision, "intercept", detail)

    def _decided(self, held: Held, decision: Decision, action: InjectAction | None = None, detail: str | None = None,
                 original: str | None = None, sent: str | None = None) -> None:
        self.held.pop(held.id, None)
        self._changed()
        if action is None:  # the pump was cancelled: recorded as not delivered
            self.record_frame(Conn(held.conn_id), held.seq, held.ts, held.sender, held.is_text, held.data,
                              held.parsed, delivered=0)
            action, detail, original = "drop", decision.why, held.original
            self.mark(held.conn_id)
        self.inject_row(held.conn_id, held.seq, held.sender, action, f"intercept {held.rule}", decision.source,
                        detail, original, sent)

    # --- recording ---

    def record_frame(self, conn: Conn, seq: int, ts: int, sender: Sender, is_text: bool, data: Any,
                     parsed: ParsedMessage | None, delivered: int | None = None) -> None:
        """A frame row for what went out (told to the checker) or did not (``delivered=0``: not told)."""
        relay = self.relay
        row = frame_row(conn.conn_id, seq, ts, sender, "text" if is_text else "binary", data, parsed)
        if delivered is not None:
            row.delivered = delivered
        relay.recorder.add_frame(row)
        relay.counters.frames[sender] += 1
        relay.counters.bytes[sender] += len(data)
        if delivered is None and parsed is not None and conn.observer is not None:
            conn.observer(conn.conn_id, seq, now_us(), sender, parsed)

    def inject_row(self, conn_id: int, seq: int, sender: Sender, action: InjectAction, rule: str,
                   source: InjectionSource, detail: str | None, original: str | None, sent: str | None) -> None:
        relay = self.relay
        relay.recorder.add_injection(InjectionRow(
            session_id=relay.recorder.session_id, conn_id=conn_id, seq=seq, ts=now_us(), sender=sender,
            action=action, rule=rule, detail=detail, source=source, original=original, sent=sent))

    def mark(self, conn_id: int) -> None:
        """A person changed what this connection carries: its findings from now on are marked as caused by it."""
        relay = self.relay
        relay.counters.injected += 1
        if relay.observer is not None:
            relay.observer.injected(conn_id)
