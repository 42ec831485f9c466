"""The typed protocol model: envelopes as a msgspec tagged union, and ``decode()``.

``MessageDecoder.decode(kind, data, sender)`` turns one raw WebSocket message into a
``ParsedMessage``: the envelope when it is valid, its decoded payload, and the findings
that this one message shows on its own. It never raises on any input and never changes
the raw data, which is kept as given.

Core module: imports only the standard library and msgspec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, cast

import msgspec

from wsproxy.core.profile import CHAT_PROFILE, Profile
from wsproxy.core.vocab import MessageType, Sender

Timestamp = int | float


class Request(msgspec.Struct, tag_field="type", tag="request", gc=False):
    timestamp: Timestamp
    id: Annotated[str, msgspec.Meta(min_length=1)]
    payloadType: str
    payload: msgspec.Raw


class Response(msgspec.Struct, tag_field="type", tag="response", gc=False):
    timestamp: Timestamp
    id: str
    payload: msgspec.Raw = msgspec.Raw()  # empty Raw: the field was absent


class Event(msgspec.Struct, tag_field="type", tag="event", gc=False):
    timestamp: Timestamp
    eventType: str
    id: int | None = None
    payload: msgspec.Raw = msgspec.Raw()


Envelope = Request | Response | Event


class Finding(msgspec.Struct, frozen=True):
    """One rule that fired. The decoder knows only the message; the checker adds where and
    when: ``conn_id``, ``seq`` and ``ts`` (microseconds) of the frame the finding is about,
    and the request or event id involved."""

    code: str
    severity: str
    message: str
    conn_id: int | None = None
    seq: int | None = None
    ts: int | None = None
    request_id: str | None = None
    event_id: int | None = None
    pointer: str | None = None  # --spec findings: the JSON pointer (RFC 6901) into the envelope of what failed


class ParsedMessage(msgspec.Struct, gc=False):  # no cycles: skip GC tracking (hot path)
    """A raw message and what could be read from it.

    ``raw`` is the data exactly as received (``str`` for text, ``bytes`` for binary).
    ``payload`` is a request's or event's payload decoded into its Struct for known
    types, plain JSON for unknown ones, ``None`` when absent or invalid. A response's
    payload is left undecoded here, because its schema depends on the request it
    answers: ``response_payload()`` decodes it on demand.
    """

    kind: str
    raw: str | bytes
    envelope: Request | Response | Event | None = None
    payload: Any = None
    findings: tuple[Finding, ...] = ()

    @property
    def msg_type(self) -> MessageType | None:
        env = self.envelope
        return None if env is None else _TYPE_NAMES[type(env)]

    @property
    def msg_id(self) -> str | None:
        """The request/response id (events have an integer ``event_id`` instead)."""
        env = self.envelope
        return env.id if isinstance(env, (Request, Response)) else None

    @property
    def event_id(self) -> int | None:
        env = self.envelope
        return env.id if isinstance(env, Event) else None

    @property
    def payload_type(self) -> str | None:
        env = self.envelope
        return env.payloadType if isinstance(env, Request) else None

    @property
    def event_type(self) -> str | None:
        env = self.envelope
        return env.eventType if isinstance(env, Event) else None

    @property
    def payload_json(self) -> bytes | None:
        """The payload's JSON text exactly as sent (unknown fields included), or None."""
        env = self.envelope
        if env is None or not env.payload:
            return None
        return bytes(env.payload)

    def response_payload(self) -> Any:
        """A response's payload as plain JSON (``None`` when absent or not a response)."""
        env = self.envelope
        if type(env) is not Response or not env.payload:
            return None
        return _ANY_DECODER.decode(env.payload)

    @property
    def parse_error(self) -> str | None:
        """The first finding that made the message unreadable, as text."""
        for finding in self.findings:
            if finding.code in ("invalid-json", "invalid-envelope", "payload-schema"):
                return finding.message
        return None

    def extra_fields(self) -> dict[str, Any]:
        """Envelope fields the protocol does not define (kept, never an error)."""
        if self.envelope is None:
            return {}
        whole = msgspec.json.decode(self.raw)
        return {k: v for k, v in whole.items() if k not in _ENVELOPE_FIELDS}


