"""`record --inject` over real sockets: aiohttp clients through the recording proxy in front of the
reference chat server; what the client saw vs the `injections` table vs what the server sent."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp
import pytest

from helpers import recorded
from wsproxy.core.inject import parse_rule


class Peer:
    """A raw client: sends envelopes, keeps what arrives with its arrival time."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.got, self.closed_with = ws, [], None
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, url: str, user: str) -> Peer:
        return cls(await http.ws_connect(f"{url}/chat?user={user}"))

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                try:
                    value = json.loads(msg.data)
                except ValueError:
                    value = {"invalid": msg.data}
                self.got.append((time.monotonic(), value))
        self.closed_with = self.ws.close_code

    async def request(self, rid: str, ptype: str, payload: dict) -> None:
        await self.ws.send_str(json.dumps({"type": "request", "timestamp": round(time.time(), 3), "id": rid,
                                           "payloadType": ptype, "payload": payload}))

    async def typing(self, chat_id: str) -> None:
        await self.ws.send_str(json.dumps({"type": "event", "timestamp": round(time.time(), 3), "eventType": "typing",
                                           "payload": {"chatId": chat_id}}))

    def ids(self, kind: str = "response") -> list:
        return [m.get("id") for _, m in self.got if m.get("type") == kind]

    def events(self, event_type: str) -> list[dict]:
        return [m for _, m in self.got if m.get("type") == "event" and m.get("eventType") == event_type]

    async def settle(self, count: int, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < count and time.monotonic() < deadline:  # noqa: ASYNC110 - a reader task fills self.got
            await asyncio.sleep(0.01)


async def start(proxy, chat_server, *rules: str, seed: int = 0):
    return await proxy(chat_server.url, inject=[parse_rule(r) for r in rules], seed=seed)


async def test_drop_response_type_new_once(chat_server, proxy) -> None:
    session = await start(proxy, chat_server, "drop response type=new once")
    async with aiohttp.ClientSession() as http:
        user = await Peer.connect(http, session.url, "A")
        await user.request("s", "subscribe", {})
        await user.request("n1", "new", {"chatId": "B", "message": "one"})
        await user.request("n2", "new", {"chatId": "B", "message": "two"})
        await user.settle(2)
        await asyncio.sleep(0.2)
        assert user.ids() == ["s", "n2"]  # the first new's response never came; the second did
        await user.ws.close()
    await session.stop()
    db = session.options.db
    [(seq, action, rule, sender)] = recorded(db, "SELECT seq, action, rule, sender FROM injections")
    assert (action, rule, sender) == ("drop", "drop response type=new once", "server")
    # the server did send it: recorded, marked as not delivered
    assert recorded(db, f"SELECT msg_type, msg_id, delivered FROM frames WHERE seq = {seq}") == [("response", "n1", 0)]
    assert recorded(db, "SELECT count(*) FROM frames WHERE delivered <> 1") == [(1,)]
    # what the client did not get is what the checker judged: an unanswered request, caused by the injection
    assert recorded(db, "SELECT code, caused_by_injection FROM violations") == [("unanswered-request", True)]
    assert session.relay.counters.injected == 1 and session.live_check.caused_by_injection == 1


async def test_duplicate_event_type_new(chat_server, proxy) -> None:
    session = await start(proxy, chat_server, "duplicate event type=new")
    async with aiohttp.ClientSession() as http:
        a, b = await Peer.connect(http, session.url, "A"), await Peer.connect(http, session.url, "B")
        await a.request("s", "subscribe", {})
        await b.request("s", "subscribe", {})
        await a.settle(1)
        await b.settle(1)
        await a.request("n1", "new", {"chatId": "B", "message": "hi"})
        await b.settle(3)
        assert [e["payload"]["message"] for e in b.events("new")] == ["hi", "hi"]  # delivered twice
        assert a.ids() == ["s", "n1"]  # the response untouched
        await a.ws.close()
        await b.ws.close()
    await session.stop()
    db = session.options.db
    assert recorded(db, "SELECT action FROM injections") == [("duplicate",)]
    assert recorded(db, "SELECT delivered FROM frames WHERE event_type = 'new'") == [(2,)]
    codes = recorded(db, "SELECT code, caused_by_injection FROM violations")
    assert codes and all(caused for _, caused in codes) and ("event-id-not-increasing", True) in codes


async def test_delay_holds_only_the_selected_message(chat_server, proxy) -> None:
    session = await start(proxy, chat_server, "delay=400ms event type=typing")
    async with aiohttp.ClientSession() as http:
        a, b = await Peer.connect(http, session.url, "A"), await Peer.connect(http, session.url, "B")
        for peer in (a, b):
            await peer.request("s", "subscribe", {})
            await peer.settle(1)
        sent = time.monotonic()
        await a.typing("B")
        await a.request("n1", "new", {"chatId": "B", "message": "after typing"})
        await b.settle(3, timeout=3)
        kinds = [m.get("eventType") or m.get("type") for _, m in b.got]
        assert kinds == ["response", "new", "typing"]  # the new event overtook the delayed typing
        typing_at = next(t for t, m in b.got if m.get("eventType") == "typing")
        new_at = next(t for t, m in b.got if m.get("eventType") == "new")
        assert 0.35 <= typing_at - sent < 1.5 and new_at - sent < 0.3
        await a.ws.close()
        await b.ws.close()
    await session.stop()
    assert recorded(session.options.db, "SELECT action, detail FROM injections") == [("delay", "400 ms")]


async def test_close_to_client_after_three_closes_both_legs_with_the_code(proxy) -> None:
    from aiohttp import web
    server_saw: list[int | None] = []

    async def echo(request: web.Request) -> web.WebSocketResponse:  # an upstream that says how it was closed
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str(msg.data)
        server_saw.append(ws.close_code)
        return ws

    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        session = await proxy(f"ws://127.0.0.1:{runner.addresses[0][1]}", inject=[parse_rule("close=4001 to-client after=3")])
        async with aiohttp.ClientSession() as http:
            a = await Peer.connect(http, session.url, "A")
            for n in range(6):
                await a.request(f"r{n}", "new", {"chatId": "A", "message": "x"})
            await asyncio.wait_for(a.reader, 5)
        assert a.closed_with == 4001 and len(a.got) == 3  # three server messages, then the close
        for _ in range(100):
            if server_saw:
                break
            await asyncio.sleep(0.02)
        assert server_saw == [4001]  # the server's leg was closed with the same code
        await session.stop()
    finally:
        await runner.cleanup()
    db = session.options.db
    assert recorded(db, "SELECT close_code, closed_by FROM connections") == [(4001, "proxy")]
    [(seq, detail)] = recorded(db, "SELECT seq, detail FROM injections WHERE action = 'close'")
    assert detail == "closed both legs with 4001"
    assert recorded(db, f"SELECT sender, msg_id, delivered FROM frames WHERE seq = {seq}") == [("server", "r3", 0)]


async def test_corrupt_sends_invalid_json_and_the_client_side_judges_it(chat_server, proxy) -> None:
    session = await start(proxy, chat_server, "corrupt response type=subscribe")
    async with aiohttp.ClientSession() as http:
        a = await Peer.connect(http, session.url, "A")
        await a.request("s", "subscribe", {})
        await a.settle(1)
        assert "invalid" in a.got[0][1] and a.got[0][1]["invalid"].endswith("<corrupted by wsproxy --inject>")
        await a.ws.close()
    await session.stop()
    db = session.options.db
    [(detail,)] = recorded(db, "SELECT detail FROM injections WHERE action = 'corrupt'")
    assert detail == a.got[0][1]["invalid"]  # what was delivered instead
    assert recorded(db, "SELECT msg_type, delivered FROM frames WHERE sender = 'server' AND kind = 'text'") == [("response", 0)]
    assert ("invalid-json", True) in recorded(db, "SELECT code, caused_by_injection FROM violations")


async def test_reorder_sends_the_message_after_the_next_one(chat_server, proxy) -> None:
    session = await start(proxy, chat_server, "reorder response type=new once")
    async with aiohttp.ClientSession() as http:
        a = await Peer.connect(http, session.url, "A")
        await a.request("s", "subscribe", {})
        await a.settle(1)
        for n in (1, 2, 3):
            await a.request(f"n{n}", "new", {"chatId": "B", "message": str(n)})
        await a.settle(4)
        assert a.ids() == ["s", "n2", "n1", "n3"]
        await a.ws.close()
    await session.stop()
    assert recorded(session.options.db, "SELECT action FROM injections") == [("reorder",)]


async def test_pause_holds_a_direction_and_keeps_its_order(chat_server, proxy) -> None:
    session = await start(proxy, chat_server, "pause=300ms to-server nth=2")
    async with aiohttp.ClientSession() as http:
        a = await Peer.connect(http, session.url, "A")
        started = time.monotonic()
        await a.request("s", "subscribe", {})
        for n in (1, 2, 3):
            await a.request(f"n{n}", "new", {"chatId": "B", "message": str(n)})
        await a.settle(4)
        assert a.ids() == ["s", "n1", "n2", "n3"]
        arrivals = [t - started for t, _ in a.got]
        assert arrivals[0] < 0.25 and 0.28 <= arrivals[1] < 1.5  # everything from the 2nd on waited
        await a.ws.close()
    await session.stop()
    assert recorded(session.options.db, "SELECT action, detail FROM injections") == [("pause", "held 300 ms")]


async def test_conn_selector_and_other_connections_untouched(chat_server, proxy) -> None:
    session = await start(proxy, chat_server, "drop response conn=user:B")
    async with aiohttp.ClientSession() as http:
        a, b = await Peer.connect(http, session.url, "A"), await Peer.connect(http, session.url, "B")
        await a.request("s", "subscribe", {})
        await b.request("s", "subscribe", {})
        await a.settle(1)
        await asyncio.sleep(0.2)
        assert a.ids() == ["s"] and b.ids() == []
        await a.ws.close()
        await b.ws.close()
    await session.stop()
    assert recorded(session.options.db, "SELECT c.query, i.action FROM injections i JOIN connections c USING (conn_id)") \
        == [("user=B", "drop")]


async def test_rate_with_a_seed_repeats(chat_server, proxy, tmp_path) -> None:
    async def run(db) -> list:
        session = await proxy(chat_server.url, db=db, inject=[parse_rule("drop response rate=0.5")], seed=11)
        async with aiohttp.ClientSession() as http:
            a = await Peer.connect(http, session.url, "A")
            await a.request("s", "subscribe", {})
            for n in range(20):
                await a.request(f"n{n}", "new", {"chatId": "B", "message": "x"})
            await asyncio.sleep(0.5)
            await a.ws.close()
        await session.stop()
        return a.ids()
    first, second = await run(tmp_path / "one.duckdb"), await run(tmp_path / "two.duckdb")
    assert first == second and 3 < len(first) < 19


# --- the command ---

async def test_record_inject_is_loud_counts_and_refuses_bad_rules(chat_server, tmp_path, unused_tcp_port) -> None:
    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin"}
    bad = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsproxy", "record", "--upstream", chat_server.url, "--inject", "drop responses",
        stderr=asyncio.subprocess.PIPE, env=env)
    _, stderr = await bad.communicate()
    assert bad.returncode == 2
    assert stderr.decode().strip().startswith("Error: in 'drop responses': 'responses' is not an action or a selector;")

    rules = tmp_path / "rules.toml"
    rules.write_text('[[inject]]\naction = "drop"\nenvelope = "response"\ntype = "new"\nonce = true\n')
    db = tmp_path / "rec.duckdb"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsproxy", "record", "--upstream", chat_server.url, "--listen",
        f"127.0.0.1:{unused_tcp_port}", "--db", str(db), "--inject-file", str(rules), "--quiet",
        stderr=asyncio.subprocess.PIPE, env=env)
    banner = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
    assert banner.startswith("INJECTING FAULTS (1 rule(s), seed 0): drop response type=new once"), banner
    async with aiohttp.ClientSession() as http:
        a = await Peer.connect(http, f"ws://127.0.0.1:{unused_tcp_port}", "A")
        await a.request("s", "subscribe", {})
        await a.request("n1", "new", {"chatId": "B", "message": "x"})
        await a.request("n2", "new", {"chatId": "B", "message": "x"})
        await a.settle(2)
        await a.ws.close()
    process.send_signal(2)
    rest = (await asyncio.wait_for(process.stderr.read(), 20)).decode()
    await process.wait()
    assert process.returncode == 0, rest
    assert "1 injected action(s) (SELECT * FROM injections WHERE session_id = 1)" in rest
    assert "(1 caused by injections)" in rest
    assert a.ids() == ["s", "n2"]


