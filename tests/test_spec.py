"""`wsproxy spec`: AsyncAPI 3 documents inferred from real traffic (checked by the official parser),
traffic checked against documents (`--spec` on record, check, replay, rerun), documents diffed."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import aiohttp
import msgspec
import pytest
import yaml

from helpers import recorded, wsproxy
from wsproxy.chat.client import ChatClient, overview_flow, run_load
from wsproxy.core.json_schema import SchemaError, compile_schema
from wsproxy.core.schema_infer import Enums, Shape
from wsproxy.core.spec_contract import SpecError, read_catalogue
from wsproxy.core.spec_diff import diff
from wsproxy.inspect.spec import load_contract, load_document
from wsproxy.replay.source import load_recording

ROOT = Path(__file__).parent.parent
HAND_WRITTEN = ROOT / "docs" / "chat-protocol.asyncapi.yaml"
PARSER = ROOT / "tests" / "asyncapi"
FIXTURES = ROOT / "fixtures"


def official_parser(*documents: Path) -> list[dict]:
    """@asyncapi/parser (npm) over the documents: its diagnostics, one dict each."""
    if not (PARSER / "node_modules" / "@asyncapi" / "parser").exists():
        pytest.skip("the official AsyncAPI parser is not installed (./dev.sh test installs it with npm)")
    done = subprocess.run(["node", str(PARSER / "validate.mjs"), *map(str, documents)], capture_output=True,
                          text=True, timeout=120)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert all(line.get("parsed") for line in lines if "parsed" in line), done.stdout + done.stderr
    assert len([line for line in lines if "parsed" in line]) == len(documents), done.stdout + done.stderr
    return [line for line in lines if "severity" in line]


async def demo_recording(chat_server, proxy, db: Path) -> Path:
    session = await proxy(chat_server.url, db=db)
    clients = await overview_flow(session.url)
    for client in clients.values():
        await client.close()
    await session.stop()
    return db


# --- the pure core: schemas merged over every observation ---

@pytest.mark.core
def test_a_shape_merges_every_observation() -> None:
    shape = Shape()
    for value in ({"a": 1, "b": "x", "tags": [{"k": 1}]}, {"a": 2.5, "b": None, "tags": [{"k": 2, "extra": True}]},
                  {"a": 3, "tags": []}):
        shape.add(value)
    assert shape.schema() == {
        "type": "object", "required": ["a", "tags"],
        "properties": {
            "a": {"type": "number"},  # 1 and 2.5: a number
            "b": {"type": ["string", "null"]},  # optional, and null once
            "tags": {"type": "array", "items": {"type": "object", "required": ["k"], "properties": {
                "extra": {"type": "boolean"}, "k": {"type": "integer"}}}}}}


@pytest.mark.core
def test_enums_need_few_values_that_repeat_and_are_no_users_name() -> None:
    kinds, names, once = Shape(), Shape(), Shape()
    for index in range(12):
        kinds.add(["image", "file"][index % 2])
        names.add(["alice", "bob"][index % 2])
        once.add(f"message {index % 5}")
    enums = Enums(limit=8, repeat=3, not_values=frozenset({"alice"}))
    assert kinds.schema(enums) == {"type": "string", "enum": ["file", "image"]}
    assert names.schema(enums) == {"type": "string"}  # user names are data
    assert once.schema(enums) == {"type": "string"}  # 5 values in 12: not repeated enough
    assert kinds.schema(Enums(limit=0)) == {"type": "string"}


@pytest.mark.core
def test_compiled_schemas_say_what_failed_where() -> None:
    document = {"components": {"schemas": {"Node": {"type": "object", "properties": {
        "next": {"$ref": "#/components/schemas/Node"}, "n": {"type": "integer", "minimum": 0}}}}}}
    check = compile_schema({"type": "object", "required": ["id", "kind"], "properties": {
        "id": {"type": "string", "minLength": 1}, "kind": {"enum": ["a", "b"]},
        "tree": {"$ref": "#/components/schemas/Node"}, "any": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}},
        document)
    problems: list = []
    check({"id": "", "kind": "c", "tree": {"next": {"n": -1, "next": {"n": "x"}}}, "any": 1.5, "new": 1}, "", problems)
    assert [(p.kind, p.pointer) for p in problems] == [
        ("constraint", "/id"), ("enum", "/kind"), ("constraint", "/tree/next/n"), ("type", "/tree/next/next/n"),
        ("constraint", "/any"), ("extra", "/new")]
    missing: list = []
    check({}, "", missing)
    assert [(p.kind, p.pointer, p.words) for p in missing] == [
        ("required", "/id", "'id' is required"), ("required", "/kind", "'kind' is required")]
    with pytest.raises(SchemaError, match="names nothing"):
        compile_schema({"$ref": "#/nowhere"}, {})
    with pytest.raises(SchemaError, match="not a regular expression"):
        compile_schema({"pattern": "("})


# --- infer: real traffic in, a document the official parser accepts out ---

async def test_infer_from_the_demo_and_a_load_recording_passes_the_official_parser(chat_server, proxy, tmp_path) -> None:
    demo = await demo_recording(chat_server, proxy, tmp_path / "demo.duckdb")
    session = await proxy(chat_server.url, db=tmp_path / "load.duckdb")
    await run_load(session.url, users=6, messages=40, window=4)
    await session.stop()
    written = []
    for source in (demo, tmp_path / "load.duckdb"):
        out = tmp_path / f"{source.stem}.asyncapi.yaml"
        done = wsproxy("spec", "infer", str(source), "-o", str(out), "--server", chat_server.url)
        assert done.returncode == 0, done.stderr
        written.append(out)
    json_out = tmp_path / "demo.asyncapi.json"
    assert wsproxy("spec", "infer", str(demo), "-o", str(json_out)).returncode == 0
    written.append(json_out)
    diagnostics = official_parser(*written)
    assert [d for d in diagnostics if d["severity"] in ("error", "warning")] == []

    document = yaml.safe_load(written[0].read_text())
    assert document["asyncapi"] == "3.0.0"
    operations = document["operations"]
    assert operations["sendNewRequest"]["action"] == "send"
    assert operations["sendNewRequest"]["reply"]["messages"] == [{"$ref": "#/channels/chat/messages/newResponse"}]
    assert operations["receiveNewEvent"]["action"] == "receive"
    assert operations["sendTypingClientEvent"]["action"] == "send"  # client-sent events too
    messages = document["components"]["messages"]
    assert messages["newRequest"]["correlationId"] == {"$ref": "#/components/correlationIds/envelopeId"}
    assert document["components"]["correlationIds"]["envelopeId"] == {"location": "$message.payload#/id"}
    new = messages["newRequest"]["payload"]["properties"]["payload"]
    assert new["required"] == ["chatId", "message"] and "attachments" in new["properties"]  # optional: not always
    assert messages["newEvent"]["x-wsproxy-event-id"] == "always" and messages["typingEvent"]["x-wsproxy-event-id"] == "never"
    channel = document["channels"]["chat"]
    assert channel["bindings"]["ws"]["query"]["required"] == ["user"]
    assert channel["x-wsproxy-event-ids"]["step"] == 1 and channel["x-wsproxy-event-ids"]["scope"] == "user"
    assert messages["newRequest"]["examples"][0]["payload"]["payloadType"] == "new"
    assert document["servers"]["upstream"]["protocol"] == "ws"
    load_doc = yaml.safe_load(written[1].read_text())
    assert load_doc["components"]["messages"]["newResponse"]["x-wsproxy-observations"] == 6 * 40

    # traffic checked against the document inferred from it: not one finding
    for source, spec in ((demo, written[0]), (tmp_path / "load.duckdb", written[1])):
        done = wsproxy("check", str(source), "--spec", str(spec), "--format", "json")
        report = json.loads(done.stdout)
        assert [f for f in report["findings"] if f["code"].startswith("spec-")] == [], done.stdout[:2000]


async def test_errors_are_their_own_message_and_secrets_are_redacted_in_examples(chat_server, proxy, tmp_path) -> None:
    session = await proxy(chat_server.url, db=tmp_path / "e.duckdb")
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{session.url}/chat?user=alice&token=s3cret") as ws:
        await ws.send_str('{"type":"request","timestamp":1,"id":"r1","payloadType":"edit",'
                          '"payload":{"messageId":99,"message":"x","password":"hunter2"}}')
        answer = json.loads((await ws.receive()).data)
        assert "error" in answer["payload"]
    await session.stop()
    done = wsproxy("spec", "infer", str(tmp_path / "e.duckdb"), "--format", "json")
    document = json.loads(done.stdout)
    messages = document["components"]["messages"]
    assert set(messages) == {"editRequest", "editError"}
    assert document["operations"]["sendEditRequest"]["reply"]["messages"] == [{"$ref": "#/channels/chat/messages/editError"}]
    assert messages["editRequest"]["examples"][0]["payload"]["payload"]["password"] == "[REDACTED]"
    assert "hunter2" not in done.stdout and "s3cret" not in done.stdout
    assert document["channels"]["chat"]["bindings"]["ws"]["query"]["required"] == ["token", "user"]


async def test_markdown_is_the_catalogue(chat_server, proxy, tmp_path) -> None:
    demo = await demo_recording(chat_server, proxy, tmp_path / "demo.duckdb")
    done = wsproxy("spec", "infer", str(demo), "-o", str(tmp_path / "PROTOCOL.md"))
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "PROTOCOL.md").read_text()
    assert "### `new`" in text and "## Server events" in text and "## Client events" in text
    assert "| `payload.chatId` | string | yes |" in text
    assert "| `payload.attachments[].url` | string |" in text  # array items flattened


# --- the hand-written document of protocol.md ---

async def test_the_hand_written_protocol_document_passes_the_parser_and_the_demo(chat_server, proxy, tmp_path) -> None:
    assert [d for d in official_parser(HAND_WRITTEN) if d["severity"] in ("error", "warning")] == []
    (tmp_path / "fixture.yaml").symlink_to(FIXTURES / "chat-protocol.asyncapi.yaml")
    assert load_document(tmp_path / "fixture.yaml") == load_document(HAND_WRITTEN)  # fixtures/ holds the same
    demo = await demo_recording(chat_server, proxy, tmp_path / "demo.duckdb")
    done = wsproxy("check", str(demo), "--spec", str(HAND_WRITTEN), "--format", "json")
    assert [f for f in json.loads(done.stdout)["findings"] if f["code"].startswith("spec-")] == []
    catalogue = read_catalogue(load_document(HAND_WRITTEN))
    assert sorted(catalogue.requests) == ["delete", "delivered", "edit", "new", "read", "subscribe"]
    assert sorted(catalogue.client_events) == ["typing"]
    assert [m.name for m in catalogue.replies["new"]] == ["newResponse", "errorResponse"]


BAD_MESSAGES = [  # (what the client sends, code, pointer)
    ('{"type":"request","timestamp":1,"id":"a","payloadType":"shout","payload":{}}', "spec-unknown-type", "/payloadType"),
    ('{"type":"request","timestamp":1,"id":"b","payloadType":"new","payload":{"chatId":"bob"}}', "spec-required",
     "/payload/message"),
    ('{"type":"request","timestamp":1,"id":"c","payloadType":"delete","payload":{"messageId":"7"}}', "spec-type",
     "/payload/messageId"),
    ('{"type":"request","timestamp":1,"id":"d","payloadType":"new","payload":{"chatId":"bob","message":"hi",'
     '"attachments":[{"kind":"video","url":"u"}]}}', "spec-enum", "/payload/attachments/0/kind"),
    ('{"type":"request","timestamp":1,"id":"e","payloadType":"read","payload":{"messageId":1},"trace":"x"}',
     "spec-extra-field", "/trace"),
    ('{"type":"event","timestamp":1,"eventType":"typing","payload":{}}', "spec-required", "/payload/chatId"),
]


async def test_record_with_spec_finds_each_kind_live_with_its_pointer(chat_server, proxy, tmp_path) -> None:
    from dataclasses import replace

    from wsproxy.core.profile import CHAT_PROFILE
    profile = replace(CHAT_PROFILE, spec=load_contract(HAND_WRITTEN))
    db = tmp_path / "live.duckdb"
    session = await proxy(chat_server.url, db=db, profile=profile)
    bob = await ChatClient.connect(session.url, "bob")
    await bob.subscribe()
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{session.url}/chat?user=alice") as ws:
        for text, _code, _pointer in BAD_MESSAGES:
            await ws.send_str(text)
        await asyncio.sleep(0.3)
    await bob.close()
    await session.stop()
    found = recorded(db, "SELECT code, pointer, severity, message FROM violations WHERE code LIKE 'spec-%' ORDER BY seq")
    assert [(code, pointer) for code, pointer, _, _ in found] == [(c, p) for _, c, p in BAD_MESSAGES]
    severities = {code: severity for code, _, severity, _ in found}
    assert severities["spec-extra-field"] == "warning" and severities["spec-type"] == "error"
    assert "expected integer, got string \"7\"" in found[2][3]
    assert "must be one of [\"image\", \"file\"]" in found[3][3]


async def test_a_response_that_matches_no_reply(faulty_chat_server, proxy, tmp_path) -> None:
    document = load_document(HAND_WRITTEN)
    reply = document["components"]["messages"]["newResponse"]["payload"]["properties"]["payload"]
    reply["properties"]["messageId"] = {"type": "string"}  # the document says a string; the server sends a number
    spec = tmp_path / "strict.yaml"
    spec.write_text(yaml.safe_dump(document))
    server = await faulty_chat_server("")
    db = await demo_recording(server, proxy, tmp_path / "d.duckdb")
    done = wsproxy("check", str(db), "--spec", str(spec), "--format", "json")
    assert done.returncode == 1
    replies = [f for f in json.loads(done.stdout)["findings"] if f["code"] == "spec-reply"]
    assert replies and "closest newResponse: expected string, got integer" in replies[0]["message"]
    assert replies[0]["pointer"] == "/payload/messageId"


@pytest.mark.core
def test_profiles_set_spec_severities(tmp_path) -> None:
    from wsproxy.core.profile import profile_from_dict
    profile = profile_from_dict({"severities": {"spec-extra-field": "off", "spec-unknown-type": "info"}})
    assert profile.severity("spec-extra-field") == "off" and profile.severity("spec-unknown-type") == "info"


@pytest.mark.core
def test_the_catalogue_ends_on_a_ref_that_names_itself() -> None:
    from wsproxy.inspect.spec import markdown
    document = {"asyncapi": "3.0.0", "info": {"title": "t", "version": "1"},
                "operations": {"x": {"action": "send", "messages": [{"$ref": "#/components/messages/m"}]}},
                "components": {"schemas": {"Loop": {"$ref": "#/components/schemas/Loop"}}, "messages": {"m": {
                    "payload": {"type": "object", "properties": {
                        "type": {"const": "request"}, "payloadType": {"const": "new"},
                        "payload": {"$ref": "#/components/schemas/Loop"}}}}}}}
    assert "| `payload` | any | no |  |" in markdown(document)


# --- diff and drift ---

def test_diff_tells_breaking_from_compatible(tmp_path) -> None:
    old = load_document(HAND_WRITTEN)
    new = load_document(HAND_WRITTEN)
    messages = new["components"]["messages"]
    del new["operations"]["sendReadRequest"]  # an operation removed
    messages["newRequest"]["payload"]["properties"]["payload"]["required"].append("attachments")  # newly required
    schemas = new["components"]["schemas"]
    schemas["Timestamp"]["type"] = "integer"  # narrowed
    schemas["Attachment"]["properties"]["kind"]["enum"].append("video")  # widened
    schemas["Attachment"]["properties"]["alt"] = {"type": "string"}  # optional field added
    new["operations"]["receiveTypingEvent"]["messages"] = [{"$ref": "#/channels/chat/messages/typingEvent"}]
    changes = diff(read_catalogue(old), read_catalogue(new), old, new)
    said = {(c.impact, c.message, c.pointer, c.words) for c in changes}
    assert ("breaking", "request read", "", "removed: readRequest") in said
    assert ("breaking", "request new", "/payload/attachments", "newly required") in said
    assert ("breaking", "request new", "/timestamp", "type narrowed: number -> integer") in said
    assert ("compatible", "request new", "/payload/attachments/items/kind", 'values added: "video"') in said
    assert ("compatible", "request new", "/payload/attachments/items/alt", "added, optional") in said
    assert changes[0].impact == "breaking"
    # nothing else: the same document otherwise compares equal (Timestamp and Attachment are shared schemas)
    assert {c.kind for c in changes} == {"message-removed", "newly-required", "type-narrowed", "values-added",
                                         "added-optional"}
    assert {c.message for c in changes if c.kind == "message-removed"} == {"request read", "reply read response",
                                                                          "reply read error"}
    assert {c.pointer for c in changes if c.kind == "type-narrowed"} == {"/timestamp"}

    (tmp_path / "old.yaml").write_text(yaml.safe_dump(old))
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(new))
    done = wsproxy("spec", "diff", str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml"), "--format", "json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["breaking"] >= 3 and report["compatible"] >= 2
    same = wsproxy("spec", "diff", str(HAND_WRITTEN), str(tmp_path / "old.yaml"))
    assert same.returncode == 0 and "no changes" in same.stdout
    compatible_only = load_document(HAND_WRITTEN)
    compatible_only["components"]["schemas"]["Attachment"]["properties"]["alt"] = {"type": "string"}
    (tmp_path / "compatible.yaml").write_text(json.dumps(compatible_only))  # JSON reads too
    done = wsproxy("spec", "diff", str(HAND_WRITTEN), str(tmp_path / "compatible.yaml"))
    assert done.returncode == 0 and "compatible" in done.stdout and "0 breaking" in done.stdout


async def test_infer_against_reports_drift(chat_server, proxy, tmp_path) -> None:
    demo = await demo_recording(chat_server, proxy, tmp_path / "demo.duckdb")
    document = load_document(HAND_WRITTEN)
    document["components"]["schemas"]["MessageRef"]["required"].append("reason")  # traffic never has it
    (tmp_path / "doc.yaml").write_text(yaml.safe_dump(document))
    done = wsproxy("spec", "infer", str(demo), "--against", str(tmp_path / "doc.yaml"), "--format", "json")
    assert done.returncode == 1, done.stderr
    changes = json.loads(done.stdout)["changes"]
    assert {"impact": "breaking", "kind": "required-removed", "message": "request delete", "pointer": "/payload/reason",
            "words": "required by the document, never in the traffic"} in changes
    # against the hand-written document the demo only leaves parts unused: no drift that breaks it
    done = wsproxy("spec", "infer", str(demo), "--against", str(HAND_WRITTEN), "--format", "json")
    assert done.returncode == 0, done.stdout
    report = json.loads(done.stdout)
    assert report["breaking"] == 0
    assert {"impact": "compatible", "kind": "message-removed", "message": "reply new error", "pointer": "",
            "words": "in the document, not seen in the traffic: errorResponse"} in report["changes"]


# --- replay and rerun with --spec ---

async def test_replay_with_spec_reports_a_client_that_breaks_the_document(chat_server, proxy, tmp_path) -> None:
    from helpers import child, free_port, stop, until_listening
    demo = await demo_recording(chat_server, proxy, tmp_path / "demo.duckdb")
    port = free_port()
    async with child("replay", str(demo), "--listen", f"127.0.0.1:{port}", "--spec", str(HAND_WRITTEN),
                     "--match", "loose", "--report", str(tmp_path / "div.jsonl")) as process:
        await until_listening(f"ws://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{port}/chat?user=User1") as ws:
            await ws.send_str('{"type":"request","timestamp":1,"id":"x","payloadType":"subscribe","payload":{"lastEventId":"1"}}')
            await asyncio.sleep(0.5)
        await stop(process)
    divergences = [json.loads(line) for line in (tmp_path / "div.jsonl").read_text().splitlines()]
    spec = [d for d in divergences if d["kind"] == "spec"]
    assert spec and "spec-type" in spec[0]["message"] and "/payload/lastEventId" in spec[0]["message"]


async def test_rerun_with_spec_checks_the_live_servers_answers(chat_server, proxy, tmp_path) -> None:
    demo = await demo_recording(chat_server, proxy, tmp_path / "demo.duckdb")
    document = load_document(HAND_WRITTEN)
    document["components"]["schemas"]["UserRef"]["properties"]["userId"] = {"type": "integer"}
    (tmp_path / "doc.yaml").write_text(yaml.safe_dump(document))
    done = await asyncio.to_thread(wsproxy, "rerun", str(demo), "--upstream", chat_server.url, "--spec",
                                   str(tmp_path / "doc.yaml"), "--format", "json", "--db", str(tmp_path / "re.duckdb"))
    assert done.returncode == 1, done.stderr
    found = recorded(tmp_path / "re.duckdb", "SELECT DISTINCT code, pointer FROM violations WHERE code LIKE 'spec-%'")
    assert ("spec-type", "/payload/userId") in found


# --- bad documents: one line, exit 2 ---

@pytest.mark.parametrize("text, said", [
    ("asyncapi: 2.6.0\ninfo: {title: t, version: '1'}\nchannels: {}\n", "wsproxy reads AsyncAPI 3 documents"),
    ("{ not yaml: [", "neither YAML nor JSON"),
    ("asyncapi: 3.0.0\ninfo: {title: t, version: '1'}\n", "no operation with a request or an event"),
    ("asyncapi: 3.0.0\noperations:\n  x: {action: send, messages: [{$ref: '#/components/messages/none'}]}\n",
     "names nothing in the document"),
    ("asyncapi: 3.0.0\noperations:\n  x: {action: publish}\n", "not send or receive"),
    ("- just\n- a list\n", "is not an AsyncAPI document"),
])
async def test_a_bad_document_is_one_line_and_exit_2(chat_server, proxy, tmp_path, text, said) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    demo = tmp_path / "demo.jsonl"
    demo.write_text("")
    for args in (["check", str(FIXTURES / "schema-v7-demo.duckdb"), "--spec", str(spec)],
                 ["spec", "diff", str(spec), str(HAND_WRITTEN)]):
        done = wsproxy(*args)
        assert done.returncode == 2 and said in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    with pytest.raises(SpecError):
        load_contract(spec)


def test_record_refuses_a_bad_document_before_listening(tmp_path) -> None:
    done = wsproxy("record", "--spec", str(tmp_path / "missing.yaml"), "--db", str(tmp_path / "x.duckdb"))
    assert done.returncode == 2 and "cannot read" in done.stderr
    assert not (tmp_path / "x.duckdb").exists()


def test_infer_needs_messages(tmp_path) -> None:
    empty = tmp_path / "empty.jsonl"
    shutil.copy(FIXTURES / "schema-v1-demo.duckdb", tmp_path / "v1.duckdb")
    done = wsproxy("spec", "infer", str(tmp_path / "nothing.duckdb"))
    assert done.returncode == 2 and "does not exist" in done.stderr
    empty.write_text("not json\n")
    done = wsproxy("spec", "infer", str(empty))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = wsproxy("spec", "infer", str(tmp_path / "v1.duckdb"), "--format", "json")  # an old recording reads too
    assert done.returncode == 0 and msgspec.json.decode(done.stdout)["asyncapi"] == "3.0.0"


def test_every_session_of_every_recording_is_read(tmp_path) -> None:
    sources = [FIXTURES / "schema-v7-demo.duckdb", FIXTURES / "playwright-1.65-chromium.har"]
    done = wsproxy("spec", "infer", *map(str, sources), "--format", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    demo_only = json.loads(wsproxy("spec", "infer", str(sources[0]), "--format", "json").stdout)
    both = document["components"]["messages"]["subscribeRequest"]["x-wsproxy-observations"]
    assert both == demo_only["components"]["messages"]["subscribeRequest"]["x-wsproxy-observations"] + 1
    assert load_recording(sources[1]).connections


# --- the fast path is never looser than the schema's own checks ---

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(-2, 2, allow_nan=False),
                     st.sampled_from(["", "a", "image", "file", "new", "request", "event", "response", "x" * 5]))
_JSON = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["messageId", "chatId", "message", "kind", "url", "attachments", "error",
                                     "code", "lastEventId", "count", "userId", "from", "extra"]), inner, max_size=4)),
    max_leaves=12)
_VALID = [  # protocol.md's messages, each valid against the hand-written document
    {"type": "request", "timestamp": 1, "id": "a", "payloadType": "new",
     "payload": {"chatId": "b", "message": "hi", "attachments": [{"kind": "image", "url": "u", "size": 3}]}},
    {"type": "request", "timestamp": 1.5, "id": "s", "payloadType": "subscribe", "payload": {"lastEventId": 2}},
    {"type": "response", "timestamp": 1, "id": "s", "payload": {"lastEventId": 9, "count": 1}},
    {"type": "response", "timestamp": 1, "id": "a", "payload": {"error": {"code": "not_found", "message": "m"}}},
    {"type": "event", "timestamp": 1, "id": 3, "eventType": "new",
     "payload": {"messageId": 1, "chatId": "a", "from": "a", "message": "m"}},
    {"type": "event", "timestamp": 1, "eventType": "typing", "payload": {"chatId": "b"}},
]
_PATHS = [(), ("payload",), ("payload", "attachments"), ("payload", "attachments", 0), ("payload", "error")]


@st.composite
def _ENVELOPES(draw):
    import copy
    envelope = copy.deepcopy(draw(st.sampled_from(_VALID)))
    for _ in range(draw(st.integers(0, 2))):
        node = envelope
        for step in draw(st.sampled_from(_PATHS)):
            inside = isinstance(node, list) and isinstance(step, int) and step < len(node)
            if inside or (isinstance(node, dict) and step in node):
                node = node[step]
        if isinstance(node, dict):
            key = draw(st.sampled_from([*node, "extra"]))
            if draw(st.booleans()) and key in node:
                del node[key]
            else:
                node[key] = draw(_JSON)
    return envelope


@pytest.mark.core
@settings(max_examples=400, deadline=None)
@given(_ENVELOPES())
def test_the_fast_path_vouches_only_for_valid_messages(envelope) -> None:
    from wsproxy.core.json_schema import Problem
    contract = _HAND_CONTRACT()
    raw = json.dumps(envelope)
    messages = [*contract.requests.values(), *contract.server_events.values(), *contract.client_events.values(),
                *(m for replies in contract.replies.values() for m in replies)]
    vouched = 0
    for message in messages:
        problems: list[Problem] = []
        message.check(envelope, "", problems)
        if message.valid(raw):
            vouched += 1
            assert problems == [], (message.name, raw, problems)
    if envelope in _VALID:
        assert vouched >= 1  # the fast path does vouch for valid messages: this test can fail


def _HAND_CONTRACT():
    global _CONTRACT
    if "_CONTRACT" not in globals():
        _CONTRACT = load_contract(HAND_WRITTEN)
    return _CONTRACT


@pytest.mark.core
def test_a_document_from_the_servers_view_with_allof_and_channel_messages() -> None:
    # Written another way than ours: the server's view (it receives requests and sends events), the
    # envelope as an allOf of a shared base, the operation's messages left to its channel's, the
    # discriminator as a one-value enum, a Multi Format Schema Object.
    from wsproxy.core.protocol import decode
    from wsproxy.core.spec_contract import Contract
    document = {
        "asyncapi": "3.0.0", "info": {"title": "t", "version": "1"},
        "channels": {
            "requests": {"address": "/chat", "messages": {"new": {"$ref": "#/components/messages/new"}}},
            "events": {"address": "/chat", "messages": {"typing": {"$ref": "#/components/messages/typing"}}}},
        "operations": {
            "onNew": {"action": "receive", "channel": {"$ref": "#/channels/requests"},
                      "reply": {"messages": [{"$ref": "#/components/messages/answer"}]}},
            "sendTyping": {"action": "send", "channel": {"$ref": "#/channels/events"}}},
        "components": {
            "schemas": {"Envelope": {"type": "object", "required": ["type", "timestamp"],
                                     "properties": {"type": {"type": "string"}, "timestamp": {"type": "number"},
                                                    "id": {"type": "string"}}}},
            "messages": {
                "new": {"payload": {"allOf": [{"$ref": "#/components/schemas/Envelope"}, {
                    "properties": {"type": {"enum": ["request"]}, "payloadType": {"enum": ["new"]},
                                   "payload": {"type": "object", "required": ["chatId"]}}}]}},
                "answer": {"payload": {"schemaFormat": "application/schema+json;version=draft-07", "schema": {
                    "type": "object", "properties": {"payload": {"type": "object", "required": ["messageId"]}}}}},
                "typing": {"payload": {"type": "object", "properties": {
                    "type": {"const": "event"}, "eventType": {"const": "typing"}, "timestamp": {"type": "number"},
                    "payload": {"type": "object", "required": ["userId"]}}}}}}}
    contract = Contract(document, "server.yaml")
    assert list(contract.requests) == ["new"] and list(contract.server_events) == ["typing"]

    def problems(sender: str, text: str, answers: str | None = None) -> list[tuple[str, str]]:
        return [(code, pointer) for code, pointer, _ in contract.check_message(sender, decode("text", text, sender), answers)]
    assert problems("client", '{"type":"request","timestamp":1,"id":"a","payloadType":"new","payload":{"chatId":"b"}}') == []
    assert problems("client", '{"type":"request","timestamp":1,"id":"a","payloadType":"new","payload":{}}') == [
        ("spec-required", "/payload/chatId")]
    assert problems("server", '{"type":"response","timestamp":1,"id":"a","payload":{}}', "new") == [
        ("spec-reply", "/payload/messageId")]
    assert problems("server", '{"type":"event","timestamp":1,"eventType":"typing","payload":{"userId":"u"}}') == []
    assert problems("client", '{"type":"event","timestamp":1,"eventType":"typing","payload":{"chatId":"u"}}') == [
        ("spec-unknown-type", "/eventType")]  # the document has typing from the server only
