"""The replay plan: given a recorded session and what live clients do, decide what to send when.

Pure: it is told every client connect, message and close with the current time, and answers
with ``Send``s (which recorded server frame, to which live connection, at what time, with which
request id) and ``Divergence``s. The aiohttp shell (``replay.server``) only carries them out.

How it decides (docs/replay.md explains it for users):

- **Binding.** A client that connects takes a recorded connection: the first unbound one with
  the same path and query, else the next unbound one in recorded order (or, with a bind key
  such as ``query:user``, the first unbound one with the same value of that key).
- **Per connection,** recorded frames are replayed in their recorded order: a server frame is
  sent once every client frame recorded before it on that connection has been matched.
- **Causality across connections.** Each recorded server frame other than a response also
  waits for the client action (a message, a connect, a close) recorded just before it on any
  connection — so User1's request is what releases the event User2 receives.
- **Matching.** ``strict``: the next expected client message must have the same type,
  payloadType/eventType and payload (ids and timestamps ignored). ``loose``: the closest of the
  remaining recorded client messages with the same type and payloadType; those skipped are
  reported. A request that matches nothing gets a ``replay_mismatch`` error response.
- **Ids and times.** A recorded response goes out with the client's actual request id; the
  shell shifts timestamps to now (``render``), keeping the recorded unit.

Core module: standard library and msgspec only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from wsproxy.core.errors import UserError
from wsproxy.core.recorded import RecordedConnection, RecordedFrame, RecordedSession
from wsproxy.core.replay_match import Shape, bind_value, describe, render_frame, response_fields, shape, similarity
from wsproxy.core.vocab import DivergenceKind

MATCH_MODES = ("strict", "loose")
_json_encode = msgspec.json.encode


class TimingError(UserError, ValueError):
    """A --timing value that is not asap, recorded or scale:F."""


def parse_timing(text: str) -> float | None:
    """``asap`` -> None (send at once); ``recorded`` -> 1.0; ``scale:F`` -> F (0.5 = twice as fast)."""
    if text == "asap":
        return None
    if text == "recorded":
        return 1.0
    if text.startswith("scale:"):
        try:
            factor = float(text[6:])
        except ValueError:
            factor = -1.0
        if factor >= 0:
            return factor
    raise TimingError(f"--timing {text!r}: use asap, recorded or scale:F (F >= 0, e.g. scale:0.5)")


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``frame`` (as recorded, or ``text`` instead) on the live connection bound to ``slot``
    at real time ``at_us``; ``request_id`` replaces the recorded response id."""

    slot: int
    frame: RecordedFrame | None
    at_us: int
    request_id: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where a live client did something the recording did not."""

    conn_id: int  # the recorded connection the client is bound to (0: none)
    ts_us: int
    kind: DivergenceKind
    message: str
    expected: str | None = None
    got: str | None = None


@dataclass(frozen=True, slots=True)
class Bound:
    slot: int | None  # the recorded conn_id, or None when refused
    subprotocol: str | None = None
    error: str | None = None


@dataclass(slots=True)
class _Item:
    frame: RecordedFrame
    action: int | None = None  # client frames: the action id
    trigger: int | None = None  # server frames: the cross-connection action they wait for
    is_response: bool = False  # server frames: a response envelope ...
    answers: str | None = None  # ... and the recorded request id it answers
    shape: Shape | None = None  # client data frames: what matching compares


def _wanted(item: _Item) -> tuple[Shape, int]:
    """A client data frame's shape and action id (every client data item has both)."""
    assert item.shape is not None and item.action is not None
    return item.shape, item.action


@dataclass(slots=True)
class _Slot:
    conn: RecordedConnection
    items: list[_Item]
    open_action: int
    bound: bool = False
    closed: bool = False
    cursor: int = 0  # next item that may be sent (or waited for)
    id_map: dict[str, str] = field(default_factory=dict)  # recorded request id -> live request id
    skipped_ids: set[str] = field(default_factory=set)  # recorded requests the client never sent
    clock: tuple[int, int] = (0, 0)  # (real µs, recorded µs) of the latest thing on this connection