@pytest.mark.parametrize("rule", ["drop response type=new once", "duplicate event type=new",
                                  "delay=400ms event type=typing", "close=4001 to-client after=3"])
def test_the_issue_examples_parse_exactly_as_written(rule) -> None:
    assert parse_rule(rule).text == rule


async def test_wsproxy_check_offline_judges_what_was_delivered_as_live(chat_server, proxy) -> None:
    from wsproxy.inspect.check import check_recording
    session = await start(proxy, chat_server, "drop response type=new once", "duplicate event type=new",
                          "corrupt response type=edit")
    async with aiohttp.ClientSession() as http:
        a, b = await Peer.connect(http, session.url, "A"), await Peer.connect(http, session.url, "B")
        for peer in (a, b):
            await peer.request("s", "subscribe", {})
            await peer.settle(1)
        await a.request("n1", "new", {"chatId": "B", "message": "one"})  # response dropped; event duplicated
        await a.request("n2", "new", {"chatId": "B", "message": "two"})
        await a.settle(2)
        message_id = a.got[-1][1]["payload"]["messageId"]
        await a.request("e1", "edit", {"messageId": message_id, "message": "2"})  # its response corrupted
        await a.settle(3)
        await b.settle(5)
        await a.ws.close()
        await b.ws.close()
    await session.stop()
    db = session.options.db
    live = sorted(recorded(db, "SELECT conn_id, seq, code FROM violations"))
    assert {code for _, _, code in live} >= {"unanswered-request", "event-id-not-increasing", "invalid-json"}
    assert sorted((f.conn_id, f.seq, f.code) for f in check_recording(db).findings) == live


