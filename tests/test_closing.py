"""The closing handshake as transcripts: what arrives on which leg, what the relay is told to do.

Each case of Autobahn|Testsuite sections 5-7 that ends a connection maps to one of these events on
the client leg (the fuzzing client talks to the proxy; aiohttp's frame parser turns a bad frame
into a protocol error with its close code), and the echo server behind answers as a server does.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsproxy.core.closing import AnswerClose, CloseLeg, Closing, Drop, ForwardClose

pytestmark = pytest.mark.core  # the pure core: literal data in, values out (pytest -m core)


def play(*steps):
    """Feed (event, args, expected actions) in order; return the final state."""
    closing = Closing()
    for event, args, expected in steps:
        assert getattr(closing, event)(*args) == expected, (event, args)
    return closing


# --- section 7: a clean close, started by either side ---

@pytest.mark.parametrize("code,reason", [
    (1000, ""),  # 7.1.1, 7.3.3: normal close
    (1000, "Hello World!"),  # 7.3.4: with a reason
    (1000, "*" * 123),  # 7.3.5: the longest reason a close frame holds
    (0, ""),  # 7.3.1: a close frame without a code (aiohttp reports 0)
    *[(code, "") for code in (1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999)],  # 7.7.*
])
def test_a_close_started_by_the_client_is_forwarded_and_the_reply_completes_it(code, reason) -> None:
    closing = play(
        ("close_frame", ("client", code, reason), [ForwardClose("server", code, reason)]),
        ("close_frame", ("server", code, reason), [AnswerClose("client", code or 1000, reason), Drop("server")]),
    )
    assert (closing.closed_by, closing.close_code, closing.close_reason, closing.error) == ("client", code, reason, None)


def test_a_close_started_by_the_server_is_forwarded_and_the_clients_reply_completes_it() -> None:
    closing = play(
        ("close_frame", ("server", 4001, "going away"), [ForwardClose("client", 4001, "going away")]),
        ("close_frame", ("client", 4001, "going away"), [AnswerClose("server", 4001, "going away"), Drop("client")]),
    )
    assert closing.closed_by == "server" and closing.error is None


def test_the_reply_may_carry_another_code_and_is_relayed_as_it_is() -> None:
    play(("close_frame", ("client", 1000, ""), [ForwardClose("server", 1000, "")]),
         ("close_frame", ("server", 1001, "bye"), [AnswerClose("client", 1001, "bye"), Drop("server")]))


# --- sections 5, 6 and 7.3/7.5/7.9: the client breaks the protocol ---

@pytest.mark.parametrize("case,code,detail", [
    ("5.1 a fragmented ping", 1002, "Received fragmented control frame"),
    ("5.9 a continuation without a start", 1002, "Continuation frame for non started message"),
    ("6.3.1 invalid UTF-8 in a text message", 1007, "Invalid UTF-8 text message"),
    ("7.3.2 a close frame with a 1-byte payload", 1002, "Invalid close frame"),
    ("7.3.6 a close reason too long for a control frame", 1002, "Control frame payload cannot be larger than 125 bytes"),
    ("7.5.1 a close reason that is not UTF-8", 1007, "Invalid UTF-8 text message"),
    ("7.9.1 close code 0", 1002, "Invalid close code: 0"),
    ("7.9.3 close code 1004", 1002, "Invalid close code: 1004"),
])
def test_a_client_protocol_error_closes_towards_the_server_first_then_answers_the_client(case, code, detail) -> None:
    reason = f"client broke the protocol: {detail}"[:120]
    closing = play(
        ("protocol_error", ("client", code, detail), [ForwardClose("server", code, reason)]),
        # the echo server replies with whatever code: the client gets the proxy's verdict
        ("close_frame", ("server", 1000, ""), [AnswerClose("client", code, reason), Drop("server")]),
    )
    assert closing.failed and closing.closed_by == "client" and closing.close_code == code
    assert closing.error == f"client sent an invalid frame ({code}): {detail}"


@pytest.mark.parametrize("code", [1005, 1006, 1015])  # 7.9.*: codes a close frame must never carry
def test_a_forbidden_close_code_from_the_client_is_a_protocol_error(code) -> None:
    detail = f"close code {code} must not be sent in a close frame"
    closing = play(("close_frame", ("client", code, ""),
                    [ForwardClose("server", 1002, f"client broke the protocol: {detail}")]))
    assert closing.failed and closing.close_code == 1002


def test_a_forbidden_close_code_from_the_server_closes_the_client_and_answers_the_server() -> None:
    detail = "close code 1006 must not be sent in a close frame"
    reason = f"server broke the protocol: {detail}"
    closing = play(("close_frame", ("server", 1006, ""), [CloseLeg("client", 1002, reason), AnswerClose("server", 1002, "")]))
    assert closing.closed_by == "server" and not closing.failed


def test_a_server_protocol_error_closes_the_client_at_once() -> None:
    play(("protocol_error", ("server", 1002, "Received frame with non-zero reserved bits"),
          [CloseLeg("client", 1002, "server broke the protocol: Received frame with non-zero reserved bits")]))


def test_an_error_without_a_code_counts_as_a_protocol_error() -> None:
    play(("protocol_error", ("client", None, "boom"), [ForwardClose("server", 1002, "client broke the protocol: boom")]))


def test_a_long_error_is_cut_to_fit_a_close_frame() -> None:
    closing = play(("protocol_error", ("server", 1002, "x" * 500),
                    [CloseLeg("client", 1002, ("server broke the protocol: " + "x" * 500)[:120])]))
    assert len(closing.close_reason.encode()) <= 120


def test_a_protocol_error_while_finishing_the_other_sides_close_just_ends_it() -> None:
    play(("close_frame", ("client", 1000, ""), [ForwardClose("server", 1000, "")]),
         ("protocol_error", ("server", 1002, "bad frame"), [Drop("client")]))


# --- a peer that vanishes ---

def test_a_client_that_vanishes_is_closed_towards_the_server_with_1001() -> None:
    closing = play(("vanished", ("client",), [CloseLeg("server", 1001, "client went away without a close frame")]))
    assert closing.error == "client went away without a close frame" and closing.closed_by == "client"


def test_an_upstream_that_vanishes_is_closed_towards_the_client_with_1011() -> None:
    closing = play(("vanished", ("server",), [CloseLeg("client", 1011, "upstream went away without a close frame")]))
    assert closing.close_code == 1011 and closing.closed_by == "server"


def test_a_side_that_vanishes_instead_of_replying_to_a_close_drops_the_other() -> None:
    closing = play(("close_frame", ("client", 1000, "bye"), [ForwardClose("server", 1000, "bye")]),
                   ("vanished", ("server",), [Drop("client")]))
    assert (closing.closed_by, closing.close_code, closing.error) == ("client", 1000, None)  # the client's close stands


def test_the_side_that_started_may_vanish_once_it_has_said_goodbye() -> None:
    play(("close_frame", ("client", 1000, ""), [ForwardClose("server", 1000, "")]),
         ("vanished", ("client",), []))


def test_a_leg_we_closed_ourselves_reports_closing_and_the_other_side_is_dropped() -> None:
    play(("close_frame", ("server", 1000, ""), [ForwardClose("client", 1000, "")]),
         ("leg_closing", ("client",), [Drop("server")]))
    play(("leg_closing", ("client",), []))


def test_no_reply_in_time_and_a_crashed_pump_are_recorded() -> None:
    closing = Closing()
    closing.close_frame("client", 1000, "")
    closing.timed_out(5.0)
    assert closing.error == "no close reply within 5 s"
    closing.crashed("ValueError('boom')")
    assert closing.error == "relay error: ValueError('boom')"


EVENTS = st.one_of(
    st.tuples(st.just("close_frame"), st.sampled_from(["client", "server"]),
              st.sampled_from([0, 1000, 1002, 1005, 1006, 1015, 3000, 4999, 65535]), st.text(max_size=200)),
    st.tuples(st.just("protocol_error"), st.sampled_from(["client", "server"]),
              st.sampled_from([None, 1002, 1007, 1009]), st.text(max_size=300)),
    st.tuples(st.just("vanished"), st.sampled_from(["client", "server"])),
    st.tuples(st.just("leg_closing"), st.sampled_from(["client", "server"])),
)


@given(st.lists(EVENTS, max_size=6))
def test_any_sequence_of_events_gives_actions_the_relay_can_carry_out(events) -> None:
    closing = Closing()
    for event, *args in events:
        for action in getattr(closing, event)(*args):  # never raises, whatever the order
            assert action.to in ("client", "server")
            if isinstance(action, CloseLeg):  # a code and reason the proxy chose itself: always valid
                assert 1000 <= action.code <= 4999 and action.code not in (1005, 1006, 1015)
                assert len(action.reason.encode()[:120]) <= 120
    assert closing.closed_by in (None, "client", "server")


# --- --inject close=CODE: the proxy closes both legs itself ---

def test_an_injected_close_closes_both_legs_and_the_legs_closing_drop_nothing() -> None:
    closing = play(
        ("injected", (4001, "wsproxy --inject: close=4001"), [CloseLeg("client", 4001, "wsproxy --inject: close=4001"),
                                                               CloseLeg("server", 4001, "wsproxy --inject: close=4001")]),
        ("leg_closing", ("client",), []),  # the other pump sees its leg closing: it must not drop the server leg
        ("leg_closing", ("server",), []),
        ("injected", (4002, "again"), []),  # only once
    )
    assert (closing.closed_by, closing.close_code) == ("proxy", 4001)
    assert Closing(closed_by="client").injected(4001, "x") == []  # a close already under way goes on as it is
