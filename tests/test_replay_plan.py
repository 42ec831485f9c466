"""The pure replay plan, driven by hand-made recordings: binding, matching, ids, causality, timing."""

from __future__ import annotations

import json

import pytest

from wsproxy.core.recorded import RecordedConnection, RecordedFrame, RecordedSession
from wsproxy.core.replay_plan import ReplayPlan, Send, TimingError, parse_timing, render

pytestmark = pytest.mark.core  # the pure core: literal data in, values out (pytest -m core)

MS = 1_000  # µs


def req(rid: str, ptype: str, payload: dict) -> str:
    return json.dumps({"type": "request", "timestamp": 1700000000.0, "id": rid, "payloadType": ptype, "payload": payload})


def resp(rid: str, payload: dict, t: float = 1700000000.0) -> str:
    return json.dumps({"type": "response", "timestamp": t, "id": rid, "payload": payload})


def ev(event_type: str, eid: int | None, payload: dict) -> str:
    body = {"type": "event", "timestamp": 1700000000.0, "eventType": event_type, "payload": payload}
    if eid is not None:
        body["id"] = eid
    return json.dumps(body)


class Rec:
    """Builds a recording: frames get increasing times in the order they are added."""

    def __init__(self) -> None:
        self.conns: dict[int, RecordedConnection] = {}
        self.t = 0

    def open(self, conn: int, query: str, path: str = "/chat") -> Rec:
        self.t += 10 * MS
        self.conns[conn] = RecordedConnection(conn, path, query, self.t)
        return self

    def frame(self, conn: int, sender: str, text: str | None = None, kind: str = "text", gap: int = 10 * MS,
              close_code: int | None = None) -> Rec:
        self.t += gap
        c = self.conns[conn]
        c.frames.append(RecordedFrame(conn, len(c.frames) + 1, self.t, sender, kind, text, None, close_code))
        return self

    def client(self, conn: int, text: str, gap: int = 10 * MS) -> Rec:
        return self.frame(conn, "client", text, gap=gap)

    def server(self, conn: int, text: str, gap: int = 10 * MS) -> Rec:
        return self.frame(conn, "server", text, gap=gap)

    def session(self) -> RecordedSession:
        return RecordedSession(1, "test", list(self.conns.values()))


def texts(sends: list[Send], now: int = 0) -> list[dict]:
    return [json.loads(render(s, now)[1]) for s in sends]


def overview() -> RecordedSession:
    """A subscribes and sends a message; B gets the event; A gets delivered."""
    r = Rec().open(1, "user=A").server(1, ev("typing", None, {"userId": "B"})).open(2, "user=B")
    r.client(1, req("a1", "subscribe", {})).server(1, resp("a1", {"lastEventId": 0, "count": 0}))
    r.client(2, req("b1", "subscribe", {})).server(2, resp("b1", {"lastEventId": 0, "count": 0}))
    r.client(1, req("a2", "new", {"chatId": "B", "message": "hi"})).server(1, resp("a2", {"messageId": 7}))
    r.server(2, ev("new", 1, {"messageId": 7, "chatId": "A", "from": "A", "message": "hi"}))
    r.client(2, req("b2", "delivered", {"messageId": 7})).server(2, resp("b2", {}))
    r.server(1, ev("delivered", 1, {"messageId": 7, "userId": "B"}))
    return r.session()


def test_binding_prefers_the_same_path_and_query_then_recorded_order() -> None:
    plan = ReplayPlan(overview())
    assert plan.bind("/chat", "user=B", {}, [], 0).slot == 2
    assert plan.bind("/other", "user=Z", {}, [], 0).slot == 1  # the next unbound one
    refused = plan.bind("/chat", "user=A", {}, [], 0)
    assert refused.slot is None and "all 2 recorded connection(s) are taken" in refused.error


def test_binding_by_a_query_key() -> None:
    plan = ReplayPlan(overview(), bind_key="query:user")
    assert plan.bind("/elsewhere", "user=B&x=1", {}, [], 0).slot == 2
    refused = plan.bind("/chat", "user=Q", {}, [], 0)
    assert refused.slot is None and "query:user='Q'" in refused.error


def test_messages_recorded_before_the_first_client_message_go_out_at_connect() -> None:
    plan = ReplayPlan(overview())
    slot = plan.bind("/chat", "user=A", {}, [], 0).slot
    sends = plan.connected(slot, 5)
    assert [m["eventType"] for m in texts(sends)] == ["typing"] and sends[0].at_us == 5


