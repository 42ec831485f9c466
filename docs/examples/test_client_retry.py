"""Does my client retry a request whose response never comes? (docs/inject.md)"""

import asyncio
import json
import time

import aiohttp
import duckdb

from wsproxy.chat.server import start_chat_server
from wsproxy.core.inject import parse_rule
from wsproxy.record.session import RecordOptions, RecordSession


async def send_with_retry(ws, payload_type: str, payload: dict, timeout: float = 0.5, attempts: int = 3) -> dict:
    """The client under test: resend with a new id when no response comes within ``timeout``."""
    for attempt in range(1, attempts + 1):
        request_id = f"{payload_type}-{attempt}"
        await ws.send_str(json.dumps({"type": "request", "timestamp": round(time.time(), 3), "id": request_id,
                                      "payloadType": payload_type, "payload": payload}))
        try:
            while True:
                message = json.loads((await ws.receive(timeout=timeout)).data)
                if message.get("type") == "response" and message.get("id") == request_id:
                    return message
        except asyncio.TimeoutError:
            continue
    raise AssertionError(f"no response to {payload_type} after {attempts} attempts")


async def test_my_client_retries_a_lost_response(tmp_path):
    server = await start_chat_server()  # or your real server
    proxy = RecordSession(RecordOptions(listen="127.0.0.1:0", upstream=server.url, db=tmp_path / "retry.duckdb",
                                        inject=[parse_rule("drop response type=new once")]))
    await proxy.start()
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{proxy.url}/chat?user=Me") as ws:
            await send_with_retry(ws, "subscribe", {})
            answer = await send_with_retry(ws, "new", {"chatId": "You", "message": "hello"})
            assert answer["id"] == "new-2"  # the first response was dropped; the retry got its answer
    finally:
        await proxy.stop()
        await server.stop()
    with duckdb.connect(str(tmp_path / "retry.duckdb"), read_only=True) as db:
        # the proxy dropped exactly one response, and says so
        assert db.execute("SELECT action, rule FROM injections").fetchall() == [("drop", "drop response type=new once")]
        # the server did answer the first attempt: the client coped with a lost response, the server did nothing wrong
        assert db.execute("SELECT msg_id, delivered FROM frames WHERE msg_type = 'response' AND msg_id LIKE 'new-%' "
                          "ORDER BY seq").fetchall() == [("new-1", 0), ("new-2", 1)]
        assert db.execute("SELECT code, caused_by_injection FROM violations").fetchall() == [
            ("unanswered-request", True)]
