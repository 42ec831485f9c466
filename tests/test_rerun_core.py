"""The pure parts of rerun: scheduling, copies, rebinding, comparison (core/rerun_plan, core/rerun_compare)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproxy.core.recorded import RecordedConnection, RecordedFrame, RecordedSession
from wsproxy.core.rerun_compare import (
    Bindings,
    ConnectionComparison,
    PathError,
    Rules,
    close_difference,
    compare_sessions,
    handshake_difference,
    parse_path,
)
from wsproxy.core.rerun_plan import (
    RerunOptionError,
    Step,
    Variation,
    client_text,
    parse_header,
    parse_rename,
    parse_vary,
    rebind_client_text,
    replay_headers,
    schedule,
)

pytestmark = pytest.mark.core  # the pure core: literal data in, values out (pytest -m core)


def frame(conn: int, seq: int, ts: int, sender: str, value=None, kind: str = "text", code: int | None = None):
    text = json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else value
    return RecordedFrame(conn, seq, ts, sender, kind, text, None, code)


def request(rid: str, ptype: str, payload: dict) -> dict:
    return {"type": "request", "timestamp": 1700000000, "id": rid, "payloadType": ptype, "payload": payload}


def response(rid: str, payload: dict) -> dict:
    return {"type": "response", "timestamp": 1700000000, "id": rid, "payload": payload}


def event(eid: int | None, etype: str, payload: dict) -> dict:
    value = {"type": "event", "timestamp": 1700000000, "eventType": etype, "payload": payload}
    if eid is not None:
        value["id"] = eid
    return value


def two_users() -> RecordedSession:
    """User1 sends a message; User2 gets its event and says delivered; User1 then closes."""
    u1 = RecordedConnection(1, "/chat", "user=User1", 100, {"User-Agent": "t", "Authorization": "[REDACTED]",
                                                           "Sec-WebSocket-Key": "k"}, closed_by="client")
    u2 = RecordedConnection(2, "/chat", "user=User2", 110, closed_by="server", close_code=1001)
    u1.frames = [frame(1, 1, 200, "client", request("a1", "new", {"chatId": "User2", "message": "hi"})),
                 frame(1, 2, 210, "server", response("a1", {"messageId": 125})),
                 frame(1, 3, 240, "server", event(7, "delivered", {"messageId": 125, "userId": "User2"})),
                 frame(1, 4, 300, "client", "", kind="close", code=1000),
                 frame(1, 5, 301, "server", "", kind="close", code=1000)]
    u2.frames = [frame(2, 1, 220, "server", event(3, "new", {"messageId": 125, "chatId": "User1", "from": "User1",
                                                            "message": "hi"})),
                 frame(2, 2, 230, "client", request("b1", "delivered", {"messageId": 125})),
                 frame(2, 3, 235, "server", response("b1", {})),
                 frame(2, 4, 400, "server", "", kind="close", code=1001)]
    return RecordedSession(1, None, [u1, u2])


def test_schedule_is_every_client_action_in_recorded_order_with_what_it_waits_for() -> None:
    steps = schedule(two_users())
    assert [(s.conn_id, s.action, s.after) for s in steps] == [
        (1, "open", 0), (2, "open", 0), (1, "send", 1), (2, "send", 2), (1, "close", 4)]
    assert steps[3].frame.seq == 2  # the delivered waits for the event recorded before it
    # a client close that answers the server's is the WebSocket client's job, not a step
    answered = two_users()
    answered.connections[1].frames.append(frame(2, 5, 401, "client", "", kind="close", code=1001))
    assert [s.action for s in schedule(answered) if s.conn_id == 2] == ["open", "send"]


def test_a_connection_with_no_close_on_record_closes_after_its_last_frame() -> None:
    session = two_users()
    conn = session.connections[0]
    conn.frames = conn.frames[:3]
    conn.closed_by = None
    assert schedule(session)[-1] == Step(1, "close", None)


def test_replayed_headers_leave_out_the_handshake_and_redacted_ones_and_take_supplied_ones() -> None:
    conn = two_users().connections[0]
    assert replay_headers(conn, {}) == {"User-Agent": "t"}
    assert replay_headers(conn, {"authorization": "Bearer x"}) == {"User-Agent": "t", "authorization": "Bearer x"}


def test_a_copy_varies_the_named_value_everywhere_and_renames_with_its_number() -> None:
    session = two_users()
    copy = Variation(3, vary=[("query", "user")]).apply(session)
    assert [c.query for c in copy.connections] == ["user=User13", "user=User23"]
    sent = json.loads(copy.connections[0].frames[0].text)
    assert sent["payload"] == {"chatId": "User23", "message": "hi"}  # whole values only; keys untouched
    renamed = Variation(2, renames=[("User", "U{copy}-")]).apply(session)
    assert renamed.connections[1].query == "user=U2-2"
    assert json.loads(renamed.connections[1].frames[0].text)["payload"]["from"] == "U2-1"
    assert session.connections[0].query == "user=User1"  # the recording itself is unchanged
    assert Variation(1).apply(session) is session


@pytest.mark.parametrize("parse, text", [(parse_vary, "user"), (parse_vary, "cookie:x"), (parse_rename, "a"),
                                         (parse_header, ":x"), (parse_header, "x")])
def test_bad_copy_and_header_options_are_refused(parse, text) -> None:
    with pytest.raises(RerunOptionError):
        parse(text)


def test_paths() -> None:
    assert parse_path("payload.messageId") == ("payload", "messageId")
    assert parse_path("$.payload.attachments[*].url") == ("payload", "attachments", "*", "url")
    assert parse_path("items[2]") == ("items", 2)
    for bad in ("", "$.", "a[x]", "a[1"):
        with pytest.raises(PathError):
            parse_path(bad)


def test_client_messages_carry_the_live_values_and_are_untouched_otherwise() -> None:
    rules, bindings = Rules(), Bindings()
    text = json.dumps(request("b1", "delivered", {"messageId": 125}))
    assert rebind_client_text(text, rules, bindings, "user=User2") is text  # nothing bound yet: as recorded
    bindings.learn("messageId", "", 125, 7)
    assert json.loads(rebind_client_text(text, rules, bindings, "user=User2"))["payload"] == {"messageId": 7}
    subscribe = json.dumps(request("s", "subscribe", {"lastEventId": 3}))
    bindings.learn("eventId", "user=User2", 3, 9)
    assert json.loads(rebind_client_text(subscribe, rules, bindings, "user=User2"))["payload"] == {"lastEventId": 9}
    assert rebind_client_text(subscribe, rules, bindings, "user=User1") is subscribe  # event ids are per user
    fresh = json.loads(client_text(frame(2, 2, 1_700_000_000_000_000, "client", json.loads(text)), rules, bindings,
                                   "u", 1_700_000_010_000_000))
    assert fresh["timestamp"] == 1700000010 and fresh["payload"]["messageId"] == 7


def compare(expected: list, got: list, rules: Rules | None = None) -> list[tuple]:
    conn = RecordedConnection(1, "/", "user=A", 0, frames=[frame(1, i + 1, i, "server", v) for i, v in enumerate(expected)])
    comparison = ConnectionComparison(conn, rules or Rules(), Bindings())
    for value in got:
        comparison.receive("text", json.dumps(value) if isinstance(value, dict) else value)
    return [(d.seq, d.kind, d.path, d.expected, d.got) for d in comparison.differences()]


def test_responses_pair_by_request_id_and_events_in_order_within_a_window() -> None:
    a, b = response("r1", {"messageId": 1}), response("r2", {"messageId": 2})
    e1, e2 = event(1, "typing", {"userId": "x"}), event(2, "online", {"userId": "y"})
    assert compare([a, e1, b, e2], [b, e2, a, e1]) == []


def test_server_generated_values_are_bound_once_then_held_to() -> None:
    assert compare([response("r1", {"messageId": 125}), event(3, "new", {"messageId": 125, "chatId": "c"})],
                   [response("r1", {"messageId": 7}), event(1, "new", {"messageId": 7, "chatId": "c"})]) == []
    assert compare([response("r1", {"messageId": 125}), event(3, "new", {"messageId": 125, "chatId": "c"})],
                   [response("r1", {"messageId": 7}), event(1, "new", {"messageId": 8, "chatId": "c"})]) == [
        (2, "changed", "payload.messageId", 7, 8)]


def test_each_kind_of_difference() -> None:
    recorded = [response("r1", {"messageId": 1, "n": 1}), event(1, "typing", {"userId": "x"})]
    assert compare(recorded, [response("r1", {"messageId": 1, "n": "1", "extra": True})]) == [
        (1, "wrong-type", "payload.n", 1, "1"), (1, "unexpected-field", "payload.extra", None, True),
        (2, "missing", None, {"type": "event", "eventType": "typing", "payload": {"userId": "x"}, "id": 1}, None)]
    assert compare([response("r1", {"a": 1, "b": 2})], [response("r1", {"a": 1}), "not json"]) == [
        (1, "missing-field", "payload.b", 2, None), (None, "unexpected", None, None, "not json")]
    ms = dict(response("r1", {}), timestamp=1700000000000)
    assert compare([response("r1", {})], [ms]) == [(1, "changed", "timestamp", "s", "ms")]


def test_ignored_paths_and_error_texts_are_left_out() -> None:
    recorded = [response("r1", {"error": {"code": "not_found", "message": "no message 125"}, "at": 1})]
    live = [response("r1", {"error": {"code": "not_found", "message": "no message 7"}, "at": 2})]
    assert compare(recorded, live, Rules(ignores=(*Rules().ignores, parse_path("payload.at")))) == []
    assert [d[2] for d in compare(recorded, live)] == ["payload.at"]


def test_close_and_handshake_differences() -> None:
    conn = two_users().connections[1]  # the server closed it with 1001
    assert close_difference(conn, 1001, "server") is None
    assert close_difference(conn, 1011, "server").got == 1011
    assert close_difference(conn, None, "client").message == "the server closed with 1001 in the recording; " \
                                                             "the client closed now"
    assert handshake_difference(conn, 101, None) is None
    assert handshake_difference(conn, 403, "Forbidden").message == "handshake /chat?user=User2: recorded 101, now 403"


def test_a_session_against_itself_and_against_one_with_other_ids() -> None:
    session = two_users()
    assert compare_sessions(session, session) == []
    renumbered = replace(session, connections=[
        replace(c, frames=[replace(f, text=f.text.replace("125", "7")) if f.text else f for f in c.frames])
        for c in session.connections])
    assert compare_sessions(session, renumbered) == []
    shorter = replace(session, connections=session.connections[:1])
    assert [d.kind for d in compare_sessions(session, shorter)] == ["missing"]


# --- property: comparing a session with itself finds nothing ---

json_scalars = st.one_of(st.integers(-5, 10**6), st.text(max_size=8), st.booleans(), st.none())
payloads = st.dictionaries(st.sampled_from(["messageId", "chatId", "message", "n", "userId", "items"]),
                           st.one_of(json_scalars, st.lists(json_scalars, max_size=3)), max_size=4)


@st.composite
def server_messages(draw):
    kind = draw(st.sampled_from(["response", "event", "raw"]))
    if kind == "response":
        return response(draw(st.sampled_from(["r1", "r2", "r3", "r4"])), draw(payloads))
    if kind == "event":
        return event(draw(st.one_of(st.none(), st.integers(1, 50))), draw(st.sampled_from(["new", "typing", "read"])),
                     draw(payloads))
    return draw(st.text(max_size=10))


@st.composite
def sessions(draw):
    connections = []
    for conn_id in range(1, draw(st.integers(1, 3)) + 1):
        values = draw(st.lists(server_messages(), max_size=12))
        conn = RecordedConnection(conn_id, "/chat", f"user=U{conn_id % 2}", conn_id,
                                  closed_by=draw(st.sampled_from(["client", "server", None])),
                                  close_code=draw(st.sampled_from([1000, 1001, 1011, None])))
        conn.frames = [frame(conn_id, i + 1, 10 + i, "server", v) for i, v in enumerate(values)]
        connections.append(conn)
    return RecordedSession(1, None, connections)


@settings(max_examples=200, deadline=None)
@given(sessions())
def test_comparing_a_session_with_itself_finds_nothing(session) -> None:
    assert compare_sessions(session, session) == []
