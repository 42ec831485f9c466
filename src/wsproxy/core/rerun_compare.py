"""Comparing what a server sent by meaning: what `wsproxy rerun` and `wsproxy diff` report.

Per connection, every recorded server message is paired with a live one — a response by its request
id, anything else in order, out of order within a window — and the pairs are compared field by field,
ignoring request ids, timestamps (only their unit is compared), paths the user names (``--ignore``)
and values the server generates (``Bindings``: ``messageId`` 125 recorded, 7 live). Pairing learns
those bindings as live messages arrive, so the rerun can send 7 where the recording sent 125.

Core module: standard library and msgspec only.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

import msgspec

from wsproxy.core.recorded import RecordedConnection, RecordedFrame, RecordedSession
from wsproxy.core.vocab import DifferenceKind

Path = tuple[str | int, ...]  # "*" in a path matches every list element
UNBOUND = object()  # Bindings.live: the server has not issued a value for this one yet


class PathError(ValueError):
    """A JSON path that cannot be read."""


def parse_path(text: str) -> Path:
    """``payload.attachments[*].url`` (or with ``$.`` in front) as ("payload", "attachments", "*", "url")."""
    body = text.strip()
    body = body[2:] if body.startswith("$.") else body
    parts: list[str | int] = []
    for word in body.replace("[", ".[").split("."):
        if not word:
            continue
        if word.startswith("["):
            inner = word[1:-1] if word.endswith("]") else None
            if inner is None or not (inner == "*" or inner.isdigit()):
                raise PathError(f"{text!r}: a list index is [N] or [*]")
            parts.append("*" if inner == "*" else int(inner))
        else:
            parts.append(word)
    if not parts:
        raise PathError(f"{text!r} names no field (write e.g. payload.messageId)")
    return tuple(parts)


def show_path(path: Path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) or p == "*" else f".{p}" for p in path).lstrip(".")


def _matches(pattern: Path, path: Path) -> bool:
    return len(pattern) == len(path) and all(p == "*" or p == q for p, q in zip(pattern, path, strict=True))


@dataclass(frozen=True, slots=True)
class Rebind:
    """A field whose value the server generates: ``scope`` groups values that are the same thing
    (a messageId in a response and in an event); ``per_user`` keeps them apart per connection
    user (event ids count per user)."""

    path: Path
    scope: str
    per_user: bool = False
    envelope: str | None = None  # only in this envelope type


# The chat protocol's generated values (protocol.md): message ids, and event ids per user.
CHAT_REBINDS = (
    Rebind(("payload", "messageId"), "messageId"),
    Rebind(("id",), "eventId", per_user=True, envelope="event"),
    Rebind(("payload", "lastEventId"), "eventId", per_user=True),
)
CHAT_IGNORES = (("payload", "error", "message"),)  # error texts name ids and change with wording


@dataclass(slots=True)
class Rules:
    rebinds: tuple[Rebind, ...] = CHAT_REBINDS
    ignores: tuple[Path, ...] = CHAT_IGNORES
    window: int = 16  # how far out of order a message may arrive and still pair


@dataclass(slots=True)
class Bindings:
    """Recorded value -> live value, per scope (and user)."""

    values: dict[tuple[str, str, Any], Any] = field(default_factory=dict)

    def live(self, scope: str, user: str, recorded: Any) -> Any:
        return self.values.get((scope, user, _key(recorded)), UNBOUND)

    def learn(self, scope: str, user: str, recorded: Any, live: Any) -> None:
        self.values.setdefault((scope, user, _key(recorded)), live)


def _key(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)


@dataclass(frozen=True, slots=True)
class Difference:
    """One thing that came back differently; ``expected``/``got`` are JSON values."""

    conn_id: int  # the recorded connection
    seq: int | None  # the recorded frame (None: a live frame with no recorded counterpart)
    kind: DifferenceKind
    message: str
    path: str | None = None
    expected: Any = None
    got: Any = None
    copy: int | None = None  # which copy of the session (--copies), when there are several

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class Meaning:
    """A server message as compared: its signature pairs it, its body is compared."""

    signature: tuple
    body: Any
    envelope: str | None = None
    request_id: str | None = None
    unit: str | None = None  # of its timestamp: s, ms or us


def timestamp_unit(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return "s" if value < 1e11 else "ms" if value < 1e14 else "us"


def meaning(kind: str, data: str | bytes | None) -> Meaning:
    if kind != "text":
        return Meaning((kind,), data)
    try:
        value = msgspec.json.decode(data or "")
    except msgspec.DecodeError:
        return Meaning(("invalid-json",), data)
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return Meaning(("json",), value)
    envelope = value["type"]
    body = dict(value)
    unit = timestamp_unit(body.pop("timestamp", None))
    request_id = None
    if envelope in ("request", "response"):
        raw_id = body.pop("id", None)
        request_id = raw_id if isinstance(raw_id, str) else None if raw_id is None else repr(raw_id)
    if envelope == "response":
        payload = body.get("payload")
        outcome = "error" if isinstance(payload, dict) and "error" in payload else "ok"
        return Meaning((envelope, outcome), body, envelope, request_id, unit)
    subtype = body.get("payloadType") if envelope == "request" else body.get("eventType")
    return Meaning((envelope, subtype if isinstance(subtype, str) else None), body, envelope, request_id, unit)


def describe(m: Meaning) -> str:
    return " ".join(str(part) for part in m.signature if part is not None)


@dataclass(slots=True)
class _FieldChange:
    path: Path
    kind: DifferenceKind
    expected: Any
    got: Any


class _Walk:
    """Field-by-field comparison of one pair under the rules; learns bindings when asked to."""

    def __init__(self, rules: Rules, bindings: Bindings, user: str, envelope: str | None, learn: bool) -> None:
        self.rules, self.bindings, self.user, self.envelope, self.learn = rules, bindings, user, envelope, learn
        self.changes: list[_FieldChange] = []

    def compare(self, path: Path, expected: Any, got: Any) -> None:
        if self._ignored(path):
            return
        rebind = next((r for r in self.rules.rebinds if _matches(r.path, path)
                       and (r.envelope is None or r.envelope == self.envelope)), None)
        if rebind is not None and type(expected) is type(got) and not isinstance(expected, (dict, list)):
            user = self.user if rebind.per_user else ""
            bound = self.bindings.live(rebind.scope, user, expected)
            if bound is UNBOUND:
                if self.learn:
                    self.bindings.learn(rebind.scope, user, expected, got)
                return
            if bound != got:
                self.changes.append(_FieldChange(path, "changed", bound, got))
            return
        if isinstance(expected, dict) and isinstance(got, dict):
            for name, value in expected.items():
                if name in got:
                    self.compare((*path, name), value, got[name])
                elif not self._ignored((*path, name)):
                    self.changes.append(_FieldChange((*path, name), "missing-field", value, None))
            for name in got.keys() - expected.keys():
                if not self._ignored((*path, name)):
                    self.changes.append(_FieldChange((*path, name), "unexpected-field", None, got[name]))
        elif isinstance(expected, list) and isinstance(got, list):
            for index, (a, b) in enumerate(zip(expected, got, strict=False)):
                self.compare((*path, index), a, b)
            if len(expected) != len(got):
                self.changes.append(_FieldChange(path, "changed", expected, got))
        elif _type_name(expected) != _type_name(got):
            self.changes.append(_FieldChange(path, "wrong-type", expected, got))
        elif expected != got:
            self.changes.append(_FieldChange(path, "changed", expected, got))

    def _ignored(self, path: Path) -> bool:
        return any(_matches(pattern, path) for pattern in self.rules.ignores)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", dict: "object", list: "array", type(None): "null", bytes: "binary"}.get(type(value), "?")


@dataclass(slots=True)
class _Expected:
    frame: RecordedFrame
    meaning: Meaning
    live: int | None = None  # index of the live message paired with it


class ConnectionComparison:
    """One recorded connection's server messages against what a live server sends on its rerun."""

    def __init__(self, conn: RecordedConnection, rules: Rules, bindings: Bindings) -> None:
        self.conn, self.rules, self.bindings = conn, rules, bindings
        self.user = conn.query  # who the connection is, for per-user bindings
        self.expected = [_Expected(f, meaning(f.kind, f.text if f.kind == "text" else f.data))
                         for f in conn.frames if f.sender == "server" and f.kind in ("text", "binary")]
        self.received: list[tuple[int | None, Meaning]] = []  # (live seq, meaning), in arrival order
        self._paired_live: dict[int, int] = {}  # live index -> expected index
        # What is still open, kept sorted so that a long connection costs O(log n) per message, not O(n):
        self._waiting = sorted(e.frame.seq for e in self.expected)  # seqs nothing paired with and nobody gave up
        self._open_events: list[int] = []  # unpaired non-responses, by expected index
        self._open_responses: dict[str | None, list[int]] = {}  # request id -> unpaired responses, by index
        for i, e in enumerate(self.expected):
            if e.meaning.envelope == "response":
                self._open_responses.setdefault(e.meaning.request_id, []).append(i)
            else:
                self._open_events.append(i)

    def outstanding(self, before: int | None) -> int:
        """Recorded server messages before frame ``before`` (None: all) with no live counterpart yet."""
        return len(self._waiting) if before is None else bisect_left(self._waiting, before)

    def give_up(self, before: int | None) -> None:
        """Stop waiting for those (they are reported missing unless they still come)."""
        cut = len(self._waiting) if before is None else bisect_left(self._waiting, before)
        del self._waiting[:cut]

    def receive(self, kind: str, data: str | bytes, live_seq: int | None = None) -> None:
        """A live server message arrived: pair it, and learn the values it binds."""
        got = meaning(kind, data)
        index = len(self.received)
        self.received.append((live_seq, got))
        chosen = self._counterpart(got)
        if chosen is None:
            return
        expected = self.expected[chosen]
        expected.live = index
        self._paired_live[index] = chosen
        _remove_sorted(self._waiting, expected.frame.seq)
        if expected.meaning.envelope == "response":
            _remove_sorted(self._open_responses[expected.meaning.request_id], chosen)
        else:
            _remove_sorted(self._open_events, chosen)
        walk = _Walk(self.rules, self.bindings, self.user, got.envelope, learn=True)
        walk.compare((), expected.meaning.body, got.body)

    def _counterpart(self, got: Meaning) -> int | None:
        if got.envelope == "response" and got.request_id is not None:
            waiting = self._open_responses.get(got.request_id)
            return waiting[0] if waiting else None
        same = [i for i in self._open_events[:self.rules.window] if self.expected[i].meaning.signature == got.signature]
        for i in same:  # the first that is equal under the bindings so far; else the first of its kind
            walk = _Walk(self.rules, self.bindings, self.user, got.envelope, learn=False)
            walk.compare((), self.expected[i].meaning.body, got.body)
            if not walk.changes:
                return i
        return same[0] if same else None

    def differences(self) -> list[Difference]:
        """Everything that differs, once the connection is over (close and handshake aside)."""
        out: list[Difference] = []
        cid = self.conn.conn_id
        for e in self.expected:
            rec = e.meaning
            if e.live is None:
                out.append(Difference(cid, e.frame.seq, "missing", f"no {describe(rec)} came"
                                      + (f" for request {rec.request_id}" if rec.request_id else ""),
                                      expected=_json(rec.body)))
                continue
            _, got = self.received[e.live]
            walk = _Walk(self.rules, self.bindings, self.user, got.envelope, learn=False)
            walk.compare((), rec.body, got.body)
            for change in walk.changes:
                where = show_path(change.path) or "message"
                out.append(Difference(cid, e.frame.seq, change.kind, f"{describe(rec)}: {where} "
                                      f"{change.kind.replace('-', ' ')}", where,
                                      _json(change.expected), _json(change.got)))
            if rec.unit is not None and got.unit != rec.unit:
                out.append(Difference(cid, e.frame.seq, "changed", f"{describe(rec)}: timestamp in "
                                      f"{got.unit or 'nothing'}, recorded in {rec.unit}", "timestamp",
                                      rec.unit, got.unit))
        for index, (_, got) in enumerate(self.received):
            if index not in self._paired_live:
                out.append(Difference(cid, None, "unexpected", f"{describe(got)} that the recording does not have"
                                      + (f" (request {got.request_id})" if got.request_id else ""), got=_json(got.body)))
        return out


