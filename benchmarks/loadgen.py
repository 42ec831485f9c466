"""A load generator that speaks protocol.md exactly, for bench_record.py; it runs in its own processes.

Connection i is user ``bench{i}``; it subscribes first, then sends ``new`` requests to user
``bench{i+1}`` (a ring), with string ids, timestamps in seconds and a message padded to the wanted
size, keeping ``window`` requests in flight. The reference chat server answers each with a response
to the sender and a stateful ``new`` event (``messageId``, ``chatId``, ``from``) to the recipient, so
every request is three messages through the proxy. ``traffic="findings"`` sends integer request ids
instead: the chat server still answers (with that integer), and the proxy's checker finds an invalid
envelope on every message. ``rate`` (requests per second per connection) replaces the window with a
fixed pace, for latency.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import string
import time
from dataclasses import dataclass, field

import msgspec

_json = msgspec.json.Decoder()


@dataclass
class Result:
    messages: int = 0  # sent + received on every connection
    requests: int = 0
    latencies: list[float] = field(default_factory=list)  # response round trips, seconds
    answered_at: list[float] = field(default_factory=list)  # when each came (time.time()), in the same order
    errors: int = 0


@functools.cache
def _words(length: int) -> str:
    """Random words, compressible like chat text (about 2x) but never repeating: DuckDB compresses
    repeated text across rows almost to nothing, which would flatter the recorder."""
    rng = random.Random(length)
    vocabulary = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(256)]
    return " ".join(vocabulary[b] for b in os.urandom(length // 5 + 1))[:length]


def request(number: int, prefix: str, chat_id: str, size: int, traffic: str) -> str:
    request_id = str(number) if traffic == "findings" else f'"{prefix}-{number:08d}"'
    head = (f'{{"type":"request","timestamp":{time.time():.3f},"id":{request_id},"payloadType":"new",'
            f'"payload":{{"chatId":"{chat_id}","message":"')
    tail = '"}}'
    body = max(1, size - len(head) - len(tail))
    words = _words(max(8 << 20, 64 * body))
    at = (number * (body + 1)) % (len(words) - body)
    return head + words[at:at + body] + tail


async def connection(url: str, index: int, peers: int, size: int, seconds: float, window: int,
                     rate: float | None, traffic: str, result: Result, started: asyncio.Event) -> None:
    import aiohttp
    me, peer = f"bench{index}", f"bench{(index + 1) % peers}" if peers > 1 else "sink"
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{url}/chat?user={me}", max_msg_size=0)
        await ws.send_str(f'{{"type":"request","timestamp":{time.time():.3f},"id":"{me}-sub",'
                          f'"payloadType":"subscribe","payload":{{}}}}')
        await ws.receive()
        result.messages += 2
        await started.wait()  # every connection subscribed: events have somewhere to go
        sent_at: dict[object, float] = {}
        answered = asyncio.Event()
        deadline = time.perf_counter() + seconds

        async def reader() -> None:
            async for msg in ws:
                result.messages += 1
                value = _json.decode(msg.data)
                if value.get("type") == "response":
                    began = sent_at.pop(value.get("id"), None)
                    if began is not None:
                        result.latencies.append(time.perf_counter() - began)
                        result.answered_at.append(time.time())
                    answered.set()
        task = asyncio.create_task(reader())
        number = 0
        next_send = time.perf_counter()
        while time.perf_counter() < deadline:
            if rate:
                pause = next_send - time.perf_counter()
                if pause > 0:
                    await asyncio.sleep(pause)
                next_send += 1 / rate
            elif len(sent_at) >= window:
                answered.clear()
                try:
                    await asyncio.wait_for(answered.wait(), 10)
                except TimeoutError:
                    result.errors += 1
                    break
                continue
            number += 1
            text = request(number, me, peer, size, traffic)
            sent_at[number if traffic == "findings" else f"{me}-{number:08d}"] = time.perf_counter()
            await ws.send_str(text)
            result.messages += 1
            result.requests += 1
        end = time.perf_counter() + 5
        while sent_at and time.perf_counter() < end:  # the answers still in flight
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the last events
        task.cancel()
        await ws.close()


def run(url: str, first: int, count: int, peers: int, size: int, seconds: float, window: int,
        rate: float | None, traffic: str) -> Result:
    """Connections ``first`` .. ``first + count - 1`` of a ring of ``peers`` (one process's share)."""
    async def main() -> Result:
        result = Result()
        started = asyncio.Event()
        tasks = [asyncio.create_task(connection(url, i, peers, size, seconds, window, rate, traffic, result, started))
                 for i in range(first, first + count)]
        await asyncio.sleep(0.3)  # every connection has subscribed (the other process's too)
        started.set()
        await asyncio.gather(*tasks)
        return result
    return asyncio.run(main())


def hold_idle(url: str, count: int, hold: float) -> tuple[int, str]:
    """Open ``count`` connections, keep them idle for ``hold`` seconds; (how many opened, first error)."""
    async def main() -> tuple[int, str]:
        import aiohttp
        connector = aiohttp.TCPConnector(limit=0)
        problem = ""
        async with aiohttp.ClientSession(connector=connector) as http:
            sockets = []
            for start in range(0, count, 100):
                batch = await asyncio.gather(*(http.ws_connect(f"{url}/chat?user=idle{i}")
                                               for i in range(start, min(count, start + 100))), return_exceptions=True)
                for item in batch:
                    if isinstance(item, BaseException):
                        problem = problem or f"{type(item).__name__}: {item}"
                    else:
                        sockets.append(item)
            await asyncio.sleep(hold)
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
            return len(sockets), problem
    return asyncio.run(main())
