"""The reference chat server's logic, without I/O: messages in, messages out.

``ChatCore`` implements protocol.md exactly (users by ``?user=NAME``, one event stream
per user with ids from 1, subscribe catch-up, fan-out to the other participant,
ephemeral typing/online/offline, error codes) and injects ``--faults`` on purpose.
The aiohttp shell in ``chat/server.py`` feeds it and sends what it returns, in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from wsproxy.chat.faults import Faults
from wsproxy.core import payloads
from wsproxy.core.protocol import Event, ParsedMessage, Request, decode

Outgoing = tuple[int, str | bytes]  # (connection id, text or binary frame)
_encode = msgspec.json.encode


@dataclass
class User:
    name: str
    stream: list[dict[str, Any]] = field(default_factory=list)  # stored stateful events
    last_event_id: int = 0
    connections: set[int] = field(default_factory=set)
    contacts: set[str] = field(default_factory=set)


@dataclass
class Connection:
    conn_id: int
    user: str
    subscribed: bool = False


@dataclass
class Message:
    message_id: int
    sender: str
    recipient: str
    text: str
    deleted: bool = False


class RequestError(Exception):
    """A request that cannot be carried out: answered with an error response."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ChatCore:
    """All server state. Every method returns the frames to send, in sending order."""

    def __init__(self, faults: Faults | None = None, clock: Callable[[], float] = time.time,
                 first_message_id: int = 1) -> None:
        self.faults = faults or Faults()
        self.clock = clock
        self.users: dict[str, User] = {}
        self.connections: dict[int, Connection] = {}
        self.messages: dict[int, Message] = {}
        self._next_message_id = first_message_id
        self._orphans = 0
        self._out: list[Outgoing] = []

    # --- connections ---

    def connect(self, conn_id: int, user_name: str) -> list[Outgoing]:
        user = self._user(user_name)
        self.connections[conn_id] = Connection(conn_id, user_name)
        first = not user.connections
        user.connections.add(conn_id)
        if first:
            self._notify_contacts(user, "online")
        return self._flush()

    def disconnect(self, conn_id: int) -> list[Outgoing]:
        conn = self.connections.pop(conn_id, None)
        if conn is not None:
            user = self.users[conn.user]
            user.connections.discard(conn_id)
            if not user.connections:
                self._notify_contacts(user, "offline")
        return self._flush()

    def receive(self, conn_id: int, text: str) -> list[Outgoing]:
        """Handle one text frame from a client."""
        conn = self.connections.get(conn_id)
        if conn is None:
            return []
        parsed = decode("text", text, "client")
        envelope = parsed.envelope
        if isinstance(envelope, Request):
            self._handle_request(conn, envelope, parsed)
        elif isinstance(envelope, Event) and envelope.eventType == "typing" and parsed.parse_error is None:
            target = self.users.get(parsed.payload.chatId)
            if target is not None:
                for target_conn in sorted(target.connections):
                    self._send(target_conn, self._event("typing", {"userId": conn.user}))
        elif envelope is None:
            self._answer_unreadable(conn, text, parsed.parse_error or "unreadable message")
        return self._flush()

    def _answer_unreadable(self, conn: Connection, text: str, reason: str) -> None:
        """An invalid request that still carries an id gets a bad_request answer with that id as it came
        (a string, or the integer a careless client sent: the client can still pair the answer)."""
        try:
            value = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return  # not JSON: no id to answer
        if not isinstance(value, dict) or value.get("type") != "request":
            return
        request_id = value.get("id")
        if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
            self._send(conn.conn_id, {"type": "response", "timestamp": self._now(), "id": request_id,
                                      "payload": {"error": {"code": "bad_request", "message": reason}}})

    # --- requests ---

    def _handle_request(self, conn: Connection, request: Request, parsed: ParsedMessage) -> None:
        try:
            if parsed.parse_error is not None:
                raise RequestError("bad_request", parsed.parse_error)
            handler = _HANDLERS.get(request.payloadType)
            if handler is None:
                raise RequestError("bad_request", f"unknown payloadType {request.payloadType!r}")
            if request.payloadType != "subscribe" and not conn.subscribed:
                raise RequestError("not_subscribed", "subscribe before sending requests")
            handler(self, conn, request, parsed)
        except RequestError as exc:
            self._respond(conn, request, {"error": {"code": exc.code, "message": str(exc)}})

    def _subscribe(self, conn: Connection, request: Request, parsed: ParsedMessage) -> None:
        user = self.users[conn.user]
        since = parsed.payload.lastEventId or 0
        backlog = [event for event in user.stream if event.get("id", 0) > since]
        self._respond(conn, request, {"lastEventId": user.last_event_id, "count": len(backlog)})
        if backlog and self.faults.fire("short-catchup"):
            backlog = backlog[:-1]
        for event in backlog:
            self._send(conn.conn_id, event)
        conn.subscribed = True

    def _new(self, conn: Connection, request: Request, parsed: ParsedMessage) -> None:
        payload: payloads.NewRequest = parsed.payload
        if not payload.chatId or payload.chatId == conn.user:
            raise RequestError("bad_request", "chatId must name another user")
        message = Message(self._next_message_id, conn.user, payload.chatId, payload.message)
        self._next_message_id += 1
        self.messages[message.message_id] = message
        sender, recipient = self.users[conn.user], self._user(payload.chatId)
        sender.contacts.add(recipient.name)
        recipient.contacts.add(sender.name)
        self._respond(conn, request, {"messageId": message.message_id})
        event = {"messageId": message.message_id, "chatId": conn.user, "from": conn.user,
                 "message": payload.message}
        if payload.attachments is not None:  # as the client sent them, unknown fields included
            event["attachments"] = msgspec.json.decode(parsed.payload_json or b"{}")["attachments"]
        self._store_event(recipient, "new", event)

    def _edit(self, conn: Connection, request: Request, parsed: ParsedMessage) -> None:
        payload: payloads.EditRequest = parsed.payload
        message = self._own_message(conn, payload.messageId)
        message.text = payload.message
        self._respond(conn, request, {})
        self._store_event(self.users[message.recipient], "edit",
                          {"messageId": message.message_id, "chatId": conn.user, "message": payload.message})

    def _delete(self, conn: Connection, request: Request, parsed: ParsedMessage) -> None:
        message = self._own_message(conn, parsed.payload.messageId)
        message.deleted = True
        self._respond(conn, request, {})
        self._store_event(self.users[message.recipient], "delete",
                          {"messageId": message.message_id, "chatId": conn.user})

    def _status(self, conn: Connection, request: Request, parsed: ParsedMessage) -> None:
        """delivered and read: only the recipient may report them; the sender is told."""
        message = self._message(parsed.payload.messageId)
        if message.recipient != conn.user:
            raise RequestError("forbidden", f"message {message.message_id} was not sent to {conn.user}")
        self._respond(conn, request, {})
        self._store_event(self.users[message.sender], request.payloadType,
                          {"messageId": message.message_id, "userId": conn.user})

    def _message(self, message_id: int) -> Message:
        message = self.messages.get(message_id)
        if message is None or message.deleted:
            raise RequestError("not_found", f"no message {message_id}")
        return message

    def _own_message(self, conn: Connection, message_id: int) -> Message:
        message = self._message(message_id)
        if message.sender != conn.user:
            raise RequestError("forbidden", f"message {message_id} was not sent by {conn.user}")
        return message

    # --- output ---

    def _respond(self, conn: Connection, request: Request, payload: dict[str, Any]) -> None:
        response = {"type": "response", "timestamp": self._now(), "id": request.id, "payload": payload}
        if request.payloadType != "subscribe" and self.faults.fire("drop-response"):
            return
        self._send(conn.conn_id, response)
        if self.faults.fire("duplicate-response"):
            self._send(conn.conn_id, response)
        if self.faults.fire("orphan-response"):
            self._orphans += 1
            self._send(conn.conn_id, {**response, "id": f"orphan-{self._orphans}"})

    def _store_event(self, user: User, event_type: str, payload: dict[str, Any]) -> None:
        """Give a stateful event the next id of the user's stream, store it, push it."""
        event: dict[str, Any] = {"type": "event", "timestamp": self._now(), "eventType": event_type}
        if self.faults.fire("missing-event-id"):
            event["payload"] = payload  # sent without an id, and not stored
            for conn_id in self._subscribed(user):
                self._send(conn_id, event)
            return
        # repeat-event-id fires on an event pushed live: a repeated id stored while the user is away
        # would be filtered out of catch-up (id > lastEventId) and never seen on the wire at all.
        if user.last_event_id and self._subscribed(user) and self.faults.fire("repeat-event-id"):
            event_id = user.last_event_id
        else:
            if user.last_event_id and self.faults.fire("skip-event-id"):  # after a baseline exists
                user.last_event_id += 1
            user.last_event_id += 1
            event_id = user.last_event_id
        event["id"] = event_id
        event["payload"] = payload
        user.stream.append(event)
        for conn_id in self._subscribed(user):
            self._send(conn_id, event)

    def _notify_contacts(self, user: User, event_type: str) -> None:
        for contact in sorted(user.contacts):
            for conn_id in sorted(self.users[contact].connections):
                self._send(conn_id, self._event(event_type, {"userId": user.name}))

    def _send(self, conn_id: int, envelope: dict[str, Any]) -> None:
        if self.faults.fire("ms-timestamps"):
            envelope = {**envelope, "timestamp": int(envelope["timestamp"] * 1000)}
        self._out.append((conn_id, _encode(envelope).decode()))
        if self.faults.fire("invalid-json"):
            self._out.append((conn_id, '{"type": "event", "timestamp": '))
        if self.faults.fire("binary"):
            self._out.append((conn_id, b"\x00\x01wsproxy-binary-fault"))

    def _event(self, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"type": "event", "timestamp": self._now(), "eventType": event_type, "payload": payload}

    def _subscribed(self, user: User) -> list[int]:
        return sorted(c for c in user.connections if self.connections[c].subscribed)

    def _user(self, name: str) -> User:
        user = self.users.get(name)
        if user is None:
            user = self.users[name] = User(name)
        return user

    def _now(self) -> float:
        return round(self.clock(), 3)

    def _flush(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out


_HANDLERS: dict[str, Callable[..., None]] = {
    "subscribe": ChatCore._subscribe,
    "new": ChatCore._new,
    "edit": ChatCore._edit,
    "delete": ChatCore._delete,
    "delivered": ChatCore._status,
    "read": ChatCore._status,
}