def _remove_sorted(values: list[int], value: int) -> None:
    at = bisect_left(values, value)
    if at < len(values) and values[at] == value:
        del values[at]


def close_difference(conn: RecordedConnection, live_code: int | None, live_by: str | None) -> Difference | None:
    """The connection ended differently: another close code, or the other side closed it."""
    recorded_code = conn.close_code if conn.closed_by == "server" else None
    live_code = live_code if live_by == "server" else None
    if recorded_code == live_code:
        return None
    recorded = f"the server closed with {recorded_code}" if recorded_code is not None else "the client closed"
    got = f"the server closed with {live_code}" if live_code is not None else "the client closed"
    return Difference(conn.conn_id, None, "close", f"{recorded} in the recording; {got} now",
                      "close", recorded_code, live_code)


def handshake_difference(conn: RecordedConnection, live_status: int | None, error: str | None) -> Difference | None:
    """The handshake went otherwise: refused where it succeeded, or the other way round."""
    recorded = conn.status if conn.status is not None else 101
    if (live_status or 0) == recorded:
        return None
    got = f"{live_status}" if live_status else (error or "no answer")
    return Difference(conn.conn_id, None, "handshake", f"handshake {conn.path}?{conn.query}: recorded {recorded}, "
                      f"now {got}", "status", recorded, live_status)


def compare_sessions(recorded: RecordedSession, other: RecordedSession, rules: Rules | None = None) -> list[Difference]:
    """Every difference between two sessions' server sides, connections paired in the order they opened."""
    rules = rules or Rules()
    bindings = Bindings()
    out: list[Difference] = []
    for conn, live in zip(recorded.connections, other.connections, strict=False):
        refused = handshake_difference(conn, live.status, live.close_reason)
        if refused is not None:
            out.append(refused)
            continue
        comparison = ConnectionComparison(conn, rules, bindings)
        for frame in live.frames:
            if frame.sender == "server" and frame.kind in ("text", "binary"):
                data = frame.text if frame.kind == "text" else frame.data
                comparison.receive(frame.kind, data if data is not None else b"", frame.seq)
        out += comparison.differences()
        if conn.status == 101:
            closed = close_difference(conn, live.close_code, live.closed_by)
            out += [closed] if closed else []
    for conn in recorded.connections[len(other.connections):]:
        out.append(Difference(conn.conn_id, None, "missing", f"connection {conn.path}?{conn.query} was not opened"))
    for live in other.connections[len(recorded.connections):]:
        out.append(Difference(0, None, "unexpected", f"an extra connection {live.path}?{live.query} "
                              f"(connection {live.conn_id})"))
    return out


def finding_differences(recorded: dict[str, int], live: dict[str, int]) -> list[Difference]:
    """Findings (checker codes) the rerun has more of than the recording."""
    return [Difference(0, None, "finding", f"{code}: {count} now, {recorded.get(code, 0)} in the recording",
                       code, recorded.get(code, 0), count)
            for code, count in sorted(live.items()) if count > recorded.get(code, 0)]


def _json(value: Any) -> Any:
    """A JSON-able form of a compared value (binary as its length)."""
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value