_TYPE_NAMES: dict[type, MessageType] = {Request: "request", Response: "response", Event: "event"}
_ENVELOPE_FIELDS = frozenset({"type", "timestamp", "id", "payloadType", "eventType", "payload"})
_ENVELOPE_DECODER = msgspec.json.Decoder(Envelope)
_decode_envelope = _ENVELOPE_DECODER.decode
_ANY_DECODER = msgspec.json.Decoder()


class MessageDecoder:
    """Decodes messages under one profile. Build once, reuse: decoders are made up front.

    The hot path is one flat method with dictionary dispatch: it runs for every relayed
    frame, and each Python call level costs about as much as msgspec's own decoding.
    """

    def __init__(self, profile: Profile = CHAT_PROFILE) -> None:
        self.profile = profile
        # Dispatch tables of decode functions, one per known type; a type that is absent
        # is unknown. Requests: a payload is an object, so a schema-less type takes dict.
        self._requests = {name: msgspec.json.Decoder(schema or dict[str, Any]).decode
                          for name, schema in profile.request_schemas.items()}
        # sender -> eventType -> decode function; sender None when the direction is not known
        self._events: dict[str | None, dict[str, Any]] = {"client": {}, "server": {}, None: {}}
        for name in profile.known_event_types:
            schema = profile.event_schemas.get(name)
            if isinstance(schema, dict):  # the payload's shape depends on direction (typing)
                by_side = {side: msgspec.json.Decoder(s).decode for side, s in schema.items()}
                for side, decode in by_side.items():
                    self._events[side][name] = decode
                self._events[None][name] = _first_match(tuple(by_side.values()))
            else:
                plain_or_typed: Any = _plain if schema is None else msgspec.json.Decoder(schema).decode
                for events in self._events.values():
                    events[name] = plain_or_typed
        self._any_events = self._events[None]
        self._severity = profile.severities
        self._ms_threshold = profile.millisecond_threshold

        self.decode = self._make_decode()

    def _make_decode(self) -> Callable[..., ParsedMessage]:
        """Build ``decode``: a closure, because locals are cheaper than ``self`` lookups."""
        requests, events, any_events = self._requests, self._events, self._any_events
        ms_threshold, finding, slow_payload = self._ms_threshold, self._finding, self._slow_payload
        unreadable, validation_error = self._unreadable, msgspec.ValidationError
        decode_error = msgspec.DecodeError

        def decode(kind: str, data: str | bytes, sender: Sender | None = None) -> ParsedMessage:
            """Parse one WebSocket data message. Never raises."""
            if kind != "text":
                return ParsedMessage(kind, data, None, None, finding(
                    "binary-message", f"{kind} message of {len(data)} bytes on a JSON protocol"))
            try:
                envelope = _decode_envelope(data)
            except validation_error as exc:
                return unreadable(data, str(exc))
            except (decode_error, UnicodeError, TypeError, ValueError, OverflowError) as exc:
                return ParsedMessage(kind, data, None, None, finding("invalid-json", f"not JSON: {exc}"))
            findings: tuple[Finding, ...] = ()
            if envelope.timestamp > ms_threshold:
                findings = finding("timestamp-unit", f"timestamp {envelope.timestamp} looks like "
                                   f"milliseconds (above {ms_threshold:g})")
            if type(envelope) is Response:
                return ParsedMessage(kind, data, envelope, None, findings)
            if type(envelope) is Request:
                payload_decode = requests.get(envelope.payloadType)
            else:
                envelope = cast(Event, envelope)
                payload_decode = events.get(sender, any_events).get(envelope.eventType)
            raw = envelope.payload
            error = None
            if payload_decode is not None and raw:
                try:
                    return ParsedMessage(kind, data, envelope, payload_decode(raw), findings)
                except decode_error as exc:
                    error = str(exc)  # a string: keeping exc would make a GC cycle
            # Off the hot path: a payload that is missing, invalid or of an unknown type.
            return slow_payload(data, envelope, payload_decode, error, findings)

        return decode

    def _slow_payload(self, data: str | bytes, envelope: Request | Event, payload_decode: Any,
                      error: str | None, findings: tuple[Finding, ...]) -> ParsedMessage:
        raw = envelope.payload
        if isinstance(envelope, Request):  # off the hot path: isinstance narrows both branches
            what = f"request {envelope.id!r} ({envelope.payloadType})"
            if not raw or memoryview(raw)[0] != 0x7B:  # 0x7B is '{': a request payload is an object
                return ParsedMessage("text", data, envelope, _plain(raw), findings + self._finding(
                    "invalid-envelope", f"{what}: payload must be an object"))
            if payload_decode is None:
                return ParsedMessage("text", data, envelope, _plain(raw), findings + self._finding(
                    "unknown-payload-type", f"{what}: unknown payloadType {envelope.payloadType!r}"))
        else:
            what = f"{envelope.eventType} event" + ("" if envelope.id is None else f" {envelope.id}")
            if payload_decode is None:
                return ParsedMessage("text", data, envelope, _plain(raw), findings + self._finding(
                    "unknown-event-type", f"{what}: unknown eventType {envelope.eventType!r}"))
            if not raw:
                if payload_decode is _plain:  # known without a schema: a payload is optional
                    return ParsedMessage("text", data, envelope, None, findings)
                return ParsedMessage("text", data, envelope, None, findings + self._finding(
                    "payload-schema", f"{what}: payload missing"))
        return ParsedMessage("text", data, envelope, _plain(raw), findings + self._finding(
            "payload-schema", f"{what}: {error}"))

    def _unreadable(self, data: str | bytes, error: str) -> ParsedMessage:
        """Tell invalid JSON from a JSON object that is not a valid envelope."""
        try:
            value = _ANY_DECODER.decode(data)
        except (msgspec.DecodeError, UnicodeError, TypeError, ValueError, OverflowError) as exc:
            return ParsedMessage("text", data, findings=self._finding("invalid-json", f"not JSON: {exc}"))
        if not isinstance(value, dict):
            return ParsedMessage("text", data, findings=self._finding(
                "invalid-json", f"JSON {type(value).__name__} where an object was expected"))
        return ParsedMessage("text", data, payload=value.get("payload"),
                             findings=self._finding("invalid-envelope", f"invalid envelope: {error}"))

    def _finding(self, code: str, message: str) -> tuple[Finding, ...]:
        severity = self._severity.get(code, "off")
        if severity == "off":
            return ()
        return (Finding(code, severity, message),)


def _first_match(decoders: tuple[Callable[[Any], Any], ...]) -> Callable[[Any], Any]:
    """A decode function that returns the first of several shapes that fits."""
    def decode(raw: msgspec.Raw) -> Any:
        error = ""
        for decoder in decoders:
            try:
                return decoder(raw)
            except msgspec.DecodeError as exc:
                error = error or str(exc)
        raise msgspec.ValidationError(error)
    return decode


def _plain(raw: msgspec.Raw) -> Any:
    if not raw:
        return None
    try:
        return _ANY_DECODER.decode(raw)
    except msgspec.DecodeError:  # cannot happen for a Raw cut from valid JSON; be safe
        return None


DEFAULT_DECODER = MessageDecoder()


# decode(kind, data, sender=None) -> ParsedMessage: one message under the built-in chat
# profile; never raises. A bound method rather than a wrapper: it is on the hot path.
decode = DEFAULT_DECODER.decode
