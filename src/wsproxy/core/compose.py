"""Messages a person sends by hand (hands on the wire, docs/ui.md): the protocol's empty envelopes,
templates made from recorded messages, fresh request ids, the next event id, and a recorded client
message made ready to send again.

Core module: standard library and msgspec only.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import msgspec

from wsproxy.core.vocab import Sender

_US = 1_000_000
MILLISECONDS_ABOVE = 1e11  # a timestamp above this is in milliseconds (protocol.md)


class Template(msgspec.Struct, frozen=True):
    """A starting point in the compose box: what it is, where it goes, the text."""

    label: str
    to: Sender  # the side that receives it
    text: str


class Ids(msgspec.Struct, frozen=True):
    """What a connection has used, for filling in fresh ids (from the live checker)."""

    request_ids: frozenset[str] = frozenset()  # request ids used on the connection
    pending: tuple[tuple[str, str], ...] = ()  # requests waiting for a response: (id, payloadType)
    last_event_id: int | None = None  # the last stateful event id the client received


def fresh_request_id(used: Collection[str]) -> str:
    """A request id not used on the connection: ``wsproxy-1``, ``wsproxy-2``, …"""
    number = 1
    while f"wsproxy-{number}" in used:
        number += 1
    return f"wsproxy-{number}"


def next_event_id(ids: Ids) -> int:
    return (ids.last_event_id or 0) + 1


def _encode(value: dict[str, Any]) -> str:
    return msgspec.json.encode(value).decode()


def empty_envelopes(ids: Ids, now_us: int) -> list[Template]:
    """The protocol's envelopes with nothing in them but a fresh id and the time (protocol.md)."""
    now = now_us // _US
    templates = [
        Template("request (empty)", "server", _encode({"type": "request", "timestamp": now, "id": fresh_request_id(
            ids.request_ids), "payloadType": "", "payload": {}})),
        Template("event from the client (empty)", "server", _encode({"type": "event", "timestamp": now,
                                                                      "eventType": "", "payload": {}})),
        Template("event with the next id (empty)", "client", _encode({"type": "event", "timestamp": now,
                                                                       "id": next_event_id(ids), "eventType": "",
                                                                       "payload": {}})),
        Template("event without an id (empty)", "client", _encode({"type": "event", "timestamp": now,
                                                                    "eventType": "", "payload": {}})),
    ]
    for request_id, payload_type in ids.pending:
        templates.append(Template(f"response to {request_id} ({payload_type})", "client", _encode(
            {"type": "response", "timestamp": now, "id": request_id, "payload": {}})))
    return templates


def from_recorded(examples: Iterable[tuple[Sender, str, str]], ids: Ids, now_us: int) -> list[Template]:
    """Templates from recorded messages (sender, name, text), one per sender and payloadType/eventType:
    the text with the time now and fresh ids (a request a new id, a stateful event the next id)."""
    templates = []
    for sender, name, text in examples:
        try:
            value = msgspec.json.decode(text)
        except msgspec.DecodeError:
            continue
        if not isinstance(value, dict):
            continue
        kind = value.get("type")
        if kind == "request":
            value["id"] = fresh_request_id(ids.request_ids)
        elif kind == "event" and "id" in value:
            value["id"] = next_event_id(ids)
        elif kind == "response" and ids.pending:
            value["id"] = ids.pending[0][0]
        _restamp(value, now_us)
        to: Sender = "server" if sender == "client" else "client"
        templates.append(Template(f"{kind} {name} (as recorded)", to, _encode(value)))
    return templates


def resend_text(text: str, ids: Ids, now_us: int) -> tuple[str, str | None]:
    """A recorded client message ready to send on a live connection, and the request id it was given
    when its own was already used there (None: unchanged). Its timestamp becomes now, in its unit; what
    is not a JSON object goes as it was."""
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text, None
    if not isinstance(value, dict):
        return text, None
    renamed = None
    if value.get("type") == "request" and isinstance(value.get("id"), str) and value["id"] in ids.request_ids:
        renamed = value["id"] = fresh_request_id(ids.request_ids)
    _restamp(value, now_us)
    return _encode(value), renamed


def _restamp(value: dict[str, Any], now_us: int) -> None:
    """The envelope's timestamp set to now, in the unit it was written in (seconds or milliseconds,
    an integer if it was one)."""
    stamp = value.get("timestamp")
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
        now = now_us / (1_000 if stamp > MILLISECONDS_ABOVE else _US)
        value["timestamp"] = int(now) if isinstance(stamp, int) else round(now, 6)
