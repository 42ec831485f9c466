"""An AsyncAPI 3.0 document inferred from recorded traffic (``wsproxy spec infer``).

``Inference.add(session)`` reads every text message of every connection: envelopes by kind and
name (a request's ``payloadType``, an event's ``eventType`` and who sent it, a response by the
request it answers, an error response apart), the whole envelope merged into one ``Shape`` per
message, the channel's path and query parameters, which events carried ids and whether ids rose by
one per user. ``document()`` writes it down: the application described is the **client** — it
``send``s requests (each with its ``reply``) and client events, and ``receive``s server events.
What AsyncAPI cannot say goes into ``x-wsproxy-…`` extensions (docs/spec.md).

Core module: standard library, msgspec and ``core`` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import msgspec

from wsproxy.core.recorded import RecordedSession
from wsproxy.core.rows import REDACTED, SECRET_HEADERS, SECRET_QUERY_NAMES
from wsproxy.core.schema_infer import DEFAULT_ENUMS, Enums, Shape

MessageKind = Literal["request", "response", "error", "event", "client-event"]
SECRET_FIELDS = SECRET_QUERY_NAMES | SECRET_HEADERS | {"secret", "api_key", "apikey", "refresh_token", "session"}
USER_PARAMETER = "user"  # protocol.md: the reference server's identity; events ids are per user
CORRELATION = {"location": "$message.payload#/id"}
_decode = msgspec.json.Decoder().decode
_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(slots=True)
class Seen:
    """One message of the catalogue: the envelopes seen, merged, and the first as an example."""

    kind: MessageKind
    name: str  # payloadType or eventType
    shape: Shape = field(default_factory=Shape)
    example: Any = None
    with_id: int = 0  # events: how many carried an envelope id
    channels: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Channel:
    path: str
    connections: int = 0
    query: Shape = field(default_factory=Shape)


@dataclass(slots=True)
class _Open:
    path: str
    owner: str  # whose event stream: the ?user= name, else the connection
    waiting: dict[str, str] = field(default_factory=dict)  # request id -> payloadType, to name its response


class Inference:
    """Traffic in (``add``), an AsyncAPI 3.0 document out (``document``)."""

    def __init__(self, enums: Enums = DEFAULT_ENUMS) -> None:
        self.enums = enums
        self.messages: dict[tuple[MessageKind, str], Seen] = {}
        self.channels: dict[str, Channel] = {}
        self.users: set[str] = set()
        self.event_ids: dict[str, list[int]] = {}  # user (or connection) -> stateful event ids, in order
        self.texts = 0
        self.unreadable = 0
        self._open: dict[tuple[int, int], _Open] = {}  # (session, connection) -> what its messages need

    def add(self, session: RecordedSession) -> None:
        """A whole session held as values (a JSONL export, a HAR file)."""
        for conn in session.replayable:
            key = (session.session_id, conn.conn_id)
            self.connection(key, conn.path, conn.query)
            for frame in conn.frames:
                if frame.kind == "text" and frame.text is not None:
                    self.message(key, frame.sender, frame.text)

    def connection(self, key: tuple[int, int], path: str, query: str) -> None:
        """A connection that opened (its messages come with the same ``key``: session and connection)."""
        channel = self.channels.get(path)
        if channel is None:
            channel = self.channels[path] = Channel(path)
        channel.connections += 1
        values = dict(parse_qsl(query, keep_blank_values=True))
        channel.query.add(values)
        if USER_PARAMETER in values:
            self.users.add(values[USER_PARAMETER])
        self._open[key] = _Open(path, values.get(USER_PARAMETER) or f"{key[0]}/{key[1]}")

    def message(self, key: tuple[int, int], sender: str, text: str) -> None:
        """One text message of an open connection, in the order it was relayed."""
        conn = self._open.get(key)
        if conn is not None:
            self._message(conn.path, conn.owner, sender, text, conn.waiting)

    def _message(self, path: str, owner: str, sender: str, text: str, waiting: dict[str, str]) -> None:
        self.texts += 1
        try:
            envelope = _decode(text)
        except msgspec.DecodeError:
            envelope = None
        kind, name = _classify(envelope, sender, waiting) if isinstance(envelope, dict) else (None, None)
        if kind is None or name is None:
            self.unreadable += 1  # not JSON, not an envelope, or a response to no request we saw
            return
        assert isinstance(envelope, dict)
        seen = self.messages.get((kind, name))
        if seen is None:
            seen = self.messages[(kind, name)] = Seen(kind, name, example=_redacted(envelope))
        seen.shape.add(envelope)
        seen.channels.add(path)
        if kind in ("event", "client-event") and "id" in envelope:
            seen.with_id += 1
            if kind == "event" and isinstance(envelope["id"], int):
                self.event_ids.setdefault(owner, []).append(envelope["id"])

    def document(self, title: str = "Inferred from traffic", version: str = "1.0.0",
                 server: str | None = None) -> dict[str, Any]:
        """The AsyncAPI 3.0 document of everything added (components, channels, operations)."""
        enums = Enums(self.enums.limit, self.enums.repeat, self.enums.not_values | self.users)
        catalogue = [self.messages[key] for key in sorted(self.messages, key=_order)]
        channel_ids: dict[str, str] = {}
        for path in sorted(self.channels):
            base = _name(path.strip("/") or "root")
            channel_ids[path] = base if base not in channel_ids.values() else f"{base}_{len(channel_ids)}"
        event_ids = self._event_id_facts()
        channels: dict[str, Any] = {}
        operations: dict[str, Any] = {}
        for path, channel_id in channel_ids.items():
            used = [seen for seen in catalogue if path in seen.channels]
            entry: dict[str, Any] = {"address": path, "messages": {
                message_name(seen.kind, seen.name): {"$ref": f"#/components/messages/{message_name(seen.kind, seen.name)}"}
                for seen in used}}
            query = self.channels[path].query.schema(Enums(0))
            if query.get("properties"):
                entry["bindings"] = {"ws": {"query": query, "bindingVersion": "0.1.0"}}
            if event_ids and any(seen.kind == "event" and seen.with_id for seen in used):
                entry["x-wsproxy-event-ids"] = event_ids
            entry["x-wsproxy-connections"] = self.channels[path].connections
            channels[channel_id] = entry
            suffix = "" if len(channel_ids) == 1 else f"_{channel_id}"
            for seen in used:
                if seen.kind not in ("response", "error"):  # replies belong to their request's operation
                    operation_id, operation = self._operation(seen, channel_id, path)
                    operations[operation_id + suffix] = operation
        document: dict[str, Any] = {
            "asyncapi": "3.0.0",
            "info": {"title": title, "version": version,
                     "description": "The application described is the client: it sends requests (each with its "
                                    "reply) and client events, and receives server events. Inferred by wsproxy "
                                    f"from {self.texts:,} text messages."},
            "defaultContentType": "application/json",
        }
        if server:
            url = urlsplit(server if "://" in server else f"ws://{server}")
            document["servers"] = {"upstream": {"host": url.netloc, "protocol": url.scheme,
                                                **({"pathname": url.path} if url.path not in ("", "/") else {})}}
        document["channels"] = channels
        document["operations"] = operations
        document["components"] = {"messages": {message_name(seen.kind, seen.name): self._message_object(seen, enums)
                                               for seen in catalogue},
                                  "correlationIds": {"envelopeId": CORRELATION}}
        return document

    def _message_object(self, seen: Seen, enums: Enums) -> dict[str, Any]:
        words = {"request": f"The {seen.name} request", "response": f"The response to a {seen.name} request",
                 "error": f"An error response to a {seen.name} request", "event": f"The {seen.name} event",
                 "client-event": f"The {seen.name} event, sent by the client"}[seen.kind]
        result: dict[str, Any] = {"name": message_name(seen.kind, seen.name), "title": words,
                                  "payload": _pin_discriminator(seen.shape.schema(enums), seen),
                                  "x-wsproxy-observations": seen.shape.seen}
        if seen.kind in ("request", "response", "error"):
            result["correlationId"] = {"$ref": "#/components/correlationIds/envelopeId"}
        if seen.kind in ("event", "client-event"):
            result["x-wsproxy-event-id"] = ("always" if seen.with_id == seen.shape.seen else
                                            "never" if not seen.with_id else "sometimes")
        result["examples"] = [{"name": "recorded", "payload": seen.example}]
        return result

    def _operation(self, seen: Seen, channel_id: str, path: str) -> tuple[str, dict[str, Any]]:
        channel = {"$ref": f"#/channels/{channel_id}"}
        own = {"$ref": f"#/channels/{channel_id}/messages/{message_name(seen.kind, seen.name)}"}
        if seen.kind == "request":
            operation: dict[str, Any] = {"action": "send", "channel": channel, "title": f"Request {seen.name}",
                                         "messages": [own]}
            replies = [message_name(kind, seen.name) for kind in ("response", "error")
                       if (kind, seen.name) in self.messages and path in self.messages[(kind, seen.name)].channels]
            if replies:
                operation["reply"] = {"channel": channel,
                                      "messages": [{"$ref": f"#/channels/{channel_id}/messages/{n}"} for n in replies]}
            return _name(f"send{_cap(seen.name)}Request"), operation
        action = "receive" if seen.kind == "event" else "send"
        return (_name(f"{action}{_cap(seen.name)}{'Event' if seen.kind == 'event' else 'ClientEvent'}"),
                {"action": action, "channel": channel, "title": f"{seen.name} event", "messages": [own]})

    def _event_id_facts(self) -> dict[str, Any] | None:
        """Whether every user's (or connection's) event ids rose by exactly one, with no id twice."""
        streams = [ids for ids in self.event_ids.values() if ids]
        if not streams:
            return None
        contiguous = sum(1 for ids in streams if max(ids) - min(ids) + 1 == len(set(ids)))
        return {"scope": "user" if self.users else "connection", "step": 1 if contiguous == len(streams) else None,
                "streams": len(streams), "contiguous": contiguous}


def message_name(kind: MessageKind, name: str) -> str:
    """The component name of a message: ``newRequest``, ``newResponse``, ``newError``, ``typingEvent``,
    ``typingClientEvent``."""
    suffix = {"request": "Request", "response": "Response", "error": "Error", "event": "Event",
              "client-event": "ClientEvent"}[kind]
    return _name(name) + suffix


def _classify(envelope: dict[str, Any], sender: str, waiting: dict[str, str]) -> tuple[MessageKind | None, str | None]:
    kind = envelope.get("type")
    if kind == "request" and isinstance(envelope.get("payloadType"), str):
        if isinstance(envelope.get("id"), str):
            waiting[envelope["id"]] = envelope["payloadType"]
        return "request", envelope["payloadType"]
    if kind == "response" and isinstance(envelope.get("id"), str):
        answered = waiting.pop(envelope["id"], None)
        if answered is None:
            return None, None  # an orphan: nothing says what it answers
        payload = envelope.get("payload")
        return ("error" if isinstance(payload, dict) and "error" in payload else "response"), answered
    if kind == "event" and isinstance(envelope.get("eventType"), str):
        return ("event" if sender == "server" else "client-event"), envelope["eventType"]
    return None, None


def _pin_discriminator(schema: dict[str, Any], seen: Seen) -> dict[str, Any]:
    """The envelope's ``type`` and ``payloadType``/``eventType`` as constants: they name the message."""
    properties = schema.get("properties", {})
    properties["type"] = {"type": "string", "const": "event" if seen.kind == "client-event" else
                          "response" if seen.kind == "error" else seen.kind}
    if seen.kind == "request":
        properties["payloadType"] = {"type": "string", "const": seen.name}
    elif seen.kind in ("event", "client-event"):
        properties["eventType"] = {"type": "string", "const": seen.name}
    return schema


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if k.lower() in SECRET_FIELDS and value[k] is not None else _redacted(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _order(key: tuple[MessageKind, str]) -> tuple[int, str, int]:
    kind, name = key
    group, rank = {"request": (0, 0), "response": (0, 1), "error": (0, 2), "client-event": (1, 0), "event": (2, 0)}[kind]
    return (group, name, rank)


def _name(text: str) -> str:
    return _NAME.sub("_", text) or "_"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
