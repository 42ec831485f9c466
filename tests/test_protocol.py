"""The protocol model on every example of protocol.md, on bad input, and on anything."""

from __future__ import annotations

import json
import re

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproxy.core import payloads
from wsproxy.core.profile import CHAT_PROFILE, RULES, ProfileError, profile_from_dict
from wsproxy.core.protocol import Event, MessageDecoder, Request, Response, decode

pytestmark = pytest.mark.core  # the pure core: literal data in, values out (pytest -m core)

# protocol.md, "Example flow", frame by frame (the elided parts completed as the page says).
EXAMPLES = [
    ("client", '{"type":"request","timestamp":1700000000,"id":"req001","payloadType":"subscribe","payload":{"lastEventId":1}}'),
    ("server", '{"type":"response","timestamp":1700000000,"id":"req001","payload":{"lastEventId":9,"count":8}}'),
    ("client", '{"type":"event","timestamp":1700000001,"eventType":"typing","payload":{"chatId":"User2"}}'),
    ("server", '{"type":"event","timestamp":1700000001,"eventType":"typing","payload":{"userId":"User1"}}'),
    ("client", '{"type":"request","timestamp":1700000002,"id":"req002","payloadType":"new","payload":{"chatId":"User2","message":"Hi from User1!","attachments":[{"kind":"image","url":"https://example.org/cat.png"}]}}'),
    ("server", '{"type":"response","timestamp":1700000002,"id":"req002","payload":{"messageId":125}}'),
    ("server", '{"type":"event","timestamp":1700000002,"id":23,"eventType":"new","payload":{"messageId":125,"chatId":"User1","from":"User1","message":"Hi from User1!","attachments":[{"kind":"image","url":"https://example.org/cat.png"}]}}'),
    ("client", '{"type":"request","timestamp":1700000003,"id":"req003","payloadType":"delivered","payload":{"messageId":125}}'),
    ("server", '{"type":"response","timestamp":1700000003,"id":"req003","payload":{}}'),
    ("server", '{"type":"event","timestamp":1700000003,"id":10,"eventType":"delivered","payload":{"messageId":125,"userId":"User2"}}'),
    ("client", '{"type":"request","timestamp":1700000004,"id":"req004","payloadType":"read","payload":{"messageId":125}}'),
    ("server", '{"type":"response","timestamp":1700000004,"id":"req004"}'),
    ("server", '{"type":"event","timestamp":1700000004,"id":11,"eventType":"read","payload":{"messageId":125,"userId":"User2"}}'),
    ("client", '{"type":"request","timestamp":1700000005,"id":"req005","payloadType":"edit","payload":{"messageId":125,"message":"Hi!"}}'),
    ("server", '{"type":"event","timestamp":1700000005,"id":24,"eventType":"edit","payload":{"messageId":125,"chatId":"User1","message":"Hi!"}}'),
    ("client", '{"type":"request","timestamp":1700000006,"id":"req006","payloadType":"delete","payload":{"messageId":125}}'),
    ("server", '{"type":"event","timestamp":1700000006,"id":25,"eventType":"delete","payload":{"messageId":125,"chatId":"User1"}}'),
    ("server", '{"type":"event","timestamp":1700000007,"eventType":"online","payload":{"userId":"User2"}}'),
    ("server", '{"type":"event","timestamp":1700000008.5,"eventType":"offline","payload":{"userId":"User2"}}'),
    ("server", '{"type":"response","timestamp":1700000009,"id":"req007","payload":{"error":{"code":"not_found","message":"no message 9"}}}'),
]


@pytest.mark.parametrize("sender,text", EXAMPLES, ids=[f"{i}" for i in range(len(EXAMPLES))])
def test_every_example_of_protocol_md_is_valid(sender: str, text: str) -> None:
    parsed = decode("text", text, sender)
    assert parsed.findings == ()
    assert parsed.raw is text
    expected = json.loads(text)
    assert parsed.msg_type == expected["type"]
    if expected["type"] == "event":
        assert parsed.event_type == expected["eventType"]
        assert parsed.event_id == expected.get("id")
    else:
        assert parsed.msg_id == expected["id"]
    if "payload" in expected:
        assert json.loads(parsed.payload_json) == expected["payload"]


def test_envelopes_are_a_tagged_union_with_typed_payloads() -> None:
    request = decode("text", EXAMPLES[4][1], "client")
    assert isinstance(request.envelope, Request)
    assert isinstance(request.payload, payloads.NewRequest)
    assert request.payload.attachments[0].kind == "image"
    assert request.payload_type == "new"
    response = decode("text", EXAMPLES[1][1], "server")
    assert isinstance(response.envelope, Response)
    assert response.response_payload() == {"lastEventId": 9, "count": 8}
    event = decode("text", EXAMPLES[6][1], "server")
    assert isinstance(event.envelope, Event)
    assert isinstance(event.payload, payloads.NewEvent)
    assert event.payload.sender == "User1"
    typing_up = decode("text", EXAMPLES[2][1], "client")
    typing_down = decode("text", EXAMPLES[3][1], "server")
    assert isinstance(typing_up.payload, payloads.TypingFromClient)
    assert isinstance(typing_down.payload, payloads.UserEvent)


