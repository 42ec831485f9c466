"""The reference for what relaying costs: an aiohttp WebSocket relay with two pump tasks that records,
decodes and checks nothing. ``bench_record.py`` measures ``wsproxy record`` against it.

    python benchmarks/bare_relay.py LISTEN_PORT UPSTREAM_URL [--loop asyncio|uvloop]

Like the real relay it runs both legs with autoping and autoclose off and forwards text, binary,
ping, pong and close frames; unlike it, nothing else.
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
from aiohttp import WSMsgType, web


async def pump(source, dest) -> None:
    async for msg in source:
        if msg.type is WSMsgType.TEXT:
            await dest.send_str(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await dest.send_bytes(msg.data)
        elif msg.type is WSMsgType.PING:
            await dest.ping(msg.data)
        elif msg.type is WSMsgType.PONG:
            await dest.pong(msg.data)
    await dest.close()


def make_app(upstream: str) -> web.Application:
    async def handle(request: web.Request) -> web.WebSocketResponse:
        session: aiohttp.ClientSession = request.app["session"]
        server = await session.ws_connect(upstream + request.path_qs, autoclose=False, autoping=False, max_msg_size=0)
        client = web.WebSocketResponse(autoclose=False, autoping=False, max_msg_size=0)
        await client.prepare(request)
        up = asyncio.create_task(pump(client, server), name="pump-up")
        down = asyncio.create_task(pump(server, client), name="pump-down")
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        await server.close()
        return client

    async def session_ctx(app: web.Application):
        app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await app["session"].close()

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    app.cleanup_ctx.append(session_ctx)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("upstream")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    loop_factory = None
    if args.loop == "uvloop":
        import uvloop
        loop_factory = uvloop.new_event_loop
    web.run_app(make_app(args.upstream.rstrip("/")), host="127.0.0.1", port=args.port, print=None,
                access_log=None, loop=loop_factory() if loop_factory else None)


if __name__ == "__main__":
    main()
