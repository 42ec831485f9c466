"""An AsyncAPI 3 document as a contract messages are checked against (``--spec FILE``).

``Contract(document)`` reads the operations of a document — inferred by wsproxy or
written by hand — and compiles each message's payload schema once (``core.json_schema``). A message
is found by what its envelope says: a request by its ``payloadType``, an event by its ``eventType``
and direction, a response by the request it answers (the ``reply`` of that request's operation, an
error response included). A document may describe the client (it ``send``s requests, as ``wsproxy
spec infer`` writes) or the server (it ``receive``s them): the requests' action tells which, and
the events' directions follow.

``check`` returns problems as (code, pointer, words); the checker turns them into findings.

Core module: standard library, msgspec and ``core`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from wsproxy.core.errors import UserError
from wsproxy.core.json_schema import Check, Problem, SchemaError, compile_schema, follow
from wsproxy.core.json_schema_fast import fast_decoder
from wsproxy.core.protocol import ParsedMessage

# The finding code of each kind of problem (the rule table in core.profile has them all).
SPEC_CODES = {"required": "spec-required", "type": "spec-type", "enum": "spec-enum",
              "extra": "spec-extra-field", "constraint": "spec-constraint"}
UNKNOWN_CODES = {"unknown": "spec-unknown-type", "reply": "spec-reply"}
SpecProblem = tuple[str, str, str]  # code, JSON pointer into the envelope, words
_whole = msgspec.json.Decoder().decode  # the envelope as plain JSON, for the document's schemas


class SpecError(UserError, ValueError):
    """A document that cannot be used as a contract; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Message:
    name: str  # the message's name (or its component key) for the words of a finding
    schema: Any  # its payload schema, as the document has it ($refs not expanded)
    error: bool = False  # a reply whose payload is protocol.md's {"error": {...}}


@dataclass(slots=True)
class Catalogue:
    """The messages of a document by what their envelopes say."""

    requests: dict[str, Message] = field(default_factory=dict)  # payloadType -> the request
    replies: dict[str, list[Message]] = field(default_factory=dict)  # payloadType -> its reply messages
    server_events: dict[str, Message] = field(default_factory=dict)  # eventType -> the event
    client_events: dict[str, Message] = field(default_factory=dict)

    def messages(self) -> dict[tuple[str, str], Message]:
        """Every message by (kind, name): request/reply/event/client-event and payloadType/eventType;
        replies are keyed by their own names under the request's payloadType."""
        result: dict[tuple[str, str], Message] = {}
        result.update({("request", k): m for k, m in self.requests.items()})
        for payload_type, replies in self.replies.items():
            for reply in replies:  # by role, so that a shared errorResponse and a newError compare
                role = "error" if reply.error else "response"
                key = ("reply", f"{payload_type} {role}")
                result[key if key not in result else ("reply", f"{payload_type} {role} {reply.name}")] = reply
        result.update({("event", k): m for k, m in self.server_events.items()})
        result.update({("client-event", k): m for k, m in self.client_events.items()})
        return result


