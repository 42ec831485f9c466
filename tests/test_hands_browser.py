"""Hands on the wire in a real Chromium (Playwright): a breakpoint holds alice's message to bob, the
page shows it held, the editor previews the findings of an edit, the edited message reaches bob and
the recording says so; composing to the client; resending with a renamed id. Any page or console
error fails the test. The screenshots are the ones docs/ui.md shows."""

from __future__ import annotations

import asyncio
import json

import pytest

from test_browser import browser  # noqa: F401 - the Chromium fixture
from test_ui_browser import page, recorded_live, shot  # noqa: F401 - the page fixture, shared helpers
from wsproxy.chat.client import ChatClient
from wsproxy.core.inject import parse_breakpoint
from wsproxy.ui.reader import RecorderReader
from wsproxy.ui.server import UiServer

pytest.importorskip("playwright.async_api")

MARKUP = '<img src=x onerror="window.__pwned = 1">'


class Held:
    def __init__(self, session, server: UiServer, alice: ChatClient, bob: ChatClient) -> None:
        self.session, self.server, self.alice, self.bob = session, server, alice, bob

    def page(self, path: str = "/") -> str:
        return self.server.url.replace("/?", f"{path}?")

    def conn(self, user: str) -> int:
        return recorded_live(self, f"SELECT conn_id FROM connections WHERE query = 'user={user}'")[0][0]  # type: ignore[arg-type]


async def until_recorded(view: Held, sql: str) -> list[tuple]:
    """The rows ``sql`` finds once the writer has written them (it writes a few times a second)."""
    for _ in range(100):
        rows = recorded_live(view, sql)  # type: ignore[arg-type]
        if rows:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"never recorded: {sql}")


@pytest.fixture
async def held(chat_server, proxy):
    session = await proxy(chat_server.url, intercept=[parse_breakpoint("to-server type=new")])
    reader = RecorderReader(session.sql)
    server = UiServer(reader, session.recorder.session_id, hands=session.hands)
    await server.start()
    alice = await ChatClient.connect(session.url, "alice")
    bob = await ChatClient.connect(session.url, "bob")
    await alice.subscribe()
    await bob.subscribe()
    yield Held(session, server, alice, bob)
    await alice.close()
    await bob.close()
    await server.stop()
    reader.close()


async def test_hold_edit_and_forward_in_the_page(held, page) -> None:  # noqa: F811
    asking = asyncio.create_task(held.alice.request("new", {"chatId": "bob", "message": "hello bob"}))
    conn = held.conn("alice")
    await page.goto(held.page(f"/connections/{conn}"))
    row = page.locator("#held .held-row")
    await row.wait_for()
    assert "hello bob" in await row.inner_text()
    await page.locator("#held-count", has_text="1 held").wait_for()
    assert not asking.done()  # the server has not had it
    await row.get_by_role("button", name="Edit…").click()
    editor = page.locator("#detail textarea.editor")
    await editor.wait_for()
    original = json.loads(await editor.input_value())
    await editor.fill("{not json")
    await page.locator("#detail .preview-findings", has_text="invalid-json").wait_for()
    edited = {**original, "payload": {"chatId": "bob", "message": f"edited: {MARKUP}"}}
    await editor.fill(json.dumps(edited))
    await page.locator("#detail .preview-findings", has_text="no findings").wait_for()
    await shot(page, "ui-hold-edit")
    await page.get_by_role("button", name="Forward edited").click()
    answer = await asyncio.wait_for(asking, 5)
    assert "messageId" in answer
    event = await held.bob.wait_event("new", message=f"edited: {MARKUP}")
    assert event is not None
    await page.locator("#held-count").wait_for(state="hidden")
    # the frame now reads as sent, marked as edited by hand, with what alice had written
    seq = (await until_recorded(held, f"SELECT seq FROM injections WHERE conn_id = {conn} AND action = 'edit'"))[0][0]
    await page.goto(held.page(f"/connections/{conn}") + f"&seq={seq}")
    mark = page.locator("#detail .inject-mark", has_text="edit")
    await mark.wait_for()
    assert "(ui)" in await mark.inner_text()
    await page.locator("#detail pre.payload", has_text="edited:").first.wait_for()
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("#detail img, #held img, #rows img").count() == 0