def test_unknown_fields_are_kept_and_never_invalid() -> None:
    text = ('{"type":"request","timestamp":1,"id":"r1","payloadType":"new","trace":"abc",'
            '"payload":{"chatId":"U2","message":"hi","priority":3}}')
    parsed = decode("text", text, "client")
    assert parsed.findings == ()
    assert parsed.extra_fields() == {"trace": "abc"}
    assert json.loads(parsed.payload_json)["priority"] == 3
    assert parsed.raw == text


def codes(text: str | bytes, sender: str | None = None, kind: str = "text") -> list[str]:
    return [f.code for f in decode(kind, text, sender).findings]


@pytest.mark.parametrize("text,expected", [
    ("", ["invalid-json"]),
    ("not json", ["invalid-json"]),
    ('{"type":"request"', ["invalid-json"]),
    ("[1, 2]", ["invalid-json"]),
    ('"a string"', ["invalid-json"]),
    ("null", ["invalid-json"]),
    ('{"type":"event","timestamp":1,"eventType":"typing"} trailing', ["invalid-json"]),
    ("{}", ["invalid-envelope"]),
    ('{"type":"hello","timestamp":1}', ["invalid-envelope"]),
    ('{"type":"request","timestamp":1,"payloadType":"new","payload":{}}', ["invalid-envelope"]),
    ('{"type":"request","timestamp":1,"id":"","payloadType":"new","payload":{}}', ["invalid-envelope"]),
    ('{"type":"request","timestamp":1,"id":7,"payloadType":"new","payload":{}}', ["invalid-envelope"]),
    ('{"type":"request","timestamp":"1","id":"a","payloadType":"new","payload":{}}', ["invalid-envelope"]),
    ('{"type":"request","timestamp":true,"id":"a","payloadType":"new","payload":{}}', ["invalid-envelope"]),
    ('{"type":"request","timestamp":1,"id":"a","payloadType":"new"}', ["invalid-envelope"]),
    ('{"type":"request","timestamp":1,"id":"a","payloadType":"new","payload":[1]}', ["invalid-envelope"]),
    ('{"type":"response","id":"a"}', ["invalid-envelope"]),
    ('{"type":"event","timestamp":1,"eventType":"new","id":1.5,"payload":{}}', ["invalid-envelope"]),
    ('{"type":"event","timestamp":1,"eventType":"new","id":"7","payload":{}}', ["invalid-envelope"]),
    ('{"type":"event","timestamp":1}', ["invalid-envelope"]),
    ('{"type":"request","timestamp":1,"id":"a","payloadType":"new","payload":{"chatId":"U"}}', ["payload-schema"]),
    ('{"type":"request","timestamp":1,"id":"a","payloadType":"edit","payload":{"messageId":"5","message":"x"}}', ["payload-schema"]),
    ('{"type":"request","timestamp":1,"id":"a","payloadType":"new","payload":{"chatId":"U","message":"m","attachments":[{"kind":"video","url":"u"}]}}', ["payload-schema"]),
    ('{"type":"event","timestamp":1,"id":3,"eventType":"new"}', ["payload-schema"]),
    ('{"type":"event","timestamp":1,"id":3,"eventType":"read","payload":{"messageId":1}}', ["payload-schema"]),
    ('{"type":"request","timestamp":1,"id":"a","payloadType":"poke","payload":{"x":1}}', ["unknown-payload-type"]),
    ('{"type":"event","timestamp":1,"eventType":"reaction","payload":{"x":1}}', ["unknown-event-type"]),
    ('{"type":"event","timestamp":1700000000000,"eventType":"online","payload":{"userId":"U"}}', ["timestamp-unit"]),
    ('{"type":"event","timestamp":1700000000000,"eventType":"zap"}', ["timestamp-unit", "unknown-event-type"]),
])
def test_single_message_findings(text: str, expected: list[str]) -> None:
    assert codes(text) == expected


def test_severities_come_from_the_rule_table() -> None:
    by_code = {rule.code: rule.severity for rule in RULES}
    for text, code in [("nope", "invalid-json"), ("{}", "invalid-envelope"),
                       ('{"type":"event","timestamp":1700000000000,"eventType":"online","payload":{"userId":"U"}}', "timestamp-unit"),
                       ('{"type":"event","timestamp":1,"eventType":"zz"}', "unknown-event-type")]:
        (finding,) = decode("text", text).findings
        assert finding.severity == by_code[code]
    assert by_code["timestamp-unit"] == "warning" and by_code["binary-message"] == "info"


def test_typing_payload_depends_on_direction() -> None:
    up = '{"type":"event","timestamp":1,"eventType":"typing","payload":{"chatId":"U2"}}'
    down = '{"type":"event","timestamp":1,"eventType":"typing","payload":{"userId":"U1"}}'
    assert codes(up, "client") == [] and codes(down, "server") == []
    assert codes(up, "server") == ["payload-schema"] and codes(down, "client") == ["payload-schema"]
    assert codes(up) == [] and codes(down) == []  # direction unknown: either shape


def test_binary_messages_are_noted_and_kept() -> None:
    data = b"\x00\xff\x10"
    parsed = decode("binary", data, "server")
    assert parsed.raw is data
    assert [(f.code, f.severity) for f in parsed.findings] == [("binary-message", "info")]
    assert parsed.envelope is None


def test_a_profile_can_turn_rules_off_and_add_types() -> None:
    profile = profile_from_dict({"severities": {"unknown-event-type": "off", "timestamp-unit": "error"},
                                 "event_types": {"add": ["reaction"]}})
    decoder = MessageDecoder(profile)
    assert decoder.decode("text", '{"type":"event","timestamp":1,"eventType":"zz"}').findings == ()
    assert decoder.decode("text", '{"type":"event","timestamp":1,"eventType":"reaction","payload":[1]}').findings == ()
    (finding,) = decoder.decode("text", '{"type":"event","timestamp":1e12,"eventType":"online","payload":{"userId":"u"}}').findings
    assert finding.severity == "error"
    assert CHAT_PROFILE.severity("unknown-event-type") == "info"  # the built-in profile is untouched


@pytest.mark.parametrize("data,says", [
    ({"request_id_memory": 0}, "request_id_memory must be a positive number"),
    ({"request_id_memory": "many"}, "request_id_memory must be a positive number"),
    ({"response_timeout": -1}, "response_timeout must be a positive number"),
    ({"request_id_window": 5}, "unknown key(s) request_id_window"),
])
def test_a_bad_profile_value_is_refused_in_one_line(data: dict, says: str) -> None:
    with pytest.raises(ProfileError, match=re.escape(says)):
        profile_from_dict(data)


# --- property-based: nothing raises, the raw message is kept ---

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["text", "binary"]), st.sampled_from(["client", "server", None]))
def test_arbitrary_bytes_never_raise(data: bytes, kind: str, sender: str | None) -> None:
    parsed = decode(kind, data, sender)
    assert parsed.raw is data
    if kind == "binary":
        assert [f.code for f in parsed.findings] == ["binary-message"]


@settings(max_examples=400, deadline=None)
@given(json_values, st.sampled_from(["client", "server", None]))
def test_arbitrary_json_never_raises(value: object, sender: str | None) -> None:
    text = json.dumps(value)
    parsed = decode("text", text, sender)
    assert parsed.raw is text
    if not isinstance(value, dict):
        assert [f.code for f in parsed.findings] == ["invalid-json"]


envelope_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["request", "response", "event", "other"])},
    optional={"timestamp": st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text()),
              "id": st.one_of(st.text(max_size=5), st.integers()),
              "payloadType": st.sampled_from(["subscribe", "new", "edit", "delete", "delivered", "read", "x"]),
              "eventType": st.sampled_from(["new", "edit", "delete", "delivered", "read", "typing", "online", "y"]),
              "payload": json_values})


@settings(max_examples=600, deadline=None)
@given(envelope_like, st.sampled_from(["client", "server", None]))
def test_envelope_shaped_json_never_raises_and_is_classified(value: dict, sender: str | None) -> None:
    text = json.dumps(value)
    parsed = decode("text", text, sender)
    assert parsed.raw is text
    if parsed.envelope is None:
        assert [f.code for f in parsed.findings] == ["invalid-envelope"]
    else:
        assert parsed.msg_type == value["type"]
        msgspec.json.encode(parsed.payload)  # whatever was decoded is plain data or Structs


def test_the_core_imports_no_io_library() -> None:
    """The pure core (protocol, checker, profile, payloads, schema mappers, chat logic) stays free of I/O."""
    import subprocess
    import sys
    code = ("import sys, wsproxy.core.protocol, wsproxy.core.checker, wsproxy.core.profile, wsproxy.core.payloads, wsproxy.store.schema, wsproxy.chat.core;"
            "print(sorted(m for m in ('aiohttp', 'duckdb', 'typer', 'rich', 'pyarrow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
