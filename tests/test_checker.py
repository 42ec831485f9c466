"""The pure checker, driven by transcripts: messages in, findings out, times fed by hand.

One test (or more) per rule of protocol.md, with the edge cases the issue names. No sockets,
no sleeping: timeouts move with the clock the transcript gives.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproxy.core.checker import Checker
from wsproxy.core.profile import CHAT_PROFILE, Profile, profile_from_dict
from wsproxy.core.protocol import Finding, MessageDecoder

pytestmark = pytest.mark.core  # the pure core: literal data in, values out (pytest -m core)

T0 = 1_700_000_000.0


def req(rid: str, ptype: str, payload: dict | None = None, t: float = T0) -> str:
    return json.dumps({"type": "request", "timestamp": t, "id": rid, "payloadType": ptype,
                       "payload": {} if payload is None else payload})


def resp(rid: str, payload: object = None, t: float = T0) -> str:
    body = {"type": "response", "timestamp": t, "id": rid}
    if payload is not None:
        body["payload"] = payload
    return json.dumps(body)


def ev(event_type: str, eid: int | None, payload: dict, t: float = T0) -> str:
    body = {"type": "event", "timestamp": t, "eventType": event_type, "payload": payload}
    if eid is not None:
        body["id"] = eid
    return json.dumps(body)


def new_ev(eid: int | None, t: float = T0) -> str:
    return ev("new", eid, {"messageId": 100 + (eid or 0), "chatId": "u2", "from": "u2", "message": "hi"}, t)


class Transcript:
    """Feeds a checker the way the relay does: per-connection seq numbers, times in seconds."""

    def __init__(self, profile: Profile = CHAT_PROFILE) -> None:
        self.checker = Checker(profile)
        self.decode = MessageDecoder(profile).decode
        self.seq: dict[int, int] = {}
        self.findings: list[Finding] = []

    def open(self, conn: int = 1, at: float = 0.0) -> Transcript:
        self.seq[conn] = 0
        self.findings += self.checker.open(conn, _us(at))
        return self

    def send(self, sender: str, data: str | bytes, conn: int = 1, at: float = 0.0) -> Transcript:
        self.seq[conn] = self.seq.get(conn, 0) + 1
        kind = "text" if isinstance(data, str) else "binary"
        self.findings += self.checker.message(conn, self.seq[conn], _us(at), sender, self.decode(kind, data, sender))
        return self

    def client(self, data: str, conn: int = 1, at: float = 0.0) -> Transcript:
        return self.send("client", data, conn, at)

    def server(self, data: str | bytes, conn: int = 1, at: float = 0.0) -> Transcript:
        return self.send("server", data, conn, at)

    def tick(self, at: float) -> Transcript:
        self.findings += self.checker.tick(_us(at))
        return self

    def close(self, conn: int = 1, at: float = 0.0) -> Transcript:
        self.findings += self.checker.close(conn, _us(at))
        return self

    def subscribed(self, last: int | None = None, announced: tuple[int, int] = (0, 0), conn: int = 1) -> Transcript:
        self.client(req("sub", "subscribe", {} if last is None else {"lastEventId": last}), conn)
        return self.server(resp("sub", {"lastEventId": announced[0], "count": announced[1]}), conn)

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.findings]


def _us(seconds: float) -> int:
    return round(T0 * 1_000_000 + seconds * 1_000_000)


def only(transcript: Transcript, code: str) -> Finding:
    assert transcript.codes == [code], transcript.findings
    return transcript.findings[0]


# --- a clean conversation: zero findings is the bar ---

def test_the_overview_flow_as_frames_yields_no_finding() -> None:
    t = Transcript().open(1).open(2)
    t.client(req("req001", "subscribe", {"lastEventId": 1}), 1).server(resp("req001", {"lastEventId": 9, "count": 8}), 1)
    for eid in range(2, 10):
        t.server(new_ev(eid, t=T0 - 100 + eid), 1)  # catch-up events keep their original, older times
    t.subscribed(conn=2)
    t.client(ev("typing", None, {"chatId": "User2"}, T0 + 1), 1).server(ev("typing", None, {"userId": "User1"}, T0 + 1), 2)
    t.client(req("req002", "new", {"chatId": "User2", "message": "Hi", "attachments": [
        {"kind": "image", "url": "https://example.org/cat.png"}]}, T0 + 2), 1)
    t.server(resp("req002", {"messageId": 125}, T0 + 2), 1).server(new_ev(23, T0 + 2), 2)
    t.client(req("d", "delivered", {"messageId": 125}, T0 + 3), 2).server(resp("d", {}, T0 + 3), 2)
    t.server(ev("delivered", 10, {"messageId": 125, "userId": "User2"}, T0 + 3), 1)
    t.client(req("r", "read", {"messageId": 125}, T0 + 4), 2).server(resp("r", None, T0 + 4), 2)
    t.server(ev("read", 11, {"messageId": 125, "userId": "User2"}, T0 + 4), 1)
    t.server(ev("online", None, {"userId": "User2"}, T0 + 4), 1)
    t.close(1, at=5).close(2, at=5)
    assert t.findings == []


# --- single-message rules, now with where they happened ---

def test_invalid_json_names_connection_and_seq() -> None:
    finding = only(Transcript().open().server('{"type": "event", "timestamp": ', at=1), "invalid-json")
    assert (finding.conn_id, finding.seq, finding.severity) == (1, 1, "error")
    assert finding.ts == _us(1)


def test_invalid_envelope() -> None:
    t = Transcript().open().client('{"type": "request", "timestamp": 1700000000, "payloadType": "new", "payload": {}}')
    assert "id" in only(t, "invalid-envelope").message


def test_binary_message_is_info() -> None:
    assert only(Transcript().open().server(b"\x00\x01"), "binary-message").severity == "info"


def test_unknown_types_are_info_and_nothing_else() -> None:
    t = Transcript().open().subscribed()
    t.client(req("x", "react", {"emoji": "+1"})).server(resp("x", {}))
    t.server(ev("reaction", None, {"emoji": "+1"}))
    assert t.codes == ["unknown-payload-type", "unknown-event-type"]
    assert {f.severity for f in t.findings} == {"info"}


def test_timestamp_in_milliseconds() -> None:
    t = Transcript().open().client(req("a", "subscribe", t=T0 * 1000))
    assert "milliseconds" in only(t, "timestamp-unit").message


def test_request_payload_schema() -> None:
    t = Transcript().open().subscribed().client(req("a", "new", {"chatId": "u2"})).server(resp("a", {"messageId": 1}))
    finding = only(t, "payload-schema")
    assert finding.request_id == "a" and "message" in finding.message


# --- direction ---

def test_wrong_direction_both_ways() -> None:
    t = Transcript().open().server(req("s1", "new", {"chatId": "u", "message": "m"})).client(resp("c1", {}))
    assert t.codes == ["wrong-direction", "wrong-direction"]
    assert "the server sent request 's1'" in t.findings[0].message
    assert "the client sent response 'c1'" in t.findings[1].message


# --- pairing ---

def test_duplicate_request_id_names_both_uses() -> None:
    t = Transcript().open().subscribed().client(req("a", "read", {"messageId": 1})).server(resp("a"))
    t.client(req("a", "read", {"messageId": 2})).server(resp("a"))
    finding = only(t, "duplicate-request-id")
    assert finding.seq == 5 and "already used at seq 3" in finding.message


def test_request_ids_are_remembered_within_the_profile_window_only() -> None:
    # A connection that lives for days must not grow the checker without bound.
    t = Transcript(replace(CHAT_PROFILE, request_id_memory=3)).open().subscribed()
    for name in "abcd":
        t.client(req(name, "read", {"messageId": 1})).server(resp(name))
    t.client(req("d", "read", {"messageId": 2})).server(resp("d"))  # within the window: reported
    t.client(req("a", "read", {"messageId": 2})).server(resp("a"))  # 'a' was forgotten: not reported
    assert t.codes == ["duplicate-request-id"] and "'d'" in t.findings[0].message
    conn = t.checker._conns[1]
    assert len(conn.request_seqs) == 3 and len(conn.answered_at) <= 3 and len(conn.remembered) == 3


def test_orphan_response() -> None:
    finding = only(Transcript().open().server(resp("nobody", {})), "orphan-response")
    assert finding.request_id == "nobody"


def test_pairing_is_per_connection() -> None:
    t = (Transcript().open(1).open(2).client(req("a", "subscribe"), conn=1)
         .server(resp("a", {"lastEventId": 0, "count": 0}), conn=2))
    t.server(resp("a", {"lastEventId": 0, "count": 0}), conn=1)
    assert t.codes == ["orphan-response"] and t.findings[0].conn_id == 2


def test_duplicate_response_names_the_first_answer() -> None:
    t = Transcript().open().subscribed().client(req("a", "read", {"messageId": 1})).server(resp("a")).server(resp("a"))
    finding = only(t, "duplicate-response")
    assert finding.seq == 5 and "answered at seq 4" in finding.message


def test_an_error_response_answers_its_request() -> None:
    t = Transcript().open().client(req("a", "new", {"chatId": "u", "message": "m"}))
    t.server(resp("a", {"error": {"code": "not_subscribed", "message": "subscribe first"}}))
    t.close(at=60)
    assert t.findings == []


def test_response_payload_schema_depends_on_the_request() -> None:
    t = Transcript().open().subscribed().client(req("a", "new", {"chatId": "u", "message": "m"})).server(resp("a", {"id": 5}))
    t.client(req("b", "new", {"chatId": "u", "message": "m"})).server(resp("b"))
    assert t.codes == ["payload-schema", "payload-schema"]
    assert "messageId" in t.findings[0].message and "payload missing" in t.findings[1].message


# --- unanswered requests: timeouts by the fed clock, and at close ---

def test_unanswered_request_after_the_timeout() -> None:
    t = Transcript().open().subscribed().client(req("a", "read", {"messageId": 1}), at=1)
    t.tick(11.0)  # exactly 10 s later: not yet
    assert t.findings == []
    t.tick(11.001)
    finding = only(t, "unanswered-request")
    assert (finding.seq, finding.ts, finding.request_id) == (3, _us(1), "a")
    assert "within 10 s" in finding.message
    t.server(resp("a"), at=12).close(at=13)  # a late answer still pairs: no orphan, no second finding
    assert t.codes == ["unanswered-request"]


def test_a_late_response_reveals_the_timeout_without_a_tick() -> None:
    t = Transcript().open().subscribed().client(req("a", "read", {"messageId": 1}), at=0).server(resp("a"), at=10.5)
    assert only(t, "unanswered-request").request_id == "a"


def test_pending_at_close_is_unanswered() -> None:
    t = Transcript().open().subscribed().client(req("a", "read", {"messageId": 1}), at=1).close(at=2.5)
    finding = only(t, "unanswered-request")
    assert "before the connection closed (1.5 s later)" in finding.message


def test_timeout_comes_from_the_profile() -> None:
    t = Transcript(profile_from_dict({"response_timeout": 0.5})).open().subscribed()
    t.client(req("a", "read", {"messageId": 1}), at=0).tick(0.6)
    assert "within 0.5 s" in only(t, "unanswered-request").message


# --- event ids ---

def test_event_id_not_increasing() -> None:
    t = Transcript().open().subscribed().server(new_ev(1)).server(new_ev(2)).server(new_ev(2)).server(new_ev(3))
    finding = only(t, "event-id-not-increasing")
    assert (finding.seq, finding.event_id) == (5, 2) and "previous id 2" in finding.message


def test_event_id_gap_names_the_missing_ids() -> None:
    t = Transcript().open().subscribed().server(new_ev(1)).server(new_ev(4))
    assert "ids 2..3 missing" in only(t, "event-id-gap").message


def test_gap_at_the_catchup_boundary() -> None:
    # subscribe with lastEventId 5: the first stateful event must be 6
    t = Transcript().open().client(req("s", "subscribe", {"lastEventId": 5})).server(resp("s", {"lastEventId": 5, "count": 0}))
    t.server(new_ev(7))
    finding = only(t, "event-id-gap")
    assert "follows id 5: id 6 missing" in finding.message


def test_subscribe_without_last_event_id_sets_no_baseline() -> None:
    t = Transcript().open().subscribed().server(new_ev(41)).server(new_ev(42))
    assert t.findings == []


def test_resubscribing_resets_the_baseline() -> None:
    t = Transcript().open().subscribed(announced=(3, 3)).server(new_ev(1)).server(new_ev(2)).server(new_ev(3))
    t.client(req("s2", "subscribe", {})).server(resp("s2", {"lastEventId": 3, "count": 3}))
    t.server(new_ev(1)).server(new_ev(2)).server(new_ev(3)).server(new_ev(4))
    assert t.findings == []


def test_stateful_event_without_id() -> None:
    t = Transcript().open().subscribed().server(new_ev(1)).server(new_ev(None)).server(new_ev(2))
    assert only(t, "stateful-event-without-id").seq == 4


def test_ephemeral_event_with_id_is_a_warning_and_nothing_more() -> None:
    t = Transcript().open().subscribed().server(new_ev(1))
    t.server(ev("typing", 99, {"userId": "u2"})).server(new_ev(2))  # no gap, no not-increasing
    finding = only(t, "ephemeral-event-with-id")
    assert finding.severity == "warning" and finding.event_id == 99


def test_event_before_subscribe() -> None:
    t = Transcript().open().server(new_ev(1))
    assert only(t, "event-before-subscribe").severity == "warning"
    t2 = Transcript().open().server(ev("online", None, {"userId": "u2"}))  # ephemeral: fine unsubscribed
    assert t2.findings == []


def test_client_sent_stateful_events_take_no_part_in_id_order() -> None:
    t = Transcript().open().subscribed().server(new_ev(5)).client(new_ev(1)).server(new_ev(6))
    assert t.findings == []


# --- catch-up ---

def test_catchup_as_announced() -> None:
    t = Transcript().open().subscribed(last=1, announced=(4, 3))
    t.server(new_ev(2, T0 - 50)).server(new_ev(3, T0 - 40)).server(new_ev(4, T0 - 30)).server(new_ev(5))
    assert t.findings == []


def test_catchup_short_by_one_before_the_first_live_event() -> None:
    t = Transcript().open().subscribed(last=1, announced=(4, 3)).server(new_ev(2)).server(new_ev(3)).server(new_ev(5))
    assert t.codes == ["subscribe-catchup-mismatch", "event-id-gap"]
    mismatch = t.findings[0]
    assert mismatch.seq == 2 and mismatch.request_id == "sub"
    assert "announced 3 event(s) (ids 2..4), but 2 (ids 2..3) arrived before the first live event (seq 5, id 5)" \
        in mismatch.message


def test_catchup_cut_short_by_the_close() -> None:
    t = Transcript().open().subscribed(announced=(9, 9))
    for eid in range(1, 6):
        t.server(new_ev(eid))
    t.close(at=1)
    assert "but 5 (ids 1..5) arrived before the connection closed" in only(t, "subscribe-catchup-mismatch").message


def test_catchup_with_other_ids_than_announced() -> None:
    t = Transcript().open().subscribed(last=4, announced=(6, 2)).server(new_ev(2)).server(new_ev(3)).server(new_ev(7))
    assert "subscribe-catchup-mismatch" in t.codes


def test_catchup_events_with_a_hole_are_a_gap_not_a_mismatch() -> None:
    # The stream itself has a hole (id 3 was never stored): the server announces what it has.
    t = Transcript().open().subscribed(last=1, announced=(4, 2)).server(new_ev(2)).server(new_ev(4)).server(new_ev(5))
    assert t.codes == ["event-id-gap"]


# --- timestamps ---

def test_timestamp_backwards_in_one_direction() -> None:
    t = Transcript().open().subscribed()
    t.client(req("a", "read", {"messageId": 1}, T0 + 10)).server(resp("a", t=T0 + 10))
    t.client(req("b", "read", {"messageId": 1}, T0 + 9.5))  # within the 1 s tolerance
    t.client(req("c", "read", {"messageId": 1}, T0 + 5))  # 4.5 s back
    t.server(resp("b", t=T0 + 10)).server(resp("c", t=T0 + 10))
    finding = only(t, "timestamp-backwards")
    assert finding.seq == 6 and "client timestamp" in finding.message and "4.5 s earlier" in finding.message


def test_catchup_events_are_exempt_from_timestamp_backwards() -> None:
    t = Transcript().open()
    t.client(req("s", "subscribe", {}, T0)).server(resp("s", {"lastEventId": 2, "count": 2}, T0))
    t.server(new_ev(1, T0 - 3600)).server(new_ev(2, T0 - 3000)).server(new_ev(3, T0 + 1))
    assert t.findings == []


def test_millisecond_timestamps_are_not_also_backwards() -> None:
    t = Transcript().open().subscribed()
    t.server(ev("online", None, {"userId": "x"}, T0 * 1000)).server(ev("online", None, {"userId": "x"}, T0))
    assert t.codes == ["timestamp-unit"]


# --- profiles change severities, rules and type lists ---

def test_profile_turns_rules_off_and_changes_severities() -> None:
    profile = profile_from_dict({"severities": {"binary-message": "off", "orphan-response": "warning"}})
    t = Transcript(profile).open().server(b"\x00").server(resp("zzz", {}))
    assert [(f.code, f.severity) for f in t.findings] == [("orphan-response", "warning")]


def test_profile_changes_which_events_are_stateful() -> None:
    profile = profile_from_dict({"events": {"stateful": ["new", "edit", "delete", "delivered", "read", "typing"],
                                            "ephemeral": ["online", "offline"]}})
    t = Transcript(profile).open().subscribed().server(ev("typing", None, {"userId": "u2"}))
    assert t.codes == ["stateful-event-without-id"]


# --- never raises, whatever the traffic ---

FRAMES = [req("a", "subscribe", {"lastEventId": 2}), resp("a", {"lastEventId": 5, "count": 3}), new_ev(3),
          new_ev(4), new_ev(6), new_ev(None), req("b", "new", {"chatId": "x", "message": "m"}), resp("b"),
          resp("b", {"messageId": 1}), ev("typing", 3, {"userId": "u"}), '{"type":"event"', "[]", "null",
          req("a", "read", {"messageId": "x"}), resp("zz", {"lastEventId": "x"}), b"\x00",
          ev("new", 2**70, {}), req("c", "subscribe", {"lastEventId": -5}), resp("c", {"lastEventId": 1, "count": -4})]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(FRAMES), st.sampled_from(["client", "server"]), st.integers(1, 3),
                          st.sampled_from(["msg", "msg", "msg", "close", "tick"]), st.floats(0, 30)), max_size=40))
def test_the_checker_never_raises_on_any_transcript(steps) -> None:
    t = Transcript()
    for data, sender, conn, action, at in sorted(steps, key=lambda s: s[4]):
        if action == "close":
            t.close(conn, at)
        elif action == "tick":
            t.tick(at)
        else:
            t.send(sender, data, conn, at)
    t.findings += t.checker.finish(_us(60))
    assert all(f.conn_id is not None and f.severity in ("error", "warning", "info") for f in t.findings)
    assert t.checker.open_connections == 0
