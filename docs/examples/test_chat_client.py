"""A small aiohttp chat client, tested against a recording instead of a live server.

Record the fixture once against a real server (here the reference one):
    wsproxy chat-server --port 8765 &
    pytest docs/examples/test_chat_client.py --wsproxy-record=ws://127.0.0.1:8765
Then every run replays fixtures/alice_says_hello.jsonl: no server needed.
"""

import asyncio
import itertools
import time

import aiohttp
import pytest


class ChatClient:
    """The code under test: subscribe, then send messages and return their ids."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = (f"req-{n}" for n in itertools.count(1))

    async def request(self, payload_type: str, payload: dict) -> dict:
        request_id = next(self.ids)
        await self.ws.send_json({"type": "request", "timestamp": time.time(), "id": request_id,
                                 "payloadType": payload_type, "payload": payload})
        async for msg in self.ws:
            message = msg.json()
            if message.get("type") == "response" and message["id"] == request_id:
                return message.get("payload") or {}
        raise ConnectionError("closed before the response")

    async def say(self, to: str, text: str) -> int:
        answer = await self.request("new", {"chatId": to, "message": text})
        if "error" in answer:
            raise RuntimeError(answer["error"]["message"])
        return answer["messageId"]


async def alice_says_hello(base_url: str) -> list[int]:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{base_url}/chat?user=alice") as ws:
        client = ChatClient(ws)
        await client.request("subscribe", {})
        return [await client.say("bob", "hello bob"), await client.say("bob", "are you there?")]


@pytest.mark.wsproxy_recording("alice_says_hello.jsonl")
def test_alice_gets_a_message_id_for_each_message(wsproxy_replay):
    first, second = asyncio.run(alice_says_hello(wsproxy_replay.url))
    assert second == first + 1
