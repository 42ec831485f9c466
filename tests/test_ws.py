"""The aiohttp internals wsproxy.ws relies on, on a real connection: an aiohttp upgrade that removes
one fails here, naming it, instead of somewhere deep in the relay."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from wsproxy import ws

INTERNALS = [  # (object, attribute, what wsproxy.ws uses it for)
    ("server", "_reader", "errors_as_messages: the frame queue receive() reads"),
    ("server", "_writer", "coalesce_writes: the frame writer"),
    ("server", "_set_closed", "drop: end a connection whose handshake is done"),
    ("server", "_close_transport", "drop: end a connection whose handshake is done"),
    ("client", "_response", "upstream_headers and drop: the 101 response"),
    ("client", "_writer", "coalesce_writes: the frame writer"),
    ("client", "_closed", "drop: mark the client leg closed"),
]


@pytest.fixture
async def pair():
    """A real server-side and client-side WebSocket on 127.0.0.1, connected to each other."""
    accepted: asyncio.Queue = asyncio.Queue()
    done = asyncio.Event()

    async def handle(request: web.Request) -> web.WebSocketResponse:
        server = web.WebSocketResponse(autoping=False, autoclose=False)
        await server.prepare(request)
        await accepted.put(server)
        await done.wait()
        return server

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    session = aiohttp.ClientSession()
    client = await session.ws_connect(f"ws://127.0.0.1:{runner.addresses[0][1]}/", autoping=False, autoclose=False)
    server = await asyncio.wait_for(accepted.get(), 5)
    yield server, client
    done.set()
    await client.close()
    await session.close()
    await runner.cleanup()


@pytest.mark.parametrize("side,attribute,why", INTERNALS)
async def test_every_internal_attribute_is_still_there(pair, side, attribute, why) -> None:
    server, client = pair
    target = server if side == "server" else client
    assert hasattr(target, attribute), (f"aiohttp {aiohttp.__version__} has no {type(target).__name__}.{attribute} "
                                        f"any more; wsproxy.ws needs another way for {why}")
    assert hasattr(target._writer, "transport"), "the frame writer has no transport attribute any more"


async def test_the_fenced_helpers_work_on_a_live_connection(pair) -> None:
    server, client = pair
    assert ("Upgrade", "websocket") in [(k, v.lower()) for k, v in ws.upstream_headers(client)]
    ws.errors_as_messages(server)
    ws.coalesce_writes(server)
    ws.coalesce_writes(client)
    for i in range(3):  # written in one loop turn: they leave together, unchanged and in order
        await client.send_str(f"m{i}")
    assert [(await server.receive()).data for _ in range(3)] == ["m0", "m1", "m2"]
    await server.send_bytes(b"\x00\x01")
    assert (await client.receive()).data == b"\x00\x01"


async def test_a_protocol_error_on_the_server_leg_arrives_as_a_message(pair) -> None:
    server, client = pair
    ws.errors_as_messages(server)
    await client.send_frame(b"\xff\xfe", WSMsgType.TEXT)  # not UTF-8
    msg = await asyncio.wait_for(server.receive(), 5)
    assert msg.type is WSMsgType.ERROR and isinstance(msg.data, ws.WebSocketError) and msg.data.code == 1007


async def test_drop_ends_both_legs_without_another_close_frame(pair) -> None:
    server, client = pair
    ws.drop(client)
    ws.drop(server)
    assert client.closed and server.closed


def test_the_message_limit_admits_a_message_of_exactly_the_maximum() -> None:
    assert ws.aiohttp_limit(100) == 101 and ws.aiohttp_limit(0) == 0  # 0: no limit
