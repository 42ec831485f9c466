"""The web view's HTTP and WebSocket shell (aiohttp): pages and their assets from the package, the
JSON API of ``ui.views``, and a live socket that says when the recording has grown.

Safety: a random token on every request (the ``token`` query parameter, an ``X-Wsproxy-Token``
header, or the cookie set when a page was opened with the token), loopback unless the user says
otherwise, a Content-Security-Policy that lets no script run but the package's own, and no asset
from anywhere else. Payloads reach the page as JSON and are shown as text (``assets/common.js``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from wsproxy.core.errors import UserError
from wsproxy.ui import hands_api, views
from wsproxy.ui.filters import FilterError, FrameFilter
from wsproxy.ui.reader import Reader
from wsproxy.ws import went_away

log = logging.getLogger(__name__)
LIVE_POLL_SECONDS = 0.25  # how often the recording is asked whether it grew, while a page listens
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def assets() -> dict[str, tuple[bytes, str]]:
    """Every file the pages use, read once from the package: name -> (bytes, content type)."""
    found = {}
    for item in (resources.files("wsproxy.ui") / "assets").iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if item.is_file() and suffix in CONTENT_TYPES:
            found[item.name] = (item.read_bytes(), CONTENT_TYPES[suffix])
    return found


class UiServer:
    """``await start(host, port)``, then ``url`` is what to open; ``await stop()``."""

    def __init__(self, reader: Reader, session: int | None = None, token: str | None = None, hands: Any = None) -> None:
        self.reader = reader
        self.hands = hands  # record --ui: the relay's hands on the wire (record.hands.Hands); else None
        self.session = session
        self.token = token or secrets.token_urlsafe(24)
        self.url = ""
        self._assets = assets()
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._poller: asyncio.Task | None = None
        self._cookie = ""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        add = app.router.add_get
        add("/", self._page("index.html"))
        add("/connections/{conn:\\d+}", self._page("connection.html"))
        add("/static/{name}", self._static)
        add("/api/summary", self._json(lambda r, s: views.summary(self.reader, s)))
        add("/api/timeline", self._json(lambda r, s: views.timeline(self.reader, s, _int(r, "limit", 50))))
        add("/api/charts", self._json(lambda r, s: views.charts(self.reader, s)))
        add("/api/connections/{conn:\\d+}", self._json(lambda r, s: views.connection(self.reader, _conn(r)), session=False))
        add("/api/connections/{conn:\\d+}/frames", self._json(
            lambda r, s: views.frames(self.reader, _conn(r), FrameFilter.from_query(r.query),
                                      views.Bounds(_int(r, "offset", 0), _int(r, "limit", 100))), session=False))
        add("/api/connections/{conn:\\d+}/frames/{seq:\\d+}", self._json(
            lambda r, s: views.frame(self.reader, _conn(r), int(r.match_info["seq"])), session=False))
        add("/api/connections/{conn:\\d+}/position", self._json(
            lambda r, s: _index(views.position(self.reader, _conn(r), FrameFilter.from_query(r.query),
                                               _int(r, "seq", 0))), session=False))
        add("/api/diagram.svg", self._diagram)
        add("/api/live", self._live)
        hands_api.add_routes(app, self.hands, self.reader, lambda: views.session_id(self.reader, self.session))
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        # handler_cancellation: a browser that gives up on a request cancels its handler, which interrupts its SQL
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None, shutdown_timeout=1.0,
                                     handler_cancellation=True)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host, port).start()
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        port = self._runner.addresses[0][1]
        self._cookie = f"wsproxy-ui-{port}"  # cookies are shared by all ports of a host: one name per server
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}/?token={self.token}"
        return self.url

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- the guard every request passes ---

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.query.get("token") or request.headers.get("X-Wsproxy-Token") or request.cookies.get(self._cookie, "")
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            response: web.StreamResponse = web.Response(
                status=403, text="wsproxy ui: this needs the access token: open the URL that `wsproxy ui` printed "
                                 "(it ends in ?token=...)\n")
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # a route that does not exist, say: said as text
                response = web.Response(status=exc.status, text=exc.text)
            if request.query.get("token") and isinstance(response, web.Response):
                response.set_cookie(self._cookie, self.token, httponly=True, samesite="Strict", path="/")
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    # --- pages, assets, the API ---

    def _page(self, name: str) -> Handler:
        async def page(_: web.Request) -> web.Response:
            body, kind = self._assets[name]
            return web.Response(body=body, content_type=kind, charset="utf-8")
        return page

    async def _static(self, request: web.Request) -> web.Response:
        found = self._assets.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound(text="no such asset")
        return web.Response(body=found[0], content_type=found[1], charset="utf-8")

    def _json(self, answer: Callable[[web.Request, int], Awaitable[Any]], session: bool = True) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            try:
                asked = await views.session_id(self.reader, _session(request, self.session)) if session else 0
                body = await answer(request, asked)
            except UserError as exc:
                return _error(str(exc), 400)
            return web.Response(body=msgspec.json.encode(body), content_type="application/json")
        return handler

    async def _diagram(self, request: web.Request) -> web.Response:
        try:
            session = await views.session_id(self.reader, _session(request, self.session))
            conns = [int(c) for c in request.query.get("conns", "").split(",") if c.strip()]
            svg = await views.diagram_svg(self.reader, session, conns, _int(request, "after_us", 0),
                                          _int(request, "limit", 200))
        except (UserError, ValueError) as exc:
            return _error(str(exc), 400)
        return web.Response(text=svg, content_type="image/svg+xml")

    # --- live: the version of the recording, whenever it changes ---

    async def _live(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":  # the scheme too: same origin
            return web.Response(status=403, text="wsproxy ui: a page from another origin may not listen here\n")
        socket = web.WebSocketResponse(heartbeat=20)
        try:
            await socket.prepare(request)
        except (ConnectionError, RuntimeError):
            return went_away(request)
        self._sockets.add(socket)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="ui-live")
        try:
            await socket.send_bytes(msgspec.json.encode({"version": await views.version(self.reader),
                                                         "hands": self._hands_state()}))
            async for message in socket:  # the page only listens; this waits for it to go
                if message.type == WSMsgType.ERROR:
                    break
        except (UserError, ConnectionError):
            pass
        finally:
            self._sockets.discard(socket)
        return socket

    def _hands_state(self) -> dict[str, Any] | None:
        """What the page shows of hands on the wire everywhere: how many messages are held, and a version
        that grows whenever breakpoints or held messages change."""
        return None if self.hands is None else {"version": self.hands.version, "held": len(self.hands.held)}

    async def _poll(self) -> None:
        last: list[int] | None = None
        last_hands = self._hands_state()
        while self._sockets:
            now: list[int] | None
            try:
                now = await views.version(self.reader)
            except UserError as exc:  # a recorder that is stopping, say: ask again next time
                log.debug("live poll: %s", exc)
                now = last
            hands = self._hands_state()
            if (now != last and now is not None) or hands != last_hands:
                last, last_hands = now or last, hands
                text = msgspec.json.encode({"version": last, "hands": hands}).decode()
                for socket in list(self._sockets):
                    if not socket.closed:
                        await socket.send_str(text)
            await asyncio.sleep(LIVE_POLL_SECONDS)


async def _index(count: Awaitable[int]) -> dict[str, int]:
    return {"index": await count}


def _error(message: str, status: int) -> web.Response:
    return web.Response(body=msgspec.json.encode({"error": message}), status=status, content_type="application/json")


def _int(request: web.Request, key: str, default: int) -> int:
    text = request.query.get(key, "")
    if not text:
        return default
    if not (text.isascii() and text.lstrip("-").isdigit()):  # int() also takes "²", "1_0" and " 1 "
        raise FilterError(f"{key}={text!r} is not a whole number")
    return int(text)


def _conn(request: web.Request) -> int:
    return int(request.match_info["conn"])


def _session(request: web.Request, default: int | None) -> int | None:
    text = request.query.get("session", "")
    return _int(request, "session", 0) if text else default