def test_an_event_caused_by_another_client_connecting_waits_for_it() -> None:
    r = Rec().open(1, "user=A").client(1, req("a1", "subscribe", {})).server(1, resp("a1", {"lastEventId": 0, "count": 0}))
    r.open(2, "user=B").server(1, ev("online", None, {"userId": "B"}))
    plan = ReplayPlan(r.session())
    plan.connected(plan.bind("/chat", "user=A", {}, [], 0).slot, 0)
    sends, _ = plan.client_message(1, "text", req("a1", "subscribe", {}), 1)
    assert [m["type"] for m in texts(sends)] == ["response"]
    sends = plan.connected(plan.bind("/chat", "user=B", {}, [], 0).slot, 2)
    assert [(s.slot, m["eventType"]) for s, m in zip(sends, texts(sends), strict=True)] == [(1, "online")]


def test_the_response_carries_the_live_request_id() -> None:
    plan = ReplayPlan(overview())
    plan.connected(plan.bind("/chat", "user=A", {}, [], 0).slot, 0)
    sends, divergences = plan.client_message(1, "text", req("live-XYZ", "subscribe", {}), 1)
    assert divergences == [] and [m["id"] for m in texts(sends)] == ["live-XYZ"]


def test_causality_across_connections_whatever_the_connect_order() -> None:
    plan = ReplayPlan(overview())
    plan.connected(plan.bind("/chat", "user=B", {}, [], 0).slot, 0)  # B first
    sends, _ = plan.client_message(2, "text", req("b1", "subscribe", {}), 1)
    assert [m["type"] for m in texts(sends)] == ["response"]  # not yet the event A causes
    plan.connected(plan.bind("/chat", "user=A", {}, [], 0).slot, 2)
    plan.client_message(1, "text", req("a1", "subscribe", {}), 3)
    sends, _ = plan.client_message(1, "text", req("a2", "new", {"chatId": "B", "message": "hi"}), 4)
    assert [(s.slot, m["type"], m.get("eventType")) for s, m in zip(sends, texts(sends), strict=True)] == [
        (1, "response", None), (2, "event", "new")]


def test_strict_mismatch_answers_replay_mismatch_and_waits_for_the_right_message() -> None:
    plan = ReplayPlan(overview())
    plan.connected(plan.bind("/chat", "user=A", {}, [], 0).slot, 0)
    sends, divergences = plan.client_message(1, "text", req("x", "new", {"chatId": "B", "message": "hi"}), 1)
    [error] = texts(sends)
    assert error["id"] == "x" and error["payload"]["error"]["code"] == "replay_mismatch"
    assert "expected request subscribe {}" in error["payload"]["error"]["message"]
    assert [d.kind for d in divergences] == ["mismatch"] and "recorded seq 2" in divergences[0].message
    sends, divergences = plan.client_message(1, "text", req("y", "subscribe", {}), 2)
    assert divergences == [] and texts(sends)[0]["payload"] == {"lastEventId": 0, "count": 0}


def test_loose_matching_takes_the_closest_and_reports_what_it_skipped() -> None:
    r = Rec().open(1, "user=A")
    r.client(1, req("r1", "read", {"messageId": 1})).server(1, resp("r1", {}))
    r.client(1, req("r2", "new", {"chatId": "B", "message": "one"})).server(1, resp("r2", {"messageId": 1}))
    r.client(1, req("r3", "new", {"chatId": "B", "message": "two"})).server(1, resp("r3", {"messageId": 2}))
    plan = ReplayPlan(r.session(), match="loose")
    plan.connected(plan.bind("/chat", "user=A", {}, [], 0).slot, 0)
    sends, divergences = plan.client_message(1, "text", req("L", "new", {"chatId": "B", "message": "two"}), 1)
    assert [m["payload"] for m in texts(sends)] == [{"messageId": 2}]  # no responses to requests never sent
    assert [d.kind for d in divergences] == ["skipped", "skipped"]


def test_loose_reports_a_payload_that_differs() -> None:
    r = (Rec().open(1, "user=A").client(1, req("r1", "new", {"chatId": "B", "message": "one"}))
         .server(1, resp("r1", {"messageId": 1})))
    plan = ReplayPlan(r.session(), match="loose")
    plan.connected(plan.bind("/chat", "user=A", {}, [], 0).slot, 0)
    sends, divergences = plan.client_message(1, "text", req("q", "new", {"chatId": "B", "message": "changed"}), 1)
    assert texts(sends)[0]["id"] == "q" and [d.kind for d in divergences] == ["payload-differs"]


def test_a_message_after_the_recorded_ones_is_unexpected() -> None:
    r = Rec().open(1, "user=A")
    plan = ReplayPlan(r.session())
    plan.connected(plan.bind("/chat", "user=A", {}, [], 0).slot, 0)
    sends, divergences = plan.client_message(1, "text", req("z", "read", {"messageId": 1}), 1)
    assert texts(sends)[0]["payload"]["error"]["code"] == "replay_mismatch"
    assert [d.kind for d in divergences] == ["unexpected"]