@dataclass
class ReplayPlan:
    session: RecordedSession
    match: str = "strict"
    scale: float | None = None  # None: as soon as possible
    bind_key: str | None = None  # "query:NAME" or "header:NAME"
    loop: bool = False

    def __post_init__(self) -> None:
        if self.match not in MATCH_MODES:
            raise ValueError(f"--match must be strict or loose, not {self.match!r}")
        self._build()

    # --- building: the recorded timeline with its causal links ---

    def _build(self) -> None:
        self._slots: dict[int, _Slot] = {}
        self._action_done: list[bool] = []
        self._action_time: list[tuple[int, int]] = []  # (real µs when done, recorded µs)
        self._action_conn: list[int] = []
        timeline: list[tuple[int, int, int, int, Any]] = []  # (ts, rank, conn, seq, what)
        for conn in self.session.replayable:
            items = []
            for frame in conn.frames:
                if frame.kind in ("ping", "pong"):
                    continue  # the live peers ping each other; aiohttp answers
                items.append(_Item(frame))
            items = _drop_close_replies(items)
            if conn.closed_by == "server" and not any(i.frame.sender == "server" and i.frame.kind == "close"
                                                      for i in items):
                # the server (or the proxy for it) ended the connection without a close frame on record
                last_seq = items[-1].frame.seq if items else 0
                items.append(_Item(RecordedFrame(conn.conn_id, last_seq + 1, conn.closed_us or conn.opened_us,
                                                 "server", "close", conn.close_reason or "", None,
                                                 conn.close_code or 1011)))
            slot = _Slot(conn, items, open_action=-1)
            self._slots[conn.conn_id] = slot
            timeline.append((conn.opened_us, 0, conn.conn_id, 0, ("open", slot)))
            for item in items:
                timeline.append((item.frame.ts_us, 1, conn.conn_id, item.frame.seq, ("frame", slot, item)))
        timeline.sort(key=lambda entry: entry[:4])
        last_action: int | None = None
        for _ts, _rank, conn_id, _seq, what in timeline:
            if what[0] == "open":
                last_action = self._new_action(conn_id, what[1].conn.opened_us)
                what[1].open_action = last_action
                continue
            _, slot, item = what
            frame = item.frame
            if frame.sender == "client":
                last_action = item.action = self._new_action(conn_id, frame.ts_us)
                if frame.kind in ("text", "binary"):
                    item.shape = shape(frame.kind, frame.text if frame.kind == "text" else frame.data)
            else:
                item.is_response, item.answers = response_fields(frame)
                if last_action is not None and self._action_conn[last_action] != conn_id and not item.is_response:
                    item.trigger = last_action  # a response's cause is its request, on its own connection

    def _new_action(self, conn_id: int, recorded_us: int) -> int:
        self._action_done.append(False)
        self._action_time.append((0, recorded_us))
        self._action_conn.append(conn_id)
        return len(self._action_done) - 1

    # --- binding ---

    def bind(self, path: str, query: str, headers: dict[str, str], offered: list[str], now_us: int) -> Bound:
        """A client connects: take a recorded connection for it (or say why not)."""
        slot = self._choose(path, query, headers)
        if slot is None and self.loop and self._slots and all(s.bound and s.closed for s in self._slots.values()):
            self._build()  # --loop: everything was replayed; start over
            slot = self._choose(path, query, headers)
        if slot is None:
            unbound = sum(not s.bound for s in self._slots.values())
            if self.bind_key and unbound:
                wanted = bind_value(self.bind_key, query, headers)
                return Bound(None, error=f"no unbound recorded connection with {self.bind_key}={wanted!r} "
                                         f"({unbound} other(s) left)")
            return Bound(None, error=f"all {len(self._slots)} recorded connection(s) are taken "
                                     f"(use --loop to replay again)")
        slot.bound = True
        slot.clock = (now_us, slot.conn.opened_us)
        protocol = slot.conn.subprotocol if slot.conn.subprotocol in offered else None
        return Bound(slot.conn.conn_id, protocol)

    def _choose(self, path: str, query: str, headers: dict[str, str]) -> _Slot | None:
        free = [s for s in self._slots.values() if not s.bound]
        if self.bind_key:
            wanted = bind_value(self.bind_key, query, headers)
            return next((s for s in free if bind_value(self.bind_key, s.conn.query, s.conn.request_headers)
                         == wanted), None)
        return next((s for s in free if s.conn.path == path and s.conn.query == query), None) or \
            (free[0] if free else None)

    def connected(self, slot_id: int, now_us: int) -> list[Send]:
        """The bound client's handshake is done: what the server sent first goes out now."""
        slot = self._slots[slot_id]
        self._done(slot.open_action, now_us)
        return self._release(now_us)

    # --- client traffic ---

    def client_message(self, slot_id: int, kind: str, data: str | bytes, now_us: int
                       ) -> tuple[list[Send], list[Divergence]]:
        slot = self._slots[slot_id]
        got_shape = shape(kind, data)
        divergences: list[Divergence] = []
        pending = [(i, item) for i, item in enumerate(slot.items)
                   if item.shape is not None and item.action is not None and not self._action_done[item.action]]
        if not pending:
            divergences.append(Divergence(slot_id, now_us, "unexpected", "a client message after the last one "
                                          "recorded on this connection", None, describe(got_shape)))
            return self._mismatch_reply(slot_id, got_shape, now_us, "nothing more"), divergences
        chosen = self._match(pending, got_shape)
        if chosen is None:
            expected = describe(pending[0][1].shape)
            divergences.append(Divergence(slot_id, now_us, "mismatch", f"expected {expected} (recorded seq "
                                          f"{pending[0][1].frame.seq}), got {describe(got_shape)}",
                                          expected, describe(got_shape)))
            return self._mismatch_reply(slot_id, got_shape, now_us, expected), divergences
        index, item = chosen
        for skipped_index, skipped in pending:
            if skipped_index >= index:
                break
            skipped_shape, skipped_action = _wanted(skipped)
            divergences.append(Divergence(slot_id, now_us, "skipped", f"recorded {describe(skipped_shape)} "
                                          f"(seq {skipped.frame.seq}) was never sent", describe(skipped_shape)))
            if skipped_shape.request_id is not None:
                slot.skipped_ids.add(skipped_shape.request_id)
            self._done(skipped_action, now_us)
        item_shape, item_action = _wanted(item)
        if self.match == "loose" and item_shape.body != got_shape.body:
            divergences.append(Divergence(slot_id, now_us, "payload-differs",
                                          f"matched recorded seq {item.frame.seq} loosely",
                                          describe(item_shape, True), describe(got_shape, True)))
        live_id = got_shape.request_id
        recorded_id = item_shape.request_id
        if live_id is not None and recorded_id is not None:
            slot.id_map[recorded_id] = live_id
        slot.clock = (now_us, item.frame.ts_us)
        self._done(item_action, now_us)
        return self._release(now_us), divergences

    def client_closed(self, slot_id: int, now_us: int) -> list[Divergence]:
        """The live client went away: its remaining recorded actions count as done (so nobody
        waits for them) and any it never sent are reported."""
        slot = self._slots[slot_id]
        slot.closed = True
        divergences = []
        unsent = [(item, item.action) for item in slot.items
                  if item.action is not None and not self._action_done[item.action]]
        data_unsent = [item for item, _ in unsent if item.shape is not None]
        if data_unsent:
            divergences.append(Divergence(slot_id, now_us, "closed-early", f"the client closed with "
                                          f"{len(data_unsent)} recorded message(s) not sent, first "
                                          f"{describe(data_unsent[0].shape)} (seq {data_unsent[0].frame.seq})",
                                          describe(data_unsent[0].shape)))
        for _, action in unsent:
            self._done(action, now_us)
        return divergences

    def release(self, now_us: int) -> list[Send]:
        """Sends that became possible (call after client_closed: others may have waited on it)."""
        return self._release(now_us)

    # --- state ---

    @property
    def slots(self) -> dict[int, dict[str, Any]]:
        """Per recorded connection: bound, closed, frames sent so far (for status and summaries)."""
        return {cid: {"bound": s.bound, "closed": s.closed, "cursor": s.cursor, "items": len(s.items)}
                for cid, s in self._slots.items()}

    def _done(self, action: int, now_us: int) -> None:
        if not self._action_done[action]:
            self._action_done[action] = True
            self._action_time[action] = (now_us, self._action_time[action][1])

    def _match(self, pending: list[tuple[int, _Item]], got: Shape) -> tuple[int, _Item] | None:
        if self.match == "strict":
            first = pending[0]
            return first if _wanted(first[1])[0].same(got) else None
        candidates = [(i, item) for i, item in pending if _wanted(item)[0].signature == got.signature]
        if not candidates:
            return None
        return max(candidates, key=lambda entry: (similarity(_wanted(entry[1])[0].body, got.body), -entry[0]))

    def _mismatch_reply(self, slot_id: int, got: Shape, now_us: int, expected: str) -> list[Send]:
        live_id = got.request_id
        if live_id is None:
            return []
        text = _json_encode({"type": "response", "timestamp": round(now_us / 1_000_000, 3), "id": live_id,
                             "payload": {"error": {"code": "replay_mismatch",
                                                   "message": f"wsproxy replay expected {expected} here, "
                                                              f"got {describe(got)}"}}}).decode()
        return [Send(slot_id, None, now_us, None, text)]

    def _release(self, now_us: int) -> list[Send]:
        """Walk every bound connection forward as far as causality allows."""
        sends: list[Send] = []
        done = self._action_done
        for slot in self._slots.values():
            if not slot.bound or slot.closed:
                continue
            items = slot.items
            while slot.cursor < len(items):
                item = items[slot.cursor]
                if item.action is not None:  # a client frame: wait until it happened
                    if not done[item.action]:
                        break
                    slot.cursor += 1
                    continue
                if item.trigger is not None and not done[item.trigger]:
                    break
                frame = item.frame
                recorded_id = item.answers
                if recorded_id is not None and recorded_id in slot.skipped_ids and recorded_id not in slot.id_map:
                    slot.cursor += 1  # the answer to a request the client never sent
                    continue
                at = self._schedule(slot, item, now_us)
                request_id = slot.id_map.get(recorded_id) if recorded_id is not None else None
                sends.append(Send(slot.conn.conn_id, frame, at, request_id))
                slot.cursor += 1
        return sends

    def _schedule(self, slot: _Slot, item: _Item, now_us: int) -> int:
        """When to send: at once (asap), or keeping the recorded gap after whatever came before it
        on this connection and after its trigger, times the scale."""
        real, recorded = slot.clock
        ts = item.frame.ts_us
        if self.scale is None:
            at = max(now_us, real)
        else:
            at = max(now_us, real + int((ts - recorded) * self.scale))
            if item.trigger is not None:
                trigger_real, trigger_recorded = self._action_time[item.trigger]
                at = max(at, trigger_real + int((ts - trigger_recorded) * self.scale))
        slot.clock = (at, ts)
        return at


def _drop_close_replies(items: list[_Item]) -> list[_Item]:
    """A close frame answering the other side's close is the peer's job in a replay, not ours."""
    kept: list[_Item] = []
    closing = None
    for item in items:
        frame = item.frame
        if frame.kind == "close":
            if closing is not None and closing != frame.sender:
                continue  # the reply
            closing = closing or frame.sender
        kept.append(item)
    return kept


def render(send: Send, now_us: int) -> tuple[str, Any]:
    """What ``send`` puts on the wire now (``replay_match.render_frame``)."""
    return render_frame(send.frame, now_us, send.request_id, send.text)