def read_catalogue(document: Any, source: str = "the document") -> Catalogue:
    """The catalogue of an AsyncAPI 3 document (``SpecError`` says what is wrong with one that is not)."""
    if not isinstance(document, dict):
        raise SpecError(f"{source} is not an AsyncAPI document (an object with asyncapi: 3.x.x)")
    version = str(document.get("asyncapi", ""))
    if not version.startswith("3."):
        raise SpecError(f"{source} says asyncapi: {version or '(missing)'}; wsproxy reads AsyncAPI 3 documents")
    operations = document.get("operations") or {}
    if not isinstance(operations, dict):
        raise SpecError(f"{source}: operations must be an object")
    read: list[tuple[str, list[tuple[str, dict[str, Any]]], list[tuple[str, dict[str, Any]]]]] = []
    for operation_id, operation in operations.items():
        operation = _follow(document, operation)
        action = operation.get("action") if isinstance(operation, dict) else None
        if action not in ("send", "receive"):
            raise SpecError(f"{source}: operation {operation_id!r} has action {action!r}, not send or receive")
        reply = _follow(document, operation.get("reply") or {})
        read.append((action, _messages(document, operation), _messages(document, reply) if reply else []))
    # Whose view: requests are sent by a client document, received by a server document.
    client_view = not any(action == "receive" and _discriminator(document, m)[0] == "request"
                          for action, messages, _ in read for _, m in messages)
    catalogue = Catalogue()

    def message(name: str, body: dict[str, Any]) -> Message:
        payload = _payload(document, body)
        properties = payload.get("properties") if isinstance(payload, dict) else None
        inner = _follow(document, properties.get("payload")) if isinstance(properties, dict) else None
        error = isinstance(inner, dict) and "error" in (inner.get("properties") or {})
        return Message(body.get("name") or name, payload, error)

    for action, messages, replies in read:
        for name, body in messages:
            kind, names = _discriminator(document, body)
            if kind == "request":
                for payload_type in names:
                    catalogue.requests[payload_type] = message(name, body)
                    catalogue.replies.setdefault(payload_type, []).extend(message(n, b) for n, b in replies)
            elif kind == "event":
                from_client = (action == "send") == client_view
                events = catalogue.client_events if from_client else catalogue.server_events
                for event_type in names:
                    events[event_type] = message(name, body)
    if not catalogue.requests and not catalogue.server_events and not catalogue.client_events:
        raise SpecError(f"{source} has no operation with a request or an event message this protocol knows "
                        "(type: request with a payloadType, or type: event with an eventType)")
    return catalogue


@dataclass(frozen=True, slots=True)
class _Compiled:
    name: str
    check: Check  # the authority: every problem, with its pointer and words
    fast: Callable[[str | bytes], Any] | None  # decodes only valid messages (core.json_schema_fast)

    def valid(self, raw: str | bytes) -> bool:
        """True when the fast path vouches for ``raw``; False: ask ``check``."""
        if self.fast is None:
            return False
        try:
            self.fast(raw)
            return True
        except (msgspec.ValidationError, msgspec.DecodeError):
            return False


class Contract:
    """A document's messages, compiled: ``check`` one envelope against them."""

    def __init__(self, document: Any, source: str = "the document") -> None:
        self.source = source
        catalogue = read_catalogue(document, source)
        compiled: dict[int, _Compiled] = {}

        def compile_message(message: Message) -> _Compiled:
            known = compiled.get(id(message.schema))
            if known is None:
                try:
                    known = compiled[id(message.schema)] = _Compiled(
                        message.name, compile_schema(message.schema, document), fast_decoder(message.schema, document))
                except SchemaError as exc:
                    raise SpecError(f"{source}: message {message.name}: {exc}") from None
            return known
        self.requests = {k: compile_message(m) for k, m in catalogue.requests.items()}
        self.replies = {k: [compile_message(m) for m in ms] for k, ms in catalogue.replies.items()}
        self.server_events = {k: compile_message(m) for k, m in catalogue.server_events.items()}
        self.client_events = {k: compile_message(m) for k, m in catalogue.client_events.items()}

    def check_message(self, sender: str, parsed: ParsedMessage, answers: str | None) -> list[SpecProblem]:
        """The problems of one message the protocol's decoder read as an envelope."""
        kind = parsed.msg_type
        if kind is None:
            return []
        name = parsed.payload_type or parsed.event_type
        if any(message.valid(parsed.raw) for message in self._candidates(sender, kind, name, answers)):
            return []  # the fast path vouches for it (core.json_schema_fast)
        return self.check(sender, kind, name, _whole(parsed.raw), answers)

    def check(self, sender: str, kind: str, name: str | None, envelope: Any, answers: str | None) -> list[SpecProblem]:
        """The problems of one decoded envelope: ``kind`` request/response/event, ``name`` its
        payloadType or eventType, ``answers`` the payloadType of the request a response answers."""
        candidates = self._candidates(sender, kind, name, answers)
        if not candidates:
            if kind == "request":
                return [(UNKNOWN_CODES["unknown"], "/payloadType", f"payloadType {name!r} is not in {self.source}")]
            if kind == "event":
                return [(UNKNOWN_CODES["unknown"], "/eventType",
                         f"eventType {name!r} sent by the {sender} is not in {self.source}")]
            if answers is None or answers not in self.requests:
                return []  # an orphan response, or an unknown request: already said
            return [(UNKNOWN_CODES["reply"], "", f"the {answers} operation has no reply in {self.source}")]
        tried = []
        for message in candidates:
            problems: list[Problem] = []
            message.check(envelope, "", problems)
            if kind != "response" or all(problem.kind == "extra" for problem in problems):
                return [(SPEC_CODES[p.kind], p.pointer, f"{message.name}: {p.words}") for p in problems]
            tried.append((sum(problem.kind != "extra" for problem in problems), message, problems))
        count, closest, problems = min(tried, key=lambda entry: entry[0])
        first = next(problem for problem in problems if problem.kind != "extra")
        others = f" (and {count - 1} more)" if count > 1 else ""
        names = " or ".join(reply.name for reply in candidates)
        return [(UNKNOWN_CODES["reply"], first.pointer,
                 f"response to {answers} matches no reply ({names}); closest {closest.name}: {first.words}{others}")]

    def _candidates(self, sender: str, kind: str, name: str | None, answers: str | None) -> list[_Compiled]:
        """The document's messages an envelope may be: its request, its event in its direction, or the
        replies of the request a response answers."""
        if kind == "request":
            found = self.requests.get(name or "")
        elif kind == "event":
            found = (self.server_events if sender == "server" else self.client_events).get(name or "")
        else:
            return self.replies.get(answers, []) if answers is not None else []
        return [found] if found is not None else []