async def test_drop_and_breakpoints_switched_from_the_page(held, page) -> None:  # noqa: F811
    asking = asyncio.create_task(held.alice.request("new", {"chatId": "bob", "message": "drop me"}))
    conn = held.conn("alice")
    await page.goto(held.page(f"/connections/{conn}"))
    await page.locator("#held .held-row").get_by_role("button", name="Drop").click()
    await page.locator("#held").wait_for(state="hidden")
    await asyncio.sleep(0.3)
    assert not asking.done()  # dropped: no response will come
    asking.cancel()
    box = page.locator("#breakpoints input[type=checkbox]")
    await box.uncheck()
    await page.locator("#breakpoint-form input[name=rule]").fill("drop everything")
    page.allowed.append("status of 400")  # refused on purpose: the browser logs the 400
    await page.locator("#breakpoint-form button").click()
    await page.locator("#breakpoint-error", has_text="is an action").wait_for()
    answer = await asyncio.wait_for(held.alice.request("new", {"chatId": "bob", "message": "not held"}), 5)
    assert "messageId" in answer
    assert await until_recorded(held, "SELECT action, source FROM injections ORDER BY ts") == [("drop", "ui")]


async def test_compose_to_the_client_and_resend_from_the_page(held, page) -> None:  # noqa: F811
    held.session.hands.set_breakpoint(held.session.hands.breakpoints[0].id, enabled=False)
    await held.alice.request("new", {"chatId": "bob", "message": "first"})
    conn = held.conn("alice")
    await page.goto(held.page(f"/connections/{conn}"))
    await page.get_by_role("button", name="Send a message…").click()
    await page.locator("#detail select.templates").select_option(label="← event without an id (empty)")
    editor = page.locator("#detail textarea.editor")
    template = json.loads(await editor.input_value())  # an empty event, stamped now
    assert template["type"] == "event" and template["eventType"] == "" and "id" not in template
    await editor.fill(json.dumps({**template, "eventType": "typing", "payload": {"userId": "zed"}}))
    await page.locator("#detail .preview-findings", has_text="no findings").wait_for()
    await shot(page, "ui-compose")
    await page.get_by_role("button", name="Send", exact=True).click()
    await page.locator("#detail", has_text="Sent as #").wait_for()
    typing = await held.alice.wait_event("typing", userId="zed")
    assert typing is not None
    # resend alice's request: its id was used, so it goes with a new one
    seq = (await until_recorded(held, f"SELECT seq FROM frames WHERE conn_id = {conn} AND payload_type = 'new'"))[0][0]
    await page.goto(held.page(f"/connections/{conn}") + f"&seq={seq}")
    await page.get_by_role("button", name="Compose from this…").click()  # any recorded message as a start
    assert json.loads(await page.locator("#detail textarea.editor").input_value())["payload"]["message"] == "first"
    await page.goto(held.page(f"/connections/{conn}") + f"&seq={seq}")
    await page.get_by_role("button", name="Resend").click()
    await page.locator("#resend-result", has_text="renamed to wsproxy-").wait_for()
    await shot(page, "ui-resend")
    await until_recorded(held, "SELECT 1 FROM injections WHERE action = 'resend'")
    actions = recorded_live(held, "SELECT action, source, sender FROM injections ORDER BY ts")  # type: ignore[arg-type]
    assert actions == [("compose", "ui", "server"), ("resend", "ui", "client")]


async def test_a_message_from_another_recording_is_pasted_and_sent_as_a_resend(held, page) -> None:  # noqa: F811
    held.session.hands.set_breakpoint(held.session.hands.breakpoints[0].id, enabled=False)
    first = await held.alice.request("new", {"chatId": "bob", "message": "mine"})
    assert "messageId" in first
    conn = held.conn("alice")
    used = (await until_recorded(held, f"SELECT msg_id FROM frames WHERE conn_id = {conn} AND payload_type = 'new'"))[0][0]
    elsewhere = json.dumps({"type": "request", "timestamp": 1600000000, "id": used, "payloadType": "new",
                            "payload": {"chatId": "bob", "message": "from another recording"}})
    await page.goto(held.page(f"/connections/{conn}"))
    await page.get_by_role("button", name="Send a message…").click()
    await page.locator("#detail textarea.editor").fill(elsewhere)
    await page.locator("#detail input[name=resend]").check()
    await page.get_by_role("button", name="Send", exact=True).click()
    await page.locator("#detail", has_text="renamed to wsproxy-").wait_for()
    assert await held.bob.wait_event("new", message="from another recording") is not None
    rows = await until_recorded(held, "SELECT i.action, i.source, f.msg_id FROM injections i JOIN frames f "
                                      "USING (conn_id, seq)")
    assert rows == [("resend", "ui", "wsproxy-1")]
