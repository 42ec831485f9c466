"""The reference chat server over real sockets: protocol.md behaviour, errors, faults."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from wsproxy.chat.client import ChatClient, ChatError, overview_flow, run_load
from wsproxy.chat.faults import Faults, FaultSpecError


async def test_overview_flow_end_to_end(chat_server) -> None:
    clients = await overview_flow(chat_server.url)
    user1, user2 = clients["User1"], clients["User2"]
    # User1's last phase: catch-up of 3 stored events (ids 2..4), then delivered and read.
    stateful1 = [(e.event_type, e.event_id) for e in user1.events if e.event_id is not None]
    assert stateful1 == [("new", 2), ("new", 3), ("new", 4), ("delivered", 5), ("read", 6)]
    # User2's stream (it never reconnected): delivered 1, then new, edit, delete of User1's message.
    stateful2 = [(e.event_type, e.event_id) for e in user2.events if e.event_id is not None]
    assert stateful2 == [("delivered", 1), ("new", 2), ("edit", 3), ("delete", 4)]
    new = next(e for e in user2.events if e.event_type == "new")
    assert new.payload.chatId == "User1" and new.payload.sender == "User1"
    assert new.payload.attachments[0].kind == "image"
    typing = next(e for e in user2.events if e.event_type == "typing")
    assert typing.event_id is None and typing.payload.userId == "User1"
    # User2 saw User1 go offline and come back (they had exchanged messages).
    presence = [(e.event_type, e.payload.userId) for e in user2.events if e.event_type in ("online", "offline")]
    assert presence == [("offline", "User1"), ("online", "User1")]
    for client in clients.values():  # nothing the server sent was off-protocol
        assert [f for m in client.received for f in m.findings] == []


async def test_catch_up_after_reconnect_sends_exactly_the_announced_events(chat_server) -> None:
    sender = await ChatClient.connect(chat_server.url, "alice")
    await sender.subscribe()
    for n in range(5):
        await sender.request("new", {"chatId": "bob", "message": f"m{n}"})
    bob = await ChatClient.connect(chat_server.url, "bob")
    result = await bob.subscribe(2)
    assert result == {"lastEventId": 5, "count": 3}
    assert [e.event_id for e in bob.events] == [3, 4, 5]
    await bob.close()
    again = await ChatClient.connect(chat_server.url, "bob", path="/any/other/path")
    assert await again.subscribe() == {"lastEventId": 5, "count": 5}
    assert [e.event_id for e in again.events] == [1, 2, 3, 4, 5]
    carol = await ChatClient.connect(chat_server.url, "carol")
    assert await carol.subscribe() == {"lastEventId": 0, "count": 0}
    await carol.close()
    await again.close()
    await sender.close()


async def test_second_connection_of_a_user_sees_the_same_stream(chat_server) -> None:
    alice = await ChatClient.connect(chat_server.url, "alice")
    bob1 = await ChatClient.connect(chat_server.url, "bob")
    bob2 = await ChatClient.connect(chat_server.url, "bob")
    for client in (alice, bob1, bob2):
        await client.subscribe()
    await alice.request("new", {"chatId": "bob", "message": "to both"})
    first, second = await bob1.wait_event("new"), await bob2.wait_event("new")
    assert first.event_id == second.event_id == 1
    assert alice.events == []  # the sender's own stream does not store its own action
    for client in (alice, bob1, bob2):
        await client.close()


async def test_error_codes(chat_server) -> None:
    alice = await ChatClient.connect(chat_server.url, "alice")
    bob = await ChatClient.connect(chat_server.url, "bob")

    async def error(client: ChatClient, payload_type: str, payload: dict) -> str:
        result = await client.request(payload_type, payload, check=False)
        return result["error"]["code"]

    assert await error(alice, "new", {"chatId": "bob", "message": "x"}) == "not_subscribed"
    await alice.subscribe()
    await bob.subscribe()
    assert await error(alice, "edit", {"messageId": 999, "message": "x"}) == "not_found"
    assert await error(alice, "delete", {"messageId": 999}) == "not_found"
    assert await error(alice, "read", {"messageId": 999}) == "not_found"
    assert await error(alice, "new", {"chatId": "bob"}) == "bad_request"  # bad payload
    assert await error(alice, "new", {"chatId": "alice", "message": "me"}) == "bad_request"
    assert await error(alice, "poke", {}) == "bad_request"  # unknown payloadType
    sent = await alice.request("new", {"chatId": "bob", "message": "hi"})
    assert await error(bob, "edit", {"messageId": sent["messageId"], "message": "x"}) == "forbidden"
    assert await error(alice, "delivered", {"messageId": sent["messageId"]}) == "forbidden"
    await alice.request("delete", {"messageId": sent["messageId"]})
    assert await error(alice, "edit", {"messageId": sent["messageId"], "message": "x"}) == "not_found"
    # an invalid envelope that still has an id is answered; invalid JSON is ignored
    await alice.ws.send_str("this is not json")
    await alice.ws.send_str('{"type":"request","id":"broken","payload":{}}')
    await asyncio.sleep(0.2)
    answer = [m for m in alice.received if m.msg_id == "broken"]
    assert answer and answer[0].response_payload()["error"]["code"] == "bad_request"
    await alice.ws.send_str('{"type":"request","timestamp":1700000000,"id":42,"payloadType":"read","payload":{}}')
    await asyncio.sleep(0.2)  # an integer id (invalid) is answered with that integer, so the client can pair it
    answer = [json.loads(m.raw) for m in alice.received if m.envelope is None and '"id":42' in m.raw]
    assert answer and answer[0]["type"] == "response" and answer[0]["payload"]["error"]["code"] == "bad_request"
    await alice.close()
    await bob.close()


async def test_connection_without_user_is_refused(chat_server) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(f"{chat_server.url}/chat")
        assert info.value.status == 400


async def test_load_generator_accounts_for_every_message(chat_server) -> None:
    result = await run_load(chat_server.url, users=5, messages=40, window=8)
    assert result.messages_sent == result.responses == 200
    assert result.events_received == 200


# --- faults: each produces exactly its misbehaviour ---

async def two_users(server, *, offline_messages: int = 0, live_messages: int = 2):
    """alice writes to bob: some messages while bob is away, then some live."""
    alice = await ChatClient.connect(server.url, "alice", timeout=1.0)
    await alice.subscribe()
    for n in range(offline_messages):
        await alice.request("new", {"chatId": "bob", "message": f"offline {n}"}, check=False)
    bob = await ChatClient.connect(server.url, "bob", timeout=1.0)
    await bob.subscribe()
    for n in range(live_messages):
        try:
            await alice.request("new", {"chatId": "bob", "message": f"live {n}"})
        except ChatError:
            pass
    await asyncio.sleep(0.2)
    await alice.close()
    await bob.close()
    return alice, bob


def all_findings(*clients: ChatClient) -> set[str]:
    return {f.code for c in clients for m in c.received for f in m.findings}


def event_ids(client: ChatClient) -> list[int | None]:
    return [e.event_id for e in client.events if e.event_type == "new"]


async def test_fault_drop_response(faulty_chat_server) -> None:
    server = await faulty_chat_server("drop-response")
    alice, bob = await two_users(server)
    responses = [m.msg_id for m in alice.received if m.msg_type == "response"]
    assert responses == ["alice-001", "alice-003"]  # subscribe answered, first new dropped
    assert event_ids(bob) == [1, 2]  # the action itself still happened
    assert all_findings(alice, bob) == set()


async def test_fault_duplicate_response(faulty_chat_server) -> None:
    server = await faulty_chat_server("duplicate-response")
    alice, _bob = await two_users(server)
    responses = [m.msg_id for m in alice.received if m.msg_type == "response"]
    assert responses == ["alice-001", "alice-001", "alice-002", "alice-003"]


async def test_fault_orphan_response(faulty_chat_server) -> None:
    server = await faulty_chat_server("orphan-response")
    alice, _ = await two_users(server)
    responses = [m.msg_id for m in alice.received if m.msg_type == "response"]
    assert responses == ["alice-001", "orphan-1", "alice-002", "alice-003"]


async def test_fault_skip_event_id(faulty_chat_server) -> None:
    server = await faulty_chat_server("skip-event-id")
    _, bob = await two_users(server, live_messages=3)
    assert event_ids(bob) == [1, 3, 4]


async def test_fault_repeat_event_id(faulty_chat_server) -> None:
    server = await faulty_chat_server("repeat-event-id")
    _, bob = await two_users(server, live_messages=3)
    assert event_ids(bob) == [1, 1, 2]


async def test_fault_missing_event_id(faulty_chat_server) -> None:
    server = await faulty_chat_server("missing-event-id")
    _, bob = await two_users(server, live_messages=3)
    assert event_ids(bob) == [None, 1, 2]


async def test_fault_short_catchup(faulty_chat_server) -> None:
    server = await faulty_chat_server("short-catchup")
    alice = await ChatClient.connect(server.url, "alice", timeout=1.0)
    await alice.subscribe()
    for n in range(3):
        await alice.request("new", {"chatId": "bob", "message": f"offline {n}"})
    bob = await ChatClient.connect(server.url, "bob", timeout=1.0)
    assert await bob.subscribe() == {"lastEventId": 3, "count": 3}
    await asyncio.sleep(0.2)
    assert event_ids(bob) == [1, 2]  # announced 3, sent 2
    await alice.close()
    await bob.close()


async def test_fault_ms_timestamps(faulty_chat_server) -> None:
    server = await faulty_chat_server("ms-timestamps")
    alice, bob = await two_users(server)
    stamps = [m.envelope.timestamp for m in alice.received]
    assert stamps[0] > 1e11 and all(s < 1e11 for s in stamps[1:])
    assert all_findings(alice, bob) == {"timestamp-unit"}


async def test_fault_invalid_json(faulty_chat_server) -> None:
    server = await faulty_chat_server("invalid-json")
    alice, bob = await two_users(server)
    assert alice.received[1].envelope is None
    assert all_findings(alice, bob) == {"invalid-json"}
    assert sum(1 for m in alice.received if m.envelope is None) == 1


async def test_fault_binary(faulty_chat_server) -> None:
    server = await faulty_chat_server("binary")
    alice, bob = await two_users(server)
    assert alice.received[1].kind == "binary"
    assert all_findings(alice, bob) == {"binary-message"}


async def test_fault_rates_are_seeded_and_always_means_always(faulty_chat_server) -> None:
    server = await faulty_chat_server("duplicate-response:always")
    alice, _ = await two_users(server)
    responses = [m.msg_id for m in alice.received if m.msg_type == "response"]
    assert responses == ["alice-001"] * 2 + ["alice-002"] * 2 + ["alice-003"] * 2
    first, second = Faults.parse("binary:0.5", seed=3), Faults.parse("binary:0.5", seed=3)
    assert [first.fire("binary") for _ in range(50)] == [second.fire("binary") for _ in range(50)]
    assert 5 < first.fired["binary"] < 45


@pytest.mark.parametrize("spec", ["nope", "binary:2", "binary:0", "binary:x"])
def test_bad_fault_specs_are_refused(spec: str) -> None:
    with pytest.raises(FaultSpecError):
        Faults.parse(spec)