async def test_the_cookbook_retry_example_runs(tmp_path) -> None:
    import importlib.util
    from pathlib import Path
    path = Path(__file__).parent.parent / "docs" / "examples" / "test_client_retry.py"
    spec = importlib.util.spec_from_file_location("cookbook_retry", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    await module.test_my_client_retries_a_lost_response(tmp_path)


async def test_replay_inject_makes_the_mock_server_misbehave(chat_server, proxy, tmp_path) -> None:
    from wsproxy.core.inject import Injector
    from wsproxy.core.replay_plan import ReplayPlan
    from wsproxy.replay.server import start_replay
    from wsproxy.replay.source import load_recording
    session = await proxy(chat_server.url)
    async with aiohttp.ClientSession() as http:
        a = await Peer.connect(http, session.url, "A")
        await a.request("s", "subscribe", {})
        await a.request("n1", "new", {"chatId": "B", "message": "x"})
        await a.settle(2)
        await a.ws.close()
    await session.stop()
    recording = load_recording(session.options.db)
    injector = Injector([parse_rule("duplicate response type=subscribe"), parse_rule("close=4002 response type=new")])
    replay = await start_replay(recording, ReplayPlan(recording), injector=injector)
    try:
        async with aiohttp.ClientSession() as http:
            a = await Peer.connect(http, replay.url, "A")
            await a.request("live-s", "subscribe", {})
            await a.request("live-n", "new", {"chatId": "B", "message": "x"})
            await asyncio.wait_for(a.reader, 5)
    finally:
        await replay.stop()
    assert a.ids() == ["live-s", "live-s"] and a.closed_with == 4002  # duplicated, then closed instead of answered
    assert replay.server.counters.injected == 2


async def test_replay_refuses_rules_on_what_the_client_sends(tmp_path) -> None:
    code, _, stderr = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsproxy", "replay", str(tmp_path / "none.duckdb"), "--inject", "drop request",
        stderr=asyncio.subprocess.PIPE, env={"PATH": "/usr/bin:/bin"}), None, None
    _, stderr = await code.communicate()
    assert code.returncode == 2
    assert stderr.decode().strip() == ("Error: replay --inject acts on what the mock server sends: 'drop request' "
                                       "selects what the client sends (use it with `wsproxy record`)")


