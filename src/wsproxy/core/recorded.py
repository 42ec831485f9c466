"""Recorded traffic as plain values: what a replay (or an export) works from.

Core module: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wsproxy.core.vocab import ClosedBy, FrameKind, Sender


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    conn_id: int
    seq: int
    ts_us: int
    sender: Sender
    kind: FrameKind
    text: str | None = None  # text frames; a close frame's reason
    data: bytes | None = None  # binary, ping and pong
    close_code: int | None = None


@dataclass(slots=True)
class RecordedConnection:
    conn_id: int
    path: str
    query: str
    opened_us: int
    request_headers: dict[str, Any] = field(default_factory=dict)
    subprotocol: str | None = None
    status: int | None = 101
    closed_us: int | None = None
    close_code: int | None = None
    close_reason: str | None = None
    closed_by: ClosedBy | None = None
    frames: list[RecordedFrame] = field(default_factory=list)
    response_headers: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RecordedSession:
    session_id: int
    label: str | None
    connections: list[RecordedConnection]

    @property
    def replayable(self) -> list[RecordedConnection]:
        """Connections whose handshake succeeded (failed ones carried no traffic)."""
        return [c for c in self.connections if c.status == 101]


def iso_to_us(text: str | None) -> int | None:
    """An ISO 8601 time (``Z`` or an offset; none means UTC) as microseconds since the epoch; a
    ``ValueError`` for anything else (a number, say)."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an ISO 8601 time")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond
