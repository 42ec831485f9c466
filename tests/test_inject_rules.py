"""The pure half of fault injection (core/inject.py): reading rules and deciding which fire."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproxy.core.inject import Injector, Rule, RuleError, Seen, parse_rule, rules_from_toml

pytestmark = pytest.mark.core  # the pure core: literal data in, values out (pytest -m core)


@pytest.mark.parametrize("text, expected", [
    ("drop response type=new once", Rule("drop response type=new once", "drop", envelope="response", type="new", once=True)),
    ("duplicate event type=new", Rule("duplicate event type=new", "duplicate", envelope="event", type="new")),
    ("delay=400ms event type=typing", Rule("delay=400ms event type=typing", "delay", 0.4, envelope="event", type="typing")),
    ("close=4001 to-client after=3", Rule("close=4001 to-client after=3", "close", code=4001, sender="server", after=3)),
    ("pause=2s  to-server conn=user:User2 rate=0.5", Rule("pause=2s to-server conn=user:User2 rate=0.5", "pause", 2.0,
                                                         sender="client", conn=("user", "User2"), rate=0.5)),
    ("corrupt request nth=2", Rule("corrupt request nth=2", "corrupt", envelope="request", nth=2)),
    ("reorder event", Rule("reorder event", "reorder", envelope="event")),
])
def test_the_documented_examples_parse(text, expected) -> None:
    assert parse_rule(text) == expected


@pytest.mark.parametrize("text, message", [
    ("drop responses", "in 'drop responses': 'responses' is not an action or a selector; actions: drop, duplicate, "
                       "delay=DURATION, corrupt, reorder, close=CODE, pause=DURATION; selectors: to-client, to-server, "
                       "request, response, event, type=NAME, conn=KEY:VALUE, once, nth=N, after=N, rate=P"),
    ("delay=4 event", "in 'delay=4 event': 'delay=4': a duration is a number with ms or s, e.g. 300ms or 2s"),
    ("close=1005", "in 'close=1005': 'close=1005': 1005 cannot be sent in a close frame"),
    ("close=99999", "in 'close=99999': 'close=99999': the value must be a whole number 1000..4999"),
    ("drop drop", "in 'drop drop': 'drop' is a second action"),
    ("", "an empty --inject rule"),
    ("response once", "in 'response once': no action; start with one of: drop"),
    ("drop request to-client", "in 'drop request to-client': a request never goes to-client"),
    ("drop once nth=2", "once, nth= and rate= each say when; use one"),
    ("drop rate=2", "rate=P takes a probability, 0 < P <= 1"),
    ("drop conn=user", "write conn=KEY:VALUE"),
    ("drop nth=0", "'nth=0': the value must be a whole number >= 1"),
    ("drop event event", "'event' repeats envelope"),
])
def test_a_bad_rule_says_which_word_is_wrong_and_what_is_allowed(text, message) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def seen(conn: int, sender: str, envelope: str | None, type_: str | None = None, rid: str | None = None) -> Seen:
    return Seen(conn, sender, envelope, type_, rid)


def test_a_response_is_selected_by_its_requests_payload_type_in_its_direction() -> None:
    injector = Injector([parse_rule("drop response type=new once")])
    assert injector.fire(seen(1, "client", "request", "new", "r1")) == []  # a request: not a response
    assert injector.fire(seen(1, "server", "response", None, "r0")) == []  # answers nothing we saw
    assert [r.action for r in injector.fire(seen(1, "server", "response", None, "r1"))] == ["drop"]
    injector.fire(seen(1, "client", "request", "new", "r2"))
    assert injector.fire(seen(1, "server", "response", None, "r2")) == []  # once: done


def test_after_counts_messages_in_that_direction_on_the_connection() -> None:
    injector = Injector([parse_rule("close=4001 to-client after=3")])
    fired = [bool(injector.fire(seen(c, "server", "event", "typing"))) for c in (1, 1, 2, 1, 1, 1)]
    assert fired == [False, False, False, False, True, True]  # the 4th and 5th on connection 1
    assert injector.fire(seen(1, "client", "request", "new", "x")) == []  # the other direction


def test_conn_selects_by_query_or_header_value() -> None:
    injector = Injector([parse_rule("delay=10ms event conn=user:User2")])
    injector.opened(1, {"user": "User1"})
    injector.opened(2, {"user": "User2", "X-Trace": "t"})
    assert injector.fire(seen(1, "server", "event", "new")) == []
    assert len(injector.fire(seen(2, "server", "event", "new"))) == 1
    injector.closed(2)
    assert injector.fire(seen(2, "server", "event", "new")) == []


def test_a_rule_without_envelope_or_direction_selects_both_ways() -> None:
    injector = Injector([parse_rule("duplicate nth=2")])
    assert [bool(injector.fire(seen(1, s, None))) for s in ("client", "server", "client")] == [False, True, False]


def test_rate_is_repeatable_with_a_seed() -> None:
    def run(seed: int) -> list[bool]:
        injector = Injector([parse_rule("drop event rate=0.3")], seed)
        return [bool(injector.fire(seen(1, "server", "event", "typing"))) for _ in range(200)]
    assert run(7) == run(7) and run(7) != run(8)
    assert 30 < sum(run(7)) < 90


def test_the_rules_file_takes_rule_texts_or_words_as_keys() -> None:
    rules = rules_from_toml('''
[[inject]]
rule = "drop response type=new once"
[[inject]]
action = "delay=400ms"
envelope = "event"
type = "typing"
[[inject]]
action = "close=4001"
direction = "to-client"
after = 3
''')
    assert [r.text for r in rules] == ["drop response type=new once", "delay=400ms event type=typing",
                                       "close=4001 to-client after=3"]
    for bad, message in [("[[inject]]\nrule = 'drop responses'", "'responses' is not an action"),
                         ("[[inject]]\nwhat = 1", "unknown key(s) what"), ("inject = 3", "write [[inject]] tables"),
                         ("[[inject", "is not valid TOML")]:
        with pytest.raises(RuleError, match=re.escape(message)):
            rules_from_toml(bad)


words = st.lists(st.sampled_from(["to-client", "to-server", "request", "response", "event", "type=new",
                                  "conn=user:U", "once", "nth=2", "after=1", "rate=0.5"]), max_size=4, unique=True)
actions = st.sampled_from(["drop", "duplicate", "delay=5ms", "corrupt", "reorder", "close=4000", "pause=1s"])


@settings(max_examples=300, deadline=None)
@given(actions, words)
def test_a_rule_parses_to_the_same_rule_from_its_own_text(action, selectors) -> None:
    try:
        rule = parse_rule(" ".join([action, *selectors]))
    except RuleError:
        return  # contradictory selectors are refused, with a message (tested above)
    assert parse_rule(rule.text) == rule


messages = st.lists(st.tuples(st.integers(1, 3), st.sampled_from(["client", "server"]),
                              st.sampled_from(["request", "response", "event", None]),
                              st.sampled_from(["new", "typing", None])), max_size=60)


@settings(max_examples=200, deadline=None)
@given(messages, st.integers(1, 5))
def test_once_fires_at_most_once_and_nth_only_on_the_nth_selected(stream, n) -> None:
    once, nth, every = Injector([parse_rule("drop once")]), Injector([parse_rule(f"drop nth={n}")]), Injector(
        [parse_rule("drop")])
    fired_once = fired_nth = selected = 0
    for conn, sender, envelope, type_ in stream:
        item = seen(conn, sender, envelope, type_)
        fired_once += bool(once.fire(item))
        selected += bool(every.fire(item))
        if nth.fire(item):
            fired_nth += 1
            assert selected == n
    assert fired_once == min(1, len(stream)) and fired_nth == (1 if selected >= n else 0)


def test_the_inject_file_example_in_the_docs_loads() -> None:
    from pathlib import Path
    text = (Path(__file__).parent.parent / "docs" / "inject.md").read_text()
    example = re.search(r"### `--inject-file`.*?```toml\n(.*?)```", text, re.S).group(1)
    assert [r.text for r in rules_from_toml(example)] == [
        "drop response type=new once", "delay=400ms event type=typing", "close=4001 to-client after=3"]


def test_what_each_action_does_to_a_message_is_one_outcome_for_record_and_replay() -> None:
    from wsproxy.core.inject import Outcome, outcome
    m = '{"type":"event"}'
    assert outcome(None, m) == Outcome((m,))
    assert outcome(parse_rule("drop"), m) == Outcome(delivered=0)
    assert outcome(parse_rule("duplicate"), m) == Outcome((m, m), delivered=2)
    corrupt = outcome(parse_rule("corrupt"), m)
    assert corrupt.sends == ('{"type": <corrupted by wsproxy --inject>',) and corrupt.delivered == 0
    assert outcome(parse_rule("delay=400ms"), m) == Outcome(later=0.4, detail="400 ms")
    assert outcome(parse_rule("pause=2s"), m) == Outcome((m,), pause=2.0, detail="held 2000 ms")
    assert outcome(parse_rule("reorder"), m).hold and outcome(parse_rule("reorder"), m).sends == ()
    assert outcome(parse_rule("close=4001"), m) == Outcome(close=4001, delivered=0, detail="closed both legs with 4001")