def test_closing_early_is_reported_and_releases_the_others() -> None:
    plan = ReplayPlan(overview())
    plan.connected(plan.bind("/chat", "user=B", {}, [], 0).slot, 0)
    plan.client_message(2, "text", req("b1", "subscribe", {}), 1)
    plan.connected(plan.bind("/chat", "user=A", {}, [], 0).slot, 1)
    divergences = plan.client_closed(1, 2)  # A leaves without sending anything
    assert [d.kind for d in divergences] == ["closed-early"] and "2 recorded message(s) not sent" in divergences[0].message
    assert [m.get("eventType") for m in texts(plan.release(3))] == ["new"]  # B no longer waits for A


def test_the_server_closing_is_replayed_and_close_replies_are_not() -> None:
    r = Rec().open(1, "user=A").client(1, req("r1", "read", {"messageId": 1})).server(1, resp("r1", {}))
    r.frame(1, "server", "going away", kind="close", close_code=4001)
    r.frame(1, "client", "going away", kind="close", close_code=4001)
    plan = ReplayPlan(r.session())
    plan.connected(plan.bind("/chat", "user=A", {}, [], 0).slot, 0)
    sends, _ = plan.client_message(1, "text", req("r1", "read", {"messageId": 1}), 1)
    assert [render(s, 1)[0] for s in sends] == ["text", "close"] and render(sends[1], 1)[1] == (4001, "going away")


def test_a_server_that_vanished_is_replayed_as_its_recorded_close() -> None:
    r = Rec().open(1, "user=A").server(1, ev("online", None, {"userId": "B"}))
    r.conns[1].closed_by, r.conns[1].close_code, r.conns[1].close_reason = "server", 1011, "upstream went away"
    plan = ReplayPlan(r.session())
    sends = plan.connected(plan.bind("/chat", "user=A", {}, [], 0).slot, 0)
    assert render(sends[-1], 0) == ("close", (1011, "upstream went away"))


def test_recorded_timing_keeps_gaps_times_the_scale() -> None:
    r = Rec().open(1, "user=A")
    r.server(1, ev("online", None, {"userId": "B"}), gap=100 * MS).server(1, ev("offline", None, {"userId": "B"}), gap=300 * MS)
    plan = ReplayPlan(r.session(), scale=0.5)
    sends = plan.connected(plan.bind("/chat", "user=A", {}, [], 1_000_000).slot, 1_000_000)
    assert [s.at_us for s in sends] == [1_000_000 + 50 * MS, 1_000_000 + 200 * MS]
    asap = ReplayPlan(r.session())
    assert [s.at_us for s in asap.connected(asap.bind("/chat", "user=A", {}, [], 7).slot, 7)] == [7, 7]


def test_loop_starts_over_when_everything_was_replayed() -> None:
    plan = ReplayPlan(Rec().open(1, "user=A").session(), loop=True)
    plan.connected(plan.bind("/chat", "user=A", {}, [], 0).slot, 0)
    assert plan.bind("/chat", "user=A", {}, [], 1).slot is None  # still in use
    plan.client_closed(1, 2)
    assert plan.bind("/chat", "user=A", {}, [], 3).slot == 1


def test_render_shifts_timestamps_in_their_unit() -> None:
    frame = RecordedFrame(1, 1, 1_000_000, "server", "text", json.dumps({"type": "event", "timestamp": 1700000000,
                                                                         "eventType": "x"}))
    assert json.loads(render(Send(1, frame, 0), 3_500_000)[1])["timestamp"] == 1700000002  # int stays int
    ms = RecordedFrame(1, 1, 1_000_000, "server", "text", '{"type":"event","timestamp":1700000000000.0,"eventType":"x"}')
    assert json.loads(render(Send(1, ms, 0), 3_500_000)[1])["timestamp"] == 1700000002500.0
    raw = RecordedFrame(1, 1, 0, "server", "text", "not json {")
    assert render(Send(1, raw, 0), 5) == ("text", "not json {")


@pytest.mark.parametrize("text,scale", [("asap", None), ("recorded", 1.0), ("scale:0.25", 0.25)])
def test_parse_timing(text, scale) -> None:
    assert parse_timing(text) == scale


@pytest.mark.parametrize("text", ["fast", "scale:", "scale:-1", "scale:x"])
def test_bad_timing(text) -> None:
    with pytest.raises(TimingError, match="use asap, recorded or scale:F"):
        parse_timing(text)
