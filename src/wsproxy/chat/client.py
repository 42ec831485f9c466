"""Scripted chat users: a small aiohttp client, the overview's flow, and a load generator."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec

from wsproxy.core.protocol import Event, ParsedMessage, Response, decode


class ChatError(Exception):
    """A scripted user saw something it did not expect (timeout, error response)."""


@dataclass
class ChatClient:
    """One user on one WebSocket connection. Use ``await ChatClient.connect(url, user)``."""

    user: str
    ws: aiohttp.ClientWebSocketResponse
    session: aiohttp.ClientSession | None = None
    timeout: float = 5.0
    events: list[ParsedMessage] = field(default_factory=list)   # every event received, in order
    received: list[ParsedMessage] = field(default_factory=list)  # every message received, in order
    _pending: dict[str, asyncio.Future] = field(default_factory=dict)
    _ids: Any = field(default_factory=itertools.count)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task | None = None

    @classmethod
    async def connect(cls, base_url: str, user: str, *, path: str = "/chat",
                      session: aiohttp.ClientSession | None = None, timeout: float = 5.0,
                      **ws_options: Any) -> ChatClient:
        owns = session is None
        session = session or aiohttp.ClientSession()
        url = f"{base_url.rstrip('/')}{path}?user={quote(user)}"
        try:
            ws = await session.ws_connect(url, **ws_options)
        except BaseException:
            if owns:
                await session.close()
            raise
        client = cls(user, ws, session if owns else None, timeout)
        client._reader = asyncio.create_task(client._read(), name=f"chat-client-{user}")
        return client

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                parsed = decode("text", msg.data, "server")
            elif msg.type == aiohttp.WSMsgType.BINARY:
                parsed = decode("binary", msg.data, "server")
            else:
                continue
            self.received.append(parsed)
            envelope = parsed.envelope
            if isinstance(envelope, Response):
                future = self._pending.pop(envelope.id, None)
                if future is not None and not future.done():
                    future.set_result(parsed)
            elif isinstance(envelope, Event):
                self.events.append(parsed)
            self._changed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ChatError(f"{self.user}: connection closed before the response"))
        self._changed.set()

    def next_id(self) -> str:
        return f"{self.user}-{next(self._ids) + 1:03d}"

    async def send_json(self, envelope: dict[str, Any]) -> None:
        await self.ws.send_str(msgspec.json.encode(envelope).decode())

    async def request(self, payload_type: str, payload: dict[str, Any], *, check: bool = True) -> Any:
        """Send a request and return the response payload (plain JSON)."""
        request_id = self.next_id()
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        await self.send_json({"type": "request", "timestamp": now(), "id": request_id,
                              "payloadType": payload_type, "payload": payload})
        try:
            parsed = await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            self._pending.pop(request_id, None)
            raise ChatError(f"{self.user}: no response to {payload_type} request {request_id} "
                            f"within {self.timeout:g} s") from None
        result = parsed.response_payload()
        if check and isinstance(result, dict) and "error" in result:
            raise ChatError(f"{self.user}: {payload_type} request {request_id} failed: {result['error']}")
        return result

    async def send_event(self, event_type: str, payload: dict[str, Any]) -> None:
        await self.send_json({"type": "event", "timestamp": now(), "eventType": event_type, "payload": payload})

    async def wait_event(self, event_type: str, count: int = 1, **match: Any) -> ParsedMessage:
        """Wait until ``count`` events of this type (with these payload fields) have arrived."""
        def found() -> list[ParsedMessage]:
            return [e for e in self.events if e.event_type == event_type and _matches(e, match)]
        if not await self._wait_until(lambda: len(found()) >= count):
            raise ChatError(f"{self.user}: expected {count} {event_type} event(s) {match or ''}, "
                            f"saw {len(found())}")
        return found()[count - 1]

    async def _wait_until(self, condition: Callable[[], bool]) -> bool:
        """Wait (up to ``timeout``) for what the reader receives to make ``condition`` true."""
        deadline = time.monotonic() + self.timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.ws.closed:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass
        return True

    async def subscribe(self, last_event_id: int | None = None) -> dict[str, Any]:
        """Subscribe and wait for the announced catch-up events to arrive."""
        payload = {} if last_event_id is None else {"lastEventId": last_event_id}
        before = len(self.events)
        result = await self.request("subscribe", payload)
        # a short catch-up is the server's fault to show, not ours to raise: return either way
        await self._wait_until(lambda: len(self.events) - before >= result["count"])
        return result

    @property
    def last_event_id(self) -> int | None:
        ids = [e.event_id for e in self.events if e.event_id is not None]
        return max(ids) if ids else None

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await self._reader
        if self.session is not None:
            await self.session.close()


def now() -> float:
    return round(time.time(), 3)


def _matches(parsed: ParsedMessage, match: dict[str, Any]) -> bool:
    payload = parsed.payload
    return all(getattr(payload, key, None) == value for key, value in match.items())


async def overview_flow(base_url: str, *, timeout: float = 5.0) -> dict[str, ChatClient]:
    """Play the overview's diagram between User1 and User2 (see docs/chat-server.md).

    Returns the clients of the final phase (closed), whose ``received`` lists hold what
    each user saw. Raises ChatError when the server does not behave as protocol.md says.
    """
    async with aiohttp.ClientSession() as session:
        connect = lambda user: ChatClient.connect(base_url, user, session=session, timeout=timeout)  # noqa: E731
        # Phase 1: both subscribe; User2 writes, User1 sees event 1 and confirms delivery.
        user1, user2 = await connect("User1"), await connect("User2")
        await user1.subscribe()
        await user2.subscribe()
        first = await user2.request("new", {"chatId": "User1", "message": "Hello User1"})
        await user1.wait_event("new", messageId=first["messageId"])
        await user1.request("delivered", {"messageId": first["messageId"]})
        await user2.wait_event("delivered", messageId=first["messageId"])
        seen = user1.last_event_id or 0
        await user1.close()
        # Phase 2: User1 is away; User2 writes three more (stored in User1's stream).
        for text in ("Are you there?", "I have news", "Call me"):
            await user2.request("new", {"chatId": "User1", "message": text})
        # Phase 3: User1 comes back and catches up from the last id it saw.
        user1 = await connect("User1")
        caught = await user1.subscribe(seen)
        if caught["count"] != 3:
            raise ChatError(f"User1 catch-up announced {caught['count']} events, expected 3")
        # Phase 4: the overview's diagram.
        await user1.send_event("typing", {"chatId": "User2"})
        await user2.wait_event("typing", userId="User1")
        sent = await user1.request("new", {"chatId": "User2", "message": "Hi from User1!", "attachments": [
            {"kind": "image", "url": "https://example.org/cat.png", "size": 48213, "name": "cat.png"}]})
        message_id = sent["messageId"]
        await user2.wait_event("new", messageId=message_id)
        await user2.request("delivered", {"messageId": message_id})
        await user1.wait_event("delivered", messageId=message_id)
        await user2.request("read", {"messageId": message_id})
        await user1.wait_event("read", messageId=message_id)
        await user1.request("edit", {"messageId": message_id, "message": "Hi from User1! (edited)"})
        await user2.wait_event("edit", messageId=message_id)
        await user1.request("delete", {"messageId": message_id})
        await user2.wait_event("delete", messageId=message_id)
        await user1.close()
        await user2.close()
        return {"User1": user1, "User2": user2}


@dataclass
class LoadResult:
    users: int
    messages_sent: int
    responses: int
    events_received: int
    seconds: float

    @property
    def requests_per_second(self) -> float:
        return self.responses / self.seconds if self.seconds else 0.0


async def run_load(base_url: str, users: int = 10, messages: int = 100, window: int = 10,
                   timeout: float = 10.0) -> LoadResult:
    """N users each send M messages to the next user, with ``window`` requests in flight."""
    # limit=0: one session holds every user's connection (aiohttp's default caps it at 100)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        names = [f"load{i:04d}" for i in range(users)]
        clients = [await ChatClient.connect(base_url, n, session=session, timeout=timeout) for n in names]
        await asyncio.gather(*(c.subscribe() for c in clients))
        start = time.perf_counter()

        async def send_all(index: int) -> int:
            client, peer = clients[index], names[(index + 1) % users]
            gate = asyncio.Semaphore(window)

            async def one(n: int) -> None:
                async with gate:
                    await client.request("new", {"chatId": peer, "message": f"message {n} from {client.user}"})
            await asyncio.gather(*(one(n) for n in range(messages)))
            return messages

        sent = sum(await asyncio.gather(*(send_all(i) for i in range(users))))
        elapsed = time.perf_counter() - start
        if users > 1:  # every message becomes one event at its recipient
            await asyncio.gather(*(c.wait_event("new", count=messages) for c in clients))
        received = sum(len(c.events) for c in clients)
        await asyncio.gather(*(c.close() for c in clients))
        return LoadResult(users, sent, sent, received, elapsed)
