"""The web view's API for hands on the wire (docs/ui.md): breakpoints, held messages, composing,
resending, and the findings a message would cause before it is sent. Only ``record --ui`` has a
relay to act on (``record.hands``); ``wsproxy ui`` of a file answers 404 with why.

Every route here changes what is relayed, so beyond the token (``ui.server``'s guard) each takes a
JSON body (a form of another site cannot send one without the page's consent) and refuses another
origin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from wsproxy.core.errors import UserError
from wsproxy.core.vocab import InjectionSource
from wsproxy.ui import views
from wsproxy.ui.reader import Reader

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NOT_LIVE = ("this web view is not attached to a relay: hands on the wire need `wsproxy record --ui HOST:PORT` "
            "(with one worker)")
TEMPLATE_EXAMPLES_SQL = """
SELECT sender, type_name, arg_max(text, seq) FROM messages
WHERE session_id = ? AND kind = 'text' AND msg_type IN ('request', 'event') AND type_name IS NOT NULL
GROUP BY sender, type_name ORDER BY sender, type_name LIMIT 40
"""


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """Every field any route takes; each route reads its own and says which are missing."""

    action: str | None = None
    text: str | None = None
    to: str | None = None
    conn: int | None = None
    held: int | None = None
    from_conn: int | None = None
    seq: int | None = None
    rule: str | None = None
    enabled: bool | None = None
    source: str | None = None  # "ui" from the page; scripts leave it out ("api")


def add_routes(app: web.Application, hands: Any, reader: Reader, session: Callable[[], Awaitable[int]]) -> None:
    api = HandsApi(hands, reader, session)
    app.router.add_get("/api/hands", api.state)
    app.router.add_get("/api/held", api.wrap(api.held))
    app.router.add_post("/api/held/{id:\\d+}", api.wrap(api.decide))
    app.router.add_post("/api/breakpoints", api.wrap(api.add_breakpoint))
    app.router.add_post("/api/breakpoints/{id:\\d+}", api.wrap(api.set_breakpoint))
    app.router.add_delete("/api/breakpoints/{id:\\d+}", api.wrap(api.remove_breakpoint))
    app.router.add_post("/api/preview", api.wrap(api.preview))
    app.router.add_get("/api/connections/{conn:\\d+}/templates", api.wrap(api.templates))
    app.router.add_post("/api/connections/{conn:\\d+}/send", api.wrap(api.send))
    app.router.add_post("/api/connections/{conn:\\d+}/resend", api.wrap(api.resend))
    app.router.add_post("/api/resend", api.wrap(api.resend))


class HandsApi:
    def __init__(self, hands: Any, reader: Reader, session: Callable[[], Awaitable[int]]) -> None:
        self.hands = hands
        self.reader = reader
        self.session = session

    def wrap(self, answer: Callable[[web.Request, Body], Awaitable[Any]]) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            if self.hands is None:
                return _error(NOT_LIVE, 404)
            body = Body()
            if request.method != "GET":
                origin = request.headers.get("Origin")
                if origin is not None and origin != f"{request.scheme}://{request.host}":
                    return _error("a page from another origin may not act on this proxy", 403)
                if request.content_type != "application/json":
                    return _error("send a JSON body (Content-Type: application/json)", 415)
                try:
                    body = msgspec.json.decode(await request.read() or b"{}", type=Body)
                except msgspec.DecodeError as exc:
                    return _error(f"the body is not what this takes: {exc}", 400)
            try:
                result = await answer(request, body)
            except UserError as exc:
                return _error(str(exc), getattr(exc, "status", 400))
            return web.Response(body=msgspec.json.encode(result), content_type="application/json")
        return handler

    # --- breakpoints and held messages ---

    async def state(self, request: web.Request) -> web.Response:
        """What the page shows of hands on the wire; ``available: false`` (and why) when there is no relay,
        so that every page of `wsproxy ui` can ask without an error in the browser's console."""
        state = {"available": False, "why": NOT_LIVE} if self.hands is None else {"available": True,
                                                                                   **self.hands.state()}
        return web.Response(body=msgspec.json.encode(state), content_type="application/json")

    async def held(self, request: web.Request, body: Body) -> Any:
        conn = request.query.get("conn", "")
        held = [h.as_json() for h in self.hands.held.values() if not conn or str(h.conn_id) == conn]
        return {"held": held}

    async def decide(self, request: web.Request, body: Body) -> Any:
        return self.hands.decide(int(request.match_info["id"]), _required(body.action, "action"), body.text,
                                 _source(body))

    async def add_breakpoint(self, request: web.Request, body: Body) -> Any:
        return self.hands.add_breakpoint(_required(body.rule, "rule")).as_json()

    async def set_breakpoint(self, request: web.Request, body: Body) -> Any:
        self.hands.set_breakpoint(int(request.match_info["id"]), enabled=_required(body.enabled, "enabled"))
        return self.hands.state()

    async def remove_breakpoint(self, request: web.Request, body: Body) -> Any:
        self.hands.set_breakpoint(int(request.match_info["id"]), remove=True)
        return self.hands.state()

    # --- composing and resending ---

    async def preview(self, request: web.Request, body: Body) -> Any:
        findings = self.hands.sending.preview(_required(body.conn, "conn"), _required(body.to, "to"),
                                      _required(body.text, "text"), body.held)
        return {"findings": [views.finding_json(f.code, f.severity, f.message) for f in findings]}

    async def templates(self, request: web.Request, body: Body) -> Any:
        examples = (await self.reader.query(TEMPLATE_EXAMPLES_SQL, [await self.session()])).rows
        conn = int(request.match_info["conn"])
        return {"templates": [msgspec.structs.asdict(t) for t in self.hands.sending.templates(conn, examples)]}

    async def send(self, request: web.Request, body: Body) -> Any:
        return await self.hands.sending.send(int(request.match_info["conn"]), _required(body.to, "to"),
                                     _required(body.text, "text"), _source(body))

    async def resend(self, request: web.Request, body: Body) -> Any:
        """A recorded client message (``from_conn`` and ``seq``), or any text (from another recording),
        sent to the server on connection ``conn`` (in the path or the body; none: a new connection)."""
        target = int(request.match_info["conn"]) if "conn" in request.match_info else body.conn
        path_qs, recorded = "/", None
        if body.text is not None:
            text = body.text
            if target is None:
                raise UserError("a new connection needs the path of a recorded one: give from_conn and seq")
        else:
            from_conn, seq = _required(body.from_conn, "from_conn"), _required(body.seq, "seq")
            frame = await views.frame(self.reader, from_conn, seq)
            if frame["sender"] != "client" or frame["kind"] != "text":
                raise UserError(f"frame {seq} of connection {from_conn} is not a client text message: only those "
                                f"are resent to the server")
            text, recorded = frame["text"], f"#{seq} of connection {from_conn}"
            if target is None:
                info = await views.connection(self.reader, from_conn)
                path_qs = info["path"] + (f"?{info['query']}" if info["query"] else "")
        return await self.hands.sending.resend(target, text, _source(body), path_qs, recorded)


def _required(value: Any, name: str) -> Any:
    if value is None:
        raise UserError(f"the body needs {name!r}")
    return value


def _source(body: Body) -> InjectionSource:
    if body.source not in (None, "ui", "api"):
        raise UserError(f'source is "ui" or "api" (or left out), not {body.source!r}')
    return "ui" if body.source == "ui" else "api"


def _error(message: str, status: int) -> web.Response:
    return web.Response(body=msgspec.json.encode({"error": message}), status=status, content_type="application/json")