async def test_show_and_the_jsonl_export_show_the_fault_where_it_happened(chat_server, proxy, tmp_path) -> None:
    from wsproxy.inspect.exporter import export_session
    session = await start(proxy, chat_server, "drop response type=new once")
    async with aiohttp.ClientSession() as http:
        a = await Peer.connect(http, session.url, "A")
        await a.request("s", "subscribe", {})
        await a.request("n1", "new", {"chatId": "B", "message": "x"})
        await a.settle(1)
        await asyncio.sleep(0.2)
        await a.ws.close()
    await session.stop()
    db = session.options.db
    shown = await asyncio.create_subprocess_exec(sys.executable, "-m", "wsproxy", "show", str(db),
                                                 stdout=asyncio.subprocess.PIPE, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    stdout, _ = await shown.communicate()
    lines = stdout.decode().splitlines()
    at = next(i for i, line in enumerate(lines) if "id=n1" in line and "response" in line)
    assert "⚡ injected drop  (--inject drop response type=new once)" in lines[at + 1]
    out = tmp_path / "s.jsonl"
    export_session(db, out, "jsonl", 1)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    [injection] = [r for r in records if r["record"] == "injection"]
    assert injection["action"] == "drop" and injection["rule"] == "drop response type=new once"
    dropped = next(r for r in records if r["record"] == "frame" and r["seq"] == injection["seq"])
    assert '"id":"n1"' in dropped["text"].replace(" ", "")  # the origin's frame is there, as it was sent


# --- every action with every kind of selector: the relay does exactly what the pure rules say ---

ACTIONS = ["drop", "duplicate", "delay=50ms", "corrupt", "reorder", "close=4003", "pause=50ms"]
SELECTORS = ["to-client", "to-server", "request", "response", "event", "type=new", "conn=user:B", "once", "nth=2",
             "after=2", "rate=0.5"]
DELIVERED = {"drop": 0, "corrupt": 0, "close": 0, "duplicate": 2}


async def converse(url: str) -> dict[str, list]:
    async def tolerant(send) -> None:  # a close= rule may have closed the socket meanwhile
        try:
            await send
        except (ConnectionError, aiohttp.ClientError):
            pass

    async with aiohttp.ClientSession() as http:
        a, b = await Peer.connect(http, url, "A"), await Peer.connect(http, url, "B")
        await tolerant(a.request("s", "subscribe", {}))
        await tolerant(b.request("s", "subscribe", {}))
        await asyncio.sleep(0.1)
        for n in (1, 2, 3):
            await tolerant(a.request(f"n{n}", "new", {"chatId": "B", "message": str(n)}))
            await asyncio.sleep(0.03)
        await tolerant(b.typing("A"))
        await asyncio.sleep(0.2)
        for peer in (a, b):
            await peer.ws.close()
            await peer.reader
    return {"user=A": a.got, "user=B": b.got}


@pytest.mark.parametrize("selector", SELECTORS)
@pytest.mark.parametrize("action", ACTIONS)
async def test_each_action_with_each_selector_does_what_the_rule_says(chat_server, proxy, action, selector) -> None:
    from wsproxy.core.inject import Injector, Seen
    rule = parse_rule(f"{action} {selector}")
    session = await proxy(chat_server.url, inject=[rule])
    received = await converse(session.url)
    await session.stop()
    db = session.options.db
    # the oracle: the pure injector over what the origins sent, in the order the relay saw it
    oracle = Injector([rule])
    for conn_id, query in recorded(db, "SELECT conn_id, query FROM connections"):
        oracle.opened(conn_id, dict(part.split("=", 1) for part in query.split("&")))
    expected = set()
    for conn_id, seq, sender, msg_type, type_name, msg_id in recorded(
            db, "SELECT conn_id, seq, sender, msg_type, coalesce(payload_type, event_type), msg_id FROM frames "
                "WHERE kind IN ('text', 'binary') ORDER BY ts, conn_id, seq"):
        if oracle.fire(Seen(conn_id, sender, msg_type, type_name, msg_id)):
            expected.add((conn_id, seq))
    done = set(recorded(db, "SELECT conn_id, seq FROM injections"))
    assert done == expected and done, (rule.text, done, expected)
    name = rule.action
    marks = {d for (d,) in recorded(db, "SELECT DISTINCT f.delivered FROM injections i JOIN frames f USING (conn_id, seq)")}
    if name in ("delay", "reorder"):  # 0 for one the connection's end caught still waiting
        assert marks <= {0, 1} and 1 in marks
    else:
        assert marks == {DELIVERED.get(name, 1)}
    untouched = recorded(db, "SELECT count(*) FROM frames f WHERE kind IN ('text', 'binary') AND delivered <> 1 "
                             "AND NOT EXISTS (SELECT 1 FROM injections i WHERE i.conn_id = f.conn_id AND i.seq = f.seq)")
    assert untouched == [(0,)]
    assert recorded(db, "SELECT DISTINCT action, rule FROM injections") == [(name, rule.text)]
    if name not in ("delay", "reorder"):  # the order of everything else is kept
        for query, got in received.items():
            sent = [json.loads(text) for text, times in recorded(
                db, "SELECT f.text, f.delivered FROM frames f JOIN connections c USING (conn_id) WHERE c.query = ? "
                    "AND f.sender = 'server' AND f.kind = 'text' ORDER BY f.seq", [query]) for _ in range(times)]
            valid = [m for _, m in got if "invalid" not in m]
            # (a client may close before the last of it arrives: the offline of the other, say)
            assert valid == sent[:len(valid)] and len(valid) >= len(sent) - 2, query


async def test_the_diagram_notes_the_injection_and_pause_does_not_hold_other_connections(chat_server, proxy) -> None:
    from wsproxy.inspect.diagram import build, select, to_mermaid
    from wsproxy.inspect.timeline import timeline
    session = await start(proxy, chat_server, "pause=500ms to-client conn=user:A")
    async with aiohttp.ClientSession() as http:
        a, b = await Peer.connect(http, session.url, "A"), await Peer.connect(http, session.url, "B")
        started = time.monotonic()
        await a.request("s", "subscribe", {})
        await b.request("s", "subscribe", {})
        await b.settle(1)
        b_at = b.got[0][0] - started
        await a.settle(1)
        a_at = a.got[0][0] - started
        await a.ws.close()
        await b.ws.close()
    await session.stop()
    assert b_at < 0.3 and a_at >= 0.45  # A's direction was held; B's connection was not
    text = to_mermaid(build(select(timeline(session.options.db, 1), None)))
    assert "Note over C1: ⚡ injected pause#58; held 500 ms" in text  # (Mermaid: ":" as #58;)


async def test_a_delayed_or_held_message_whose_connection_ends_first_is_recorded_as_not_delivered(chat_server, proxy) -> None:
    session = await start(proxy, chat_server, "delay=2s response type=subscribe", "reorder response type=new")
    async with aiohttp.ClientSession() as http:
        a = await Peer.connect(http, session.url, "A")
        await a.request("s", "subscribe", {})
        await a.request("n1", "new", {"chatId": "B", "message": "x"})  # held until a next one that never comes
        await asyncio.sleep(0.3)
        await a.ws.close()
    await session.stop()
    db = session.options.db
    assert a.ids() == []
    # nothing lost from the recording, nothing claimed delivered that was not: the delayed response was
    # still waiting when the connection ended; the held one went out before the server's close reply
    assert recorded(db, "SELECT msg_id, delivered FROM frames WHERE msg_type = 'response' ORDER BY seq") == [
        ("s", 0), ("n1", 1)]
    assert recorded(db, "SELECT action FROM injections ORDER BY seq") == [("delay",), ("reorder",)]
