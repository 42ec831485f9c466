"""A plain aiohttp echo server (text and binary) for scripts/autobahn.py: the server under test."""

import sys
from aiohttp import web, WSMsgType
async def handle(request):
    ws = web.WebSocketResponse(max_msg_size=32 * 1024 * 1024, compress=True)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws
app = web.Application()
app.router.add_get("/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
