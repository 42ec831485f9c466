"""Hands on the wire over the web view's HTTP API, without a browser: breakpoints hold real messages
between real clients and the reference chat server, a script forwards, edits or drops them, composes
and resends; the recording is then read with SQL to see that it says exactly what was done."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import aiohttp
import duckdb
import pytest

from wsproxy.core.inject import parse_breakpoint
from wsproxy.ui.reader import FileReader, RecorderReader
from wsproxy.ui.server import UiServer

TS = 1700000000


def request(request_id: str, payload_type: str, payload: dict) -> str:
    return json.dumps({"type": "request", "timestamp": TS, "id": request_id, "payloadType": payload_type,
                       "payload": payload})


def new(request_id: str, message: str, to: str = "User2") -> str:
    return request(request_id, "new", {"chatId": to, "message": message})


class Client:
    """A chat user on the proxy: subscribes, then sends and reads what comes."""

    def __init__(self, http: aiohttp.ClientSession, url: str, user: str) -> None:
        self.http, self.url, self.user = http, url, user
        self.ws: Any = None

    async def __aenter__(self) -> Client:
        self.ws = await self.http.ws_connect(f"{self.url}/?user={self.user}")
        await self.ws.send_str(request(f"sub-{self.user}", "subscribe", {}))
        assert (await self.next("response"))["id"] == f"sub-{self.user}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.ws.close()

    async def next(self, kind: str | None = None, timeout: float = 5.0) -> dict:
        """The next message of ``kind`` (others are skipped: online events and the like)."""
        while True:
            message = await self.ws.receive(timeout=timeout)
            assert message.type == aiohttp.WSMsgType.TEXT, message
            value = json.loads(message.data)
            if kind is None or value["type"] == kind:
                return value

    async def nothing(self, kind: str, seconds: float = 0.4) -> None:
        """No message of ``kind`` arrives in ``seconds``."""
        try:
            while True:
                value = await self.next(timeout=seconds)
                assert value["type"] != kind, f"unexpected {value}"
        except TimeoutError:
            pass


@pytest.fixture
async def rig(chat_server, proxy, tmp_path):
    """``await rig(intercept=[...], hold_timeout=...)``: record with hands, its web view, an HTTP client."""
    made: list[Any] = []

    async def start(intercept: tuple[str, ...] = (), hold_timeout: float = 60.0) -> Any:
        session = await proxy(chat_server.url, intercept=[parse_breakpoint(t) for t in intercept],
                              hold_timeout=hold_timeout)
        server = UiServer(RecorderReader(session.sql), session.recorder.session_id, hands=session.hands)
        await server.start()
        http = aiohttp.ClientSession(headers={"X-Wsproxy-Token": server.token})
        made.append((server, http))
        return Rig(session, server, http)

    yield start
    for server, http in made:
        await http.close()
        await server.stop()


class Rig:
    def __init__(self, session: Any, server: UiServer, http: aiohttp.ClientSession) -> None:
        self.session, self.server, self.http = session, server, http
        self.base = server.url.split("/?")[0]

    def client(self, user: str) -> Client:
        return Client(self.http, self.session.url, user)

    async def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        async with self.http.request(method, self.base + path, json=body) as response:
            answer = await response.json()
            assert response.status == status, answer
            return answer

    async def held(self, count: int = 1) -> list[dict]:
        """The held messages, once there are ``count`` of them."""
        for _ in range(200):
            held = (await self.call("GET", "/api/held"))["held"]
            if len(held) >= count:
                return held
            await asyncio.sleep(0.02)
        raise AssertionError(f"{count} held messages never showed; held: {held}")

    async def recorded(self, sql: str) -> list[tuple]:
        await self.session.stop()
        with duckdb.connect(str(self.session.options.db), read_only=True) as con:
            return con.execute(sql).fetchall()


async def test_hold_edit_forward_reaches_the_server_edited_and_is_recorded(rig) -> None:
    r = await rig(intercept=("to-server type=new",))
    async with r.client("User1") as one, r.client("User2") as two:
        await one.ws.send_str(new("r1", "hello <b>bold</b>"))
        [held] = await r.held()
        assert held["conn_id"] > 0 and held["sender"] == "client" and json.loads(held["text"])["id"] == "r1"
        await one.nothing("response")  # the server has not had it
        state = await r.call("GET", "/api/hands")
        assert state["held"] == 1 and [b["rule"] for b in state["breakpoints"]] == ["to-server type=new"]
        edited = new("r1", "edited by hand")
        preview = await r.call("POST", "/api/preview", {"conn": held["conn_id"], "to": "server", "text": edited,
                                                        "held": held["id"]})
        assert preview["findings"] == []
        await r.call("POST", f"/api/held/{held['id']}", {"action": "forward", "text": edited})
        assert (await one.next("response"))["id"] == "r1"
        assert (await two.next("event"))["payload"]["message"] == "edited by hand"
        assert (await r.call("GET", "/api/held"))["held"] == []
        await r.call("POST", f"/api/held/{held['id']}", {"action": "drop"}, status=404)  # decided already
    rows = await r.recorded("SELECT f.seq, f.text, f.payload->>'message', coalesce(f.delivered, 1), i.action, "
                            "i.source, i.original, i.sent, i.rule FROM frames f JOIN injections i USING (conn_id, seq)")
    [(seq, text, message, delivered, action, source, original, sent, rule)] = rows
    assert (message, delivered, action, source) == ("edited by hand", 1, "edit", "api")
    assert text == sent == edited and original == new("r1", "hello <b>bold</b>")
    assert rule == "intercept to-server type=new" and seq == held["seq"]
    shown = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "wsproxy", "show", str(r.session.options.db)],
                                    capture_output=True, text=True, timeout=60)
    assert "⚡ injected edit" in shown.stdout and "intercept to-server type=new, over the API" in shown.stdout


async def test_drop_never_reaches_the_server(rig) -> None:
    r = await rig(intercept=("to-server type=new",))
    async with r.client("User1") as one, r.client("User2") as two:
        await one.ws.send_str(new("r1", "never"))
        [held] = await r.held()
        await r.call("POST", f"/api/held/{held['id']}", {"action": "drop", "source": "ui"})
        await one.nothing("response")
        await two.nothing("event")
    rows = await r.recorded("SELECT f.payload->>'message', f.delivered, i.action, i.source, i.original "
                            "FROM frames f JOIN injections i USING (conn_id, seq)")
    assert rows == [("never", 0, "drop", "ui", new("r1", "never"))]


async def test_a_forgotten_hold_goes_out_as_it_came(rig) -> None:
    r = await rig(intercept=("to-server type=new",), hold_timeout=0.5)
    async with r.client("User1") as one:
        await one.ws.send_str(new("r1", "late"))
        await r.held()
        assert (await one.next("response", timeout=5))["id"] == "r1"
    rows = await r.recorded("SELECT coalesce(f.delivered, 1), i.action, i.source, i.detail "
                            "FROM frames f JOIN injections i USING (conn_id, seq)")
    [(delivered, action, source, detail)] = rows
    assert (delivered, action, source) == (1, "intercept", "proxy") and "--hold-timeout 0.5 s" in detail


async def test_later_messages_wait_behind_a_held_one_and_nothing_else_does(rig) -> None:
    r = await rig(intercept=("to-server type=new once",))
    async with r.client("User1") as one, r.client("User2") as two, r.client("User3") as three:
        await one.ws.send_str(new("r1", "first"))
        [held] = await r.held()
        await one.ws.send_str(new("r2", "second"))  # not selected (once), but behind r1
        await one.nothing("response")
        # another connection, and the other direction of this one, are not held
        await three.ws.send_str(new("x1", "from three", to="User1"))
        assert (await three.next("response"))["id"] == "x1"
        assert (await one.next("event"))["payload"]["message"] == "from three"
        await r.call("POST", f"/api/held/{held['id']}", {"action": "forward"})
        assert [(await one.next("response"))["id"] for _ in range(2)] == ["r1", "r2"]
        assert [(await two.next("event"))["payload"]["message"] for _ in range(2)] == ["first", "second"]
    await r.session.stop()
    ids = await asyncio.to_thread(_request_ids, r.session.options.db)
    assert ids == ["sub-User1", "r1", "r2"]


def _request_ids(db: Any) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return [row[0] for row in con.execute(
            "SELECT msg_id FROM frames WHERE msg_type = 'request' AND conn_id = (SELECT min(conn_id) FROM "
            "connections) ORDER BY seq").fetchall()]


async def test_closing_the_connection_discards_what_it_held(rig) -> None:
    r = await rig(intercept=("to-server type=new",))
    async with r.client("User2") as two:
        async with r.client("User1") as one:
            await one.ws.send_str(new("r1", "lost"))
            await r.held()
        await two.nothing("event")
        for _ in range(100):
            if not (await r.call("GET", "/api/held"))["held"]:
                break
            await asyncio.sleep(0.02)
        assert (await r.call("GET", "/api/held"))["held"] == []
    rows = await r.recorded("SELECT f.delivered, i.action, i.source, i.detail FROM frames f "
                            "JOIN injections i USING (conn_id, seq)")
    [(delivered, action, source, detail)] = rows
    assert (delivered, action, source) == (0, "drop", "proxy") and "closed while it was held" in detail


async def test_compose_to_the_client_and_to_the_server(rig) -> None:
    r = await rig()
    async with r.client("User1") as one:
        conn = (await r.call("GET", "/api/hands"))["live"][0]
        templates = (await r.call("GET", f"/api/connections/{conn}/templates"))["templates"]
        to_server = next(t for t in templates if t["label"] == "request (empty)")
        assert to_server["to"] == "server" and json.loads(to_server["text"])["id"] == "wsproxy-1"
        next_event = next(t for t in templates if t["label"] == "event with the next id (empty)")
        assert json.loads(next_event["text"])["id"] == 1  # nothing received yet
        event = json.dumps({"type": "event", "timestamp": TS, "id": 1, "eventType": "online",
                            "payload": {"userId": "Nobody"}})
        sent = await r.call("POST", f"/api/connections/{conn}/send", {"to": "client", "text": event})
        assert (await one.next("event"))["payload"] == {"userId": "Nobody"}
        text = new("wsproxy-1", "composed")
        findings = (await r.call("POST", "/api/preview", {"conn": conn, "to": "server", "text": "{oops"}))["findings"]
        assert [f["code"] for f in findings] == ["invalid-json"]
        await r.call("POST", f"/api/connections/{conn}/send", {"to": "server", "text": text})
        assert (await one.next("response"))["id"] == "wsproxy-1"
        await r.call("POST", f"/api/connections/{conn}/send", {"to": "nobody", "text": text}, status=400)
        await r.call("POST", "/api/connections/999/send", {"to": "server", "text": text}, status=404)
    rows = await r.recorded("SELECT f.seq, f.sender, f.msg_type, i.action, i.source, i.sent FROM frames f "
                            "JOIN injections i USING (conn_id, seq) ORDER BY f.seq")
    assert rows[0] == (sent["seq"], "server", "event", "compose", "api", event)
    assert rows[1][1:] == ("client", "request", "compose", "api", text)
    violations = await asyncio.to_thread(_violations, r.session.options.db)
    assert violations and all(caused for _, caused in violations), violations  # findings it causes are marked


def _violations(db: Any) -> list[tuple[str, bool]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT code, caused_by_injection FROM violations").fetchall()


async def test_resend_rewrites_a_used_request_id_and_can_open_a_new_connection(rig) -> None:
    r = await rig()
    async with r.client("User1") as one:
        await one.ws.send_str(new("r1", "once"))
        assert (await one.next("response"))["id"] == "r1"
        conn = (await r.call("GET", "/api/hands"))["live"][0]
        seq = await _seq_of(r, conn, "r1")
        again = await r.call("POST", f"/api/connections/{conn}/resend", {"from_conn": conn, "seq": seq})
        assert again["renamed"] == "wsproxy-1"
        assert (await one.next("response"))["id"] == "wsproxy-1"
        # on a new connection to the upstream, as the same user (the recorded path and query)
        fresh = await r.call("POST", "/api/resend", {"from_conn": conn, "seq": seq, "conn": None})
        assert fresh["conn_id"] != conn and fresh["renamed"] is None
        assert fresh["conn_id"] in (await r.call("GET", "/api/hands"))["live"]
        # a message from elsewhere (another recording): any text
        other = await r.call("POST", f"/api/connections/{conn}/resend", {"text": new("r1", "from elsewhere")})
        assert other["renamed"] == "wsproxy-2"
        await r.call("POST", f"/api/connections/{conn}/resend", {"from_conn": conn, "seq": 2}, status=400)  # response
    rows = await r.recorded("SELECT i.conn_id, f.msg_id, i.action, i.detail FROM injections i "
                            "JOIN frames f USING (conn_id, seq) ORDER BY i.ts")
    assert [row[1:3] for row in rows] == [("wsproxy-1", "resend"), ("r1", "resend"), ("wsproxy-2", "resend")]
    assert "renamed to wsproxy-1" in rows[0][3] and rows[1][0] == fresh["conn_id"]


async def _seq_of(r: Rig, conn: int, request_id: str) -> int:
    for _ in range(100):
        rows = (await r.session.sql.query(f"SELECT seq FROM frames WHERE conn_id = {conn} AND msg_id = '{request_id}' "
                                        "AND msg_type = 'request'")).rows
        if rows:
            return rows[0][0]
        await asyncio.sleep(0.05)
    raise AssertionError("the request was never written")


async def test_breakpoints_from_the_api(rig) -> None:
    r = await rig()
    await r.call("POST", "/api/breakpoints", {"rule": "drop to-server"}, status=400)
    point = await r.call("POST", "/api/breakpoints", {"rule": "request type=new"})
    async with r.client("User1") as one:
        await one.ws.send_str(new("r1", "held"))
        [held] = await r.held()
        await r.call("POST", f"/api/breakpoints/{point['id']}", {"enabled": False})
        await r.call("POST", f"/api/held/{held['id']}", {"action": "forward"})  # switching off holds nothing new
        assert (await one.next("response"))["id"] == "r1"
        await one.ws.send_str(new("r2", "not held"))
        assert (await one.next("response"))["id"] == "r2"
        await r.call("DELETE", f"/api/breakpoints/{point['id']}", {})
        assert (await r.call("GET", "/api/hands"))["breakpoints"] == []


async def test_the_api_refuses_what_it_must(rig, tmp_path) -> None:
    r = await rig()
    await r.call("POST", "/api/held/7", {"action": "forward"}, status=404)
    async with r.http.post(r.base + "/api/held/7", data="action=forward") as response:
        assert response.status == 415
    async with r.http.post(r.base + "/api/held/7", json={"action": "forward"},
                           headers={"Origin": "http://evil.example"}) as response:
        assert response.status == 403
    await r.call("POST", "/api/held/7", {"action": "forward", "extra": 1}, status=400)
    async with aiohttp.ClientSession() as anonymous, anonymous.get(r.base + "/api/held") as response:
        assert response.status == 403  # the token
    # `wsproxy ui` of a file has no relay to act on
    await r.session.stop()
    reader = FileReader(r.session.options.db)
    server = UiServer(reader)
    await server.start()
    try:
        async with r.http.get(server.url.split("/?")[0] + "/api/held",
                              headers={"X-Wsproxy-Token": server.token}) as response:
            assert response.status == 404 and "wsproxy record --ui" in (await response.json())["error"]
        async with r.http.get(server.url.split("/?")[0] + "/api/hands",
                              headers={"X-Wsproxy-Token": server.token}) as response:
            assert response.status == 200 and (await response.json())["available"] is False
    finally:
        await server.stop()
        reader.close()


async def test_stopping_the_proxy_with_a_message_held_records_it(rig) -> None:
    r = await rig(intercept=("to-server type=new",))
    async with r.client("User1") as one:
        await one.ws.send_str(new("r1", "held at the stop"))
        await r.held()
        await asyncio.wait_for(r.session.stop(), 20)  # Ctrl-C: nothing waits for a person
    with duckdb.connect(str(r.session.options.db), read_only=True) as con:
        rows = con.execute("SELECT f.payload->>'message', f.delivered, i.action, i.source FROM frames f "
                           "JOIN injections i USING (conn_id, seq)").fetchall()
    assert rows == [("held at the stop", 0, "drop", "proxy")]


async def test_a_ping_behind_a_held_message_waits_its_turn_and_drops_nothing(rig) -> None:
    r = await rig(intercept=("to-server type=new",))
    async with r.client("User1") as one:
        await one.ws.send_str(new("r1", "held"))
        [held] = await r.held()
        await one.ws.ping(b"are you there")  # read on behind the held message: not a close
        await asyncio.sleep(0.3)
        assert (await r.call("GET", "/api/held"))["held"] == [held]
        await r.call("POST", f"/api/held/{held['id']}", {"action": "forward"})
        assert (await one.next("response"))["id"] == "r1"
    rows = await r.recorded("SELECT kind, coalesce(delivered, 1) FROM frames WHERE sender = 'client' AND "
                            "kind IN ('ping', 'text') AND seq > 2 ORDER BY seq")
    assert rows == [("text", 1), ("ping", 1)]
