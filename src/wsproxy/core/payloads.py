"""msgspec Structs for every payloadType and eventType of protocol.md.

``gc=False``: decoded JSON cannot form reference cycles, and untracked Structs are
cheaper to allocate on the hot path.

Unknown extra fields are ignored by these Structs (never an error); the raw payload is
kept alongside, so nothing is lost. Core module: standard library and msgspec only.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class Attachment(msgspec.Struct, gc=False):
    kind: Literal["image", "file"]
    url: str
    size: int | None = None
    name: str | None = None


# --- request payloads (client -> server) ---

class SubscribeRequest(msgspec.Struct, gc=False):
    lastEventId: int | None = None


class NewRequest(msgspec.Struct, gc=False):
    chatId: str
    message: str
    attachments: list[Attachment] | None = None


class EditRequest(msgspec.Struct, gc=False):
    messageId: int
    message: str


class MessageRef(msgspec.Struct, gc=False):
    """The payload of delete, delivered and read requests."""

    messageId: int


# --- response payloads (server -> client), by the request's payloadType ---

class SubscribeResponse(msgspec.Struct, gc=False):
    lastEventId: int
    count: int


class NewResponse(msgspec.Struct, gc=False):
    messageId: int


class ErrorDetail(msgspec.Struct, gc=False):
    code: str
    message: str


class ErrorResponse(msgspec.Struct, gc=False):
    error: ErrorDetail


# --- event payloads ---

class NewEvent(msgspec.Struct, gc=False):
    messageId: int
    chatId: str
    sender: str = msgspec.field(name="from")
    message: str
    attachments: list[Attachment] | None = None


class EditEvent(msgspec.Struct, gc=False):
    messageId: int
    chatId: str
    message: str


class DeleteEvent(msgspec.Struct, gc=False):
    messageId: int
    chatId: str


class StatusEvent(msgspec.Struct, gc=False):
    """delivered and read: userId is who received or read the message."""

    messageId: int
    userId: str


class TypingFromClient(msgspec.Struct, gc=False):
    chatId: str


class UserEvent(msgspec.Struct, gc=False):
    """typing (server -> client), online and offline."""

    userId: str


class Empty(msgspec.Struct, gc=False):
    """Responses of edit, delete, delivered and read: ``{}`` or absent."""


REQUEST_SCHEMAS: dict[str, type] = {
    "subscribe": SubscribeRequest,
    "new": NewRequest,
    "edit": EditRequest,
    "delete": MessageRef,
    "delivered": MessageRef,
    "read": MessageRef,
}

RESPONSE_SCHEMAS: dict[str, type] = {
    "subscribe": SubscribeResponse,
    "new": NewResponse,
    "edit": Empty,
    "delete": Empty,
    "delivered": Empty,
    "read": Empty,
}

EVENT_SCHEMAS: dict[str, object] = {
    "new": NewEvent,
    "edit": EditEvent,
    "delete": DeleteEvent,
    "delivered": StatusEvent,
    "read": StatusEvent,
    "typing": {"client": TypingFromClient, "server": UserEvent},
    "online": UserEvent,
    "offline": UserEvent,
}