def _follow(document: Any, node: Any) -> Any:
    """``json_schema.follow``, its error said as the document's."""
    try:
        return follow(document, node)
    except SchemaError as exc:
        raise SpecError(str(exc)) from None


def _payload(document: Any, message: dict[str, Any]) -> Any:
    """A message's payload schema, out of a Multi Format Schema Object when it is one."""
    payload = _follow(document, message.get("payload", {}))
    if isinstance(payload, dict) and "schema" in payload and "schemaFormat" in payload:
        payload = _follow(document, payload["schema"])
    return payload


def _messages(document: Any, operation: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """An operation's (or reply's) messages: its own list, else every message of its channel."""
    listed = operation.get("messages")
    if listed is None:
        channel = _follow(document, operation.get("channel") or {})
        listed = list((channel.get("messages") or {}).values()) if isinstance(channel, dict) else []
    result = []
    for entry in listed:
        name = entry["$ref"].rsplit("/", 1)[-1] if isinstance(entry, dict) and "$ref" in entry else "message"
        body = _follow(document, entry)
        if isinstance(body, dict):
            result.append((name, body))
    return result


def _discriminator(document: Any, message: dict[str, Any]) -> tuple[str | None, list[str]]:
    """What envelope a message describes (``request``/``response``/``event``) and its payloadTypes or
    eventTypes, from its payload schema's ``const`` or ``enum`` (through ``$ref`` and ``allOf``)."""
    payload = _payload(document, message)
    properties: dict[str, Any] = {}
    for part in [payload, *(payload.get("allOf") or [] if isinstance(payload, dict) else [])]:
        part = _follow(document, part)
        if isinstance(part, dict) and isinstance(part.get("properties"), dict):
            properties.update({k: _follow(document, v) for k, v in part["properties"].items()})
    kinds = _values(properties.get("type"))
    kind = kinds[0] if len(kinds) == 1 else None
    key = {"request": "payloadType", "event": "eventType"}.get(kind or "")
    return kind, _values(properties.get(key)) if key else []


def _values(schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return []
    if "const" in schema:
        return [schema["const"]] if isinstance(schema["const"], str) else []
    return [v for v in schema.get("enum") or [] if isinstance(v, str)]
