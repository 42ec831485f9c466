"""What the relay does to a connection's two legs (sockets): its per-connection state, sending,
and carrying out ``core.closing``'s decisions. Shared by the plain relay and the injecting one."""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType

from wsproxy.core.closing import MAX_REASON_BYTES, NO_STATUS, Action, AnswerClose, CloseLeg, Closing, ForwardClose
from wsproxy.ws import drop

CLOSE_TIMEOUT = 5.0


@dataclass
class Conn:
    conn_id: int
    seq: int = 0
    closing: Closing = field(default_factory=Closing)
    held: dict[str, tuple] = field(default_factory=dict)  # reorder: per sender, the message held back
    later: set = field(default_factory=set)  # delay: sends still to come
    observer: Any = None  # the checker's frame_relayed, for messages sent after they were recorded
    # per sender: frames read on behind a held message (hands on the wire), relayed before reading more
    ahead: dict[str, deque] = field(default_factory=lambda: {"client": deque(), "server": deque()})

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


async def carry_out(actions: list[Action], legs: dict[str, Any]) -> None:
    """Do what the closing state machine decided, in order (``core.closing``)."""
    for action in actions:
        ws = legs[action.to]
        if type(action) is ForwardClose:
            await send_close_frame(ws, action.code, action.reason)
        elif type(action) is AnswerClose:
            await close(ws, action.code, action.reason.encode())
        elif type(action) is CloseLeg:
            await close(ws, action.code, action.reason.encode()[:MAX_REASON_BYTES])
        else:
            drop(ws)


async def send_close_frame(ws: Any, code: int | None, reason: str) -> None:
    """Forward a close frame without entering aiohttp's close(), which would swallow the
    frames still in flight from that peer instead of letting the other pump relay them."""
    # 1005 (no status) and 0 are how aiohttp reports a close frame without a code
    payload = b"" if not code or code == NO_STATUS else struct.pack("!H", code) + reason.encode()
    try:
        await ws.send_frame(payload, WSMsgType.CLOSE)
    except (ConnectionError, RuntimeError):
        pass


async def close(ws: Any, code: int, message: bytes) -> None:
    """aiohttp's close(): our close frame, then (it answers one ``ws`` started, or waits for the reply
    to ours) the transport ends; a peer that does not finish in time is dropped."""
    try:
        await asyncio.wait_for(ws.close(code=code, message=message), CLOSE_TIMEOUT)
    except (TimeoutError, ConnectionError, RuntimeError):
        drop(ws)


async def send(ws: Any, is_text: bool, data: Any) -> None:
    try:
        await (ws.send_str(data) if is_text else ws.send_bytes(data))
    except (ConnectionError, RuntimeError):
        pass  # that side is going away; its own pump records how
