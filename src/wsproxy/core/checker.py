"""The protocol checker: a pure state machine from observed traffic to findings.

Feed it what happened — ``open``, ``message``, ``close`` of a connection, and clock ``tick``s
— and it returns the findings each observation reveals. It does no I/O and reads no clock:
every time is the microsecond timestamp you pass, so the live checker in ``record`` and
the offline ``wsproxy check`` give the same findings for the same recorded traffic, and
tests drive timeouts without sleeping.

Everything that decides pairing, event-id order and catch-up lives in this file; which
rules exist, how severe they are and which event types are stateful comes from the
profile. Rules fire per connection (see protocol.md, "Rules the checker enforces").

Core module: imports only the standard library and msgspec.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec

from wsproxy.core.payloads import ErrorResponse, SubscribeResponse
from wsproxy.core.profile import CHAT_PROFILE, Profile
from wsproxy.core.protocol import Event, Finding, ParsedMessage, Request, Response

Findings = list[Finding]
_US = 1_000_000


class _Request(msgspec.Struct, gc=False):
    """A request waiting for its response (a Struct: built per request, 2.7x faster than a dataclass)."""

    conn_id: int
    seq: int
    ts: int
    request_id: str
    payload_type: str
    last_event_id: int | None = None  # subscribe: the id the client says it has seen
    answered: bool = False
    timed_out: bool = False


@dataclass(slots=True)
class _Catchup:
    """What a subscribe response announced, and the catch-up events seen so far."""

    request: _Request
    response_seq: int
    response_ts: int
    last_event_id: int  # the response's lastEventId: the newest id of the stream
    count: int
    ids: list[int] = field(default_factory=list)

    @property
    def first_expected(self) -> int:
        since = self.request.last_event_id
        return since + 1 if since is not None else self.last_event_id - self.count + 1


@dataclass(slots=True)
class _Conn:
    conn_id: int
    pending: dict[str, list[_Request]] = field(default_factory=dict)  # request id -> waiting, oldest first
    answered_at: dict[str, int] = field(default_factory=dict)  # request id -> seq of its first response
    request_seqs: dict[str, int] = field(default_factory=dict)  # request id -> seq of its first use
    remembered: deque[str] = field(default_factory=deque)  # the keys of request_seqs, oldest first
    subscribed: bool = False
    last_event_id: int | None = None  # the baseline for the next stateful event id
    catchup: _Catchup | None = None
    last_timestamp: dict[str, float] = field(default_factory=dict)  # sender -> previous live timestamp


class Checker:
    """Feed observations in order; each call returns the findings it revealed."""

    def __init__(self, profile: Profile = CHAT_PROFILE) -> None:
        self.profile = profile
        self._severity = profile.severities
        self._stateful = profile.stateful_events
        self._ephemeral = profile.ephemeral_events
        self._timeout_us = int(profile.response_timeout * _US)
        self._id_memory = profile.request_id_memory
        self._ms_threshold = profile.millisecond_threshold
        self._tolerance = profile.backwards_tolerance
        self._subscribe = profile.subscribe_payload_type
        self._response_decoders = {name: msgspec.json.Decoder(schema).decode
                                   for name, schema in profile.response_schemas.items() if schema is not None}
        self._error_decoder = msgspec.json.Decoder(ErrorResponse).decode
        self._spec = profile.spec  # --spec FILE: every message checked against an AsyncAPI document too
        self._conns: dict[int, _Conn] = {}
        self._deadlines: deque[_Request] = deque()  # requests in arrival order, for timeouts

    # --- observations ---

    def open(self, conn_id: int, ts: int) -> Findings:
        self._conns[conn_id] = _Conn(conn_id)
        return self.tick(ts)

    def message(self, conn_id: int, seq: int, ts: int, sender: str, parsed: ParsedMessage) -> Findings:
        """One data message (text or binary) as decoded by the profile's MessageDecoder."""
        deadlines = self._deadlines
        while deadlines and deadlines[0].answered:  # keep the timeout queue short
            deadlines.popleft()
        findings: Findings = self.tick(ts) if deadlines and deadlines[0].ts + self._timeout_us < ts else []
        conn = self._conns.get(conn_id)
        if conn is None:  # a message on a connection we were not told about: start tracking it
            conn = self._conns[conn_id] = _Conn(conn_id)
        env = parsed.envelope
        if parsed.findings:
            request_id = env.id if type(env) is Request or type(env) is Response else None
            event_id = env.id if type(env) is Event else None
            findings.extend(msgspec.structs.replace(f, conn_id=conn_id, seq=seq, ts=ts, request_id=request_id,
                                                    event_id=event_id) for f in parsed.findings)
        if env is None:
            return findings
        catchup_event = False
        answers = None
        if type(env) is Request:
            self._request(conn, seq, ts, sender, env, parsed, findings)
        elif type(env) is Response:
            answers = self._response(conn, seq, ts, sender, env, parsed, findings)
        else:
            catchup_event = self._event(conn, seq, ts, sender, cast(Event, env), findings)
        if not catchup_event:
            self._timestamp(conn, seq, ts, sender, env, findings)
        if self._spec is not None:
            self._against_spec(conn_id, seq, ts, sender, parsed, answers, findings)
        return findings

    def close(self, conn_id: int, ts: int) -> Findings:
        """The connection ended (either side, cleanly or not)."""
        findings = self.tick(ts)
        conn = self._conns.pop(conn_id, None)
        if conn is None:
            return findings
        if conn.catchup is not None:
            self._end_catchup(conn, "the connection closed", findings)
        for queue in conn.pending.values():
            for request in queue:
                request.answered = True  # leaves the timeout queue
                if not request.timed_out:
                    self._add(findings, "unanswered-request", conn_id, request.seq, request.ts,
                              f"{_describe(request)} got no response before the connection closed "
                              f"({(ts - request.ts) / _US:.3g} s later)", request_id=request.request_id)
        return findings

    def tick(self, now: int) -> Findings:
        """The clock moved to ``now`` (microseconds): report requests past the response timeout."""
        findings: Findings = []
        deadlines, timeout = self._deadlines, self._timeout_us
        while deadlines and deadlines[0].ts + timeout < now:
            request = deadlines.popleft()
            if not request.answered:
                request.timed_out = True
                self._add(findings, "unanswered-request", request.conn_id, request.seq, request.ts,
                          f"{_describe(request)} got no response within {self.profile.response_timeout:g} s",
                          request_id=request.request_id)
        return findings

    def finish(self, now: int) -> Findings:
        """The end of the traffic: every connection still open counts as closed at ``now``."""
        findings: Findings = []
        for conn_id in list(self._conns):
            findings.extend(self.close(conn_id, now))
        return findings

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    # --- questions about a connection, asked before a person sends on it (hands on the wire) ---

    def preview(self, conn_id: int, seq: int, ts: int, sender: str, parsed: ParsedMessage) -> Findings:
        """The findings ``message`` would give for this message now, without changing what the checker
        knows (a copy of the connection's state is asked; timeouts of other connections are not)."""
        trial = Checker(self.profile)
        known = self._conns.get(conn_id)
        if known is not None:
            trial._conns[conn_id] = copy.deepcopy(known)
        return trial.message(conn_id, seq, ts, sender, parsed)

    def request_ids(self, conn_id: int) -> set[str]:
        """The request ids this connection has used (as far as ``request_id_memory`` remembers) or awaits."""
        conn = self._conns.get(conn_id)
        return set() if conn is None else set(conn.request_seqs) | set(conn.pending)

    def pending_requests(self, conn_id: int) -> list[tuple[str, str]]:
        """Requests of this connection still waiting for their response: (id, payloadType), oldest first."""
        conn = self._conns.get(conn_id)
        if conn is None:
            return []
        waiting = [request for requests in conn.pending.values() for request in requests if not request.answered]
        return [(request.request_id, request.payload_type) for request in sorted(waiting, key=lambda r: r.seq)]

    def last_event_id(self, conn_id: int) -> int | None:
        """The id of the last stateful event this connection received (its baseline), if any."""
        conn = self._conns.get(conn_id)
        return None if conn is None else conn.last_event_id

    # --- requests and responses ---

    def _request(self, conn: _Conn, seq: int, ts: int, sender: str, env: Request, parsed: ParsedMessage,
                 findings: Findings) -> None:
        if sender != "client":
            self._add(findings, "wrong-direction", conn.conn_id, seq, ts,
                      f"the server sent request {env.id!r} ({env.payloadType}); requests go client → server",
                      request_id=env.id)
            return
        request = _Request(conn.conn_id, seq, ts, env.id, env.payloadType)
        first = conn.request_seqs.get(env.id)
        if first is not None:
            self._add(findings, "duplicate-request-id", conn.conn_id, seq, ts,
                      f"request id {env.id!r} ({env.payloadType}, seq {seq}) was already used at seq {first}",
                      request_id=env.id)
        else:
            conn.request_seqs[env.id] = seq
            remembered = conn.remembered
            remembered.append(env.id)
            if len(remembered) > self._id_memory:  # forget the oldest id: memory stays bounded
                oldest = remembered.popleft()
                del conn.request_seqs[oldest]
                conn.answered_at.pop(oldest, None)
        if env.payloadType == self._subscribe:
            conn.subscribed = True
            since = getattr(parsed.payload, "lastEventId", None)
            request.last_event_id = since if isinstance(since, int) and not isinstance(since, bool) else None
            conn.last_event_id = request.last_event_id  # "a subscribe without lastEventId sets no baseline"
            conn.catchup = None
        queue = conn.pending.get(env.id)
        if queue is None:
            conn.pending[env.id] = [request]  # a list: a deque per request cost 760 bytes
        else:
            queue.append(request)
        self._deadlines.append(request)

    def _response(self, conn: _Conn, seq: int, ts: int, sender: str, env: Response, parsed: ParsedMessage,
                  findings: Findings) -> str | None:
        """Pair a response with its request; returns the request's payloadType (None: no request)."""
        if sender != "server":
            self._add(findings, "wrong-direction", conn.conn_id, seq, ts,
                      f"the client sent response {env.id!r}; responses go server → client", request_id=env.id)
            return None
        queue = conn.pending.get(env.id)
        if not queue:
            first = conn.answered_at.get(env.id)
            if first is not None:
                self._add(findings, "duplicate-response", conn.conn_id, seq, ts,
                          f"second response to request {env.id!r} (seq {conn.request_seqs.get(env.id)}): "
                          f"it was answered at seq {first}", request_id=env.id)
            else:
                self._add(findings, "orphan-response", conn.conn_id, seq, ts,
                          f"response {env.id!r} (seq {seq}) matches no request on this connection",
                          request_id=env.id)
            return None
        request = queue.pop(0)
        if not queue:
            del conn.pending[env.id]
        request.answered = True
        if env.id in conn.request_seqs:  # not for an id already forgotten (request_id_memory)
            # keyed by the request's own string, which request_seqs holds already: not a second copy
            conn.answered_at.setdefault(request.request_id, seq)
        payload = self._response_payload(request, seq, ts, env, findings)
        if request.payload_type == self._subscribe and conn.catchup is None and type(payload) is SubscribeResponse:
            conn.catchup = _Catchup(request, seq, ts, payload.lastEventId, payload.count)
        return request.payload_type

    def _response_payload(self, request: _Request, seq: int, ts: int, env: Response, findings: Findings) -> Any:
        """Check a response's payload against the schema of the request it answers."""
        decode = self._response_decoders.get(request.payload_type)
        if decode is None:
            return None
        raw: msgspec.Raw | bytes = env.payload
        if not raw:
            raw = b"{}"  # absent: fine for types whose response is "{} or absent"
        try:
            return decode(raw)
        except msgspec.DecodeError as exc:
            try:
                return self._error_decoder(raw)  # an error response answers any request
            except msgspec.DecodeError:
                pass
            problem = "payload missing" if not env.payload else str(exc)
            self._add(findings, "payload-schema", request.conn_id, seq, ts,
                      f"response to {_describe(request)}: {problem}", request_id=request.request_id)
            return None

    # --- events ---

    def _event(self, conn: _Conn, seq: int, ts: int, sender: str, env: Event, findings: Findings) -> bool:
        """Check one event; returns whether it is a catch-up event."""
        event_type, event_id = env.eventType, env.id
        if event_type in self._ephemeral:
            if event_id is not None:
                self._add(findings, "ephemeral-event-with-id", conn.conn_id, seq, ts,
                          f"{event_type} event (seq {seq}) carries id {event_id}; {event_type} events have none",
                          event_id=event_id)
            return False
        if event_type not in self._stateful or sender != "server":
            return False
        if not conn.subscribed:
            self._add(findings, "event-before-subscribe", conn.conn_id, seq, ts,
                      f"{event_type} event {'' if event_id is None else event_id} (seq {seq}) arrived "
                      f"before the client subscribed", event_id=event_id)
        if event_id is None:
            self._add(findings, "stateful-event-without-id", conn.conn_id, seq, ts,
                      f"{event_type} event (seq {seq}) has no id; stateful events must carry one")
            return False
        catchup = conn.catchup
        in_catchup = False
        if catchup is not None:
            if event_id <= catchup.last_event_id:
                catchup.ids.append(event_id)
                in_catchup = True
            else:
                self._end_catchup(conn, f"the first live event (seq {seq}, id {event_id})", findings)
        previous = conn.last_event_id
        if previous is not None:
            if event_id <= previous:
                self._add(findings, "event-id-not-increasing", conn.conn_id, seq, ts,
                          f"{event_type} event id {event_id} (seq {seq}) is not greater than the previous "
                          f"id {previous}", event_id=event_id)
                return in_catchup
            if event_id != previous + 1:
                missing = f"id {previous + 1}" if event_id == previous + 2 else f"ids {previous + 1}..{event_id - 1}"
                self._add(findings, "event-id-gap", conn.conn_id, seq, ts,
                          f"{event_type} event id {event_id} (seq {seq}) follows id {previous}: {missing} "
                          f"missing", event_id=event_id)
        conn.last_event_id = event_id
        return in_catchup

    def _end_catchup(self, conn: _Conn, before: str, findings: Findings) -> None:
        catchup, conn.catchup = conn.catchup, None
        assert catchup is not None
        ids, first, last = catchup.ids, catchup.first_expected, catchup.last_event_id
        if (len(ids) == catchup.count and all(first <= i <= last for i in ids)
                and (catchup.count == 0 or ids[-1] == last)):
            return
        announced = f"{catchup.count} event(s)" + (f" (ids {first}..{last})" if catchup.count else "")
        got = f"{len(ids)}" + (f" (ids {_ranges(ids)})" if ids else "")
        request = catchup.request
        self._add(findings, "subscribe-catchup-mismatch", conn.conn_id, catchup.response_seq, catchup.response_ts,
                  f"subscribe {request.request_id!r} (seq {request.seq}) announced {announced}, "
                  f"but {got} arrived before {before}", request_id=request.request_id)

    # --- timestamps ---

    def _timestamp(self, conn: _Conn, seq: int, ts: int, sender: str, env: Any, findings: Findings) -> None:
        stamp = env.timestamp
        if stamp > self._ms_threshold:
            return  # already timestamp-unit; comparing milliseconds with seconds says nothing more
        previous = conn.last_timestamp.get(sender)
        conn.last_timestamp[sender] = stamp
        if previous is not None and stamp < previous - self._tolerance:
            self._add(findings, "timestamp-backwards", conn.conn_id, seq, ts,
                      f"{sender} timestamp {stamp} (seq {seq}) is {previous - stamp:.3g} s earlier than the "
                      f"previous one ({previous})")

    # --- the AsyncAPI document (--spec) ---

    def _against_spec(self, conn_id: int, seq: int, ts: int, sender: str, parsed: ParsedMessage,
                      answers: str | None, findings: Findings) -> None:
        assert self._spec is not None
        for code, pointer, words in self._spec.check_message(sender, parsed, answers):
            severity = self._severity.get(code, "off")
            if severity != "off":
                findings.append(Finding(code, severity, f"{words} (at {pointer or '/'})", conn_id, seq, ts,
                                        parsed.msg_id, parsed.event_id, pointer))

    # --- findings ---

    def _add(self, findings: Findings, code: str, conn_id: int, seq: int | None, ts: int | None, message: str,
             request_id: str | None = None, event_id: int | None = None) -> None:
        severity = self._severity.get(code, "off")
        if severity != "off":
            findings.append(Finding(code, severity, message, conn_id, seq, ts, request_id, event_id))


def _describe(request: _Request) -> str:
    return f"request {request.request_id!r} ({request.payload_type}, seq {request.seq})"


def _ranges(ids: list[int]) -> str:
    """[2, 3, 4, 7] -> "2..4, 7": short, and still names every id."""
    parts: list[str] = []
    start = prev = ids[0]
    for value in ids[1:]:
        if value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}..{prev}")
        start = prev = value
    parts.append(str(start) if start == prev else f"{start}..{prev}")
    return ", ".join(parts)
