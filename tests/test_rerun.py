"""`wsproxy rerun` and `wsproxy diff` over real sockets: the overview flow recorded against the reference
chat server, rerun against fresh (changed, faulty, refusing, vanishing) servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from aiohttp import web

from helpers import recorded
from wsproxy.chat.client import overview_flow
from wsproxy.chat.faults import FAULTS, Faults
from wsproxy.chat.server import CORE_KEY, start_chat_server
from wsproxy.record.session import RecordOptions, RecordSession
from wsproxy.replay.source import load_recording
from wsproxy.rerun.runner import RerunOptions, UpstreamUnreachable, run_rerun


async def record_flow(db: Path) -> None:
    server = await start_chat_server()
    proxy = RecordSession(RecordOptions(listen="127.0.0.1:0", upstream=server.url, db=db, label="flow"))
    await proxy.start()
    await overview_flow(proxy.url)
    await proxy.stop()
    await server.stop()


@pytest.fixture
async def flow(tmp_path) -> Path:
    db = tmp_path / "flow.duckdb"
    await record_flow(db)
    return db


async def rerun_against(db: Path, faults: str = "", first_message_id: int = 1000, **options):
    server = await start_chat_server(faults=Faults.parse(faults), first_message_id=first_message_id)
    try:
        return await run_rerun(load_recording(db, 1), RerunOptions(upstream=server.url, db=db, **options))
    finally:
        await server.stop()


def signature(differences) -> set[tuple]:
    return {(d.conn_id, d.seq, d.kind, d.path) for d in differences}


async def test_a_server_with_other_message_ids_answers_the_same_and_gets_its_own_ids_back(flow) -> None:
    result = await rerun_against(flow, first_message_id=1000)
    assert result.differences == []
    assert result.session_id == 2 and result.messages == 41
    sent = [json.loads(text) for (text,) in recorded(
        flow, "SELECT text FROM frames JOIN connections USING (conn_id) WHERE session_id = 2 AND sender = 'client' "
              "AND text LIKE '%messageId%' ORDER BY ts")]
    ids = [m["payload"]["messageId"] for m in sent]
    assert ids and all(i >= 1000 for i in ids), ids  # delivered/read/edit/delete carry the live ids
    original = [json.loads(text)["payload"]["messageId"] for (text,) in recorded(
        flow, "SELECT text FROM frames JOIN connections USING (conn_id) WHERE session_id = 1 AND sender = 'client' "
              "AND text LIKE '%messageId%' ORDER BY ts")]
    assert [i - 999 for i in ids] == original
    # the rerun is a session like any: recorded with its label, checked live (no finding)
    assert recorded(flow, "SELECT label FROM sessions WHERE session_id = 2")[0][0].startswith("rerun of session 1 against ws://127.0.0.1:")
    assert recorded(flow, "SELECT count(*) FROM violations v JOIN connections c USING (conn_id) "
                          "WHERE c.session_id = 2")[0][0] == 0


# What each fault of the reference server changes, and nothing else: (conn, recorded seq, kind, path).
FAULT_DIFFERENCES = {
    "drop-response": {(2, 4, "missing", None), (0, None, "finding", "unanswered-request")},
    "duplicate-response": {(1, None, "unexpected", None), (0, None, "finding", "duplicate-response")},
    "orphan-response": {(1, None, "unexpected", None), (0, None, "finding", "orphan-response")},
    "skip-event-id": {(0, None, "finding", "event-id-gap")},
    "repeat-event-id": {(0, None, "finding", "event-id-not-increasing")},
    # the event without an id is not stored, so the later catch-up announces and sends one fewer
    "missing-event-id": {(1, 3, "missing-field", "id"), (3, 2, "changed", "payload.count"), (3, 3, "missing", None),
                         (0, None, "finding", "stateful-event-without-id")},
    "short-catchup": {(3, 5, "missing", None), (0, None, "finding", "event-id-gap"),
                      (0, None, "finding", "subscribe-catchup-mismatch")},
    "ms-timestamps": {(1, 2, "changed", "timestamp"), (0, None, "finding", "timestamp-unit")},
    "invalid-json": {(1, None, "unexpected", None), (0, None, "finding", "invalid-json")},
    "binary": {(1, None, "unexpected", None), (0, None, "finding", "binary-message")},
}


def test_every_fault_of_the_reference_server_is_covered() -> None:
    assert set(FAULT_DIFFERENCES) == set(FAULTS)


@pytest.mark.parametrize("fault", sorted(FAULT_DIFFERENCES))
async def test_each_server_fault_causes_its_difference_and_no_other(flow, fault) -> None:
    result = await rerun_against(flow, fault, wait=0.5)
    assert signature(result.differences) == FAULT_DIFFERENCES[fault]
    assert all(d.message for d in result.differences)


async def test_twenty_copies_at_once_find_nothing_and_make_twenty_times_the_traffic(flow) -> None:
    single = await rerun_against(flow)
    many = await rerun_against(flow, copies=20, vary=[("query", "user")])
    assert many.differences == [], many.differences[:3]
    assert len(many.copies) == 20 and many.messages == 20 * single.messages
    users = {q for (q,) in recorded(flow, f"SELECT DISTINCT query FROM connections WHERE session_id = {many.session_id}")}
    assert len(users) == 40 and "user=User17" in users and "user=User220" in users  # User1 and User2, copies 1..20
    assert recorded(flow, f"SELECT count(*) FROM connections WHERE session_id = {many.session_id}")[0][0] == 60


async def test_rename_substitutes_per_copy_in_the_url_and_payloads(flow) -> None:
    result = await rerun_against(flow, copies=2, renames=[("User", "Member{copy}-")])
    assert result.differences == []
    queries = {q for (q,) in recorded(flow, f"SELECT DISTINCT query FROM connections WHERE session_id = {result.session_id}")}
    assert queries == {"user=Member1-1", "user=Member1-2", "user=Member2-1", "user=Member2-2"}


@pytest.mark.parametrize("form", ["jsonl", "har"])
async def test_a_jsonl_or_har_source_reruns_into_a_recording_beside_it(flow, tmp_path, form) -> None:
    from wsproxy.inspect.exporter import export_session
    source = tmp_path / f"flow.{form}"
    export_session(flow, source, form, 1)
    target = tmp_path / f"flow.{form}.rerun.duckdb"
    server = await start_chat_server(first_message_id=50)
    try:
        result = await run_rerun(load_recording(source), RerunOptions(upstream=server.url, db=target))
    finally:
        await server.stop()
    assert result.differences == [], result.differences
    assert recorded(target, "SELECT count(*) FROM frames")[0][0] == recorded(
        flow, "SELECT count(*) FROM frames JOIN connections USING (conn_id) WHERE session_id = 1 AND kind <> 'ping'")[0][0]


async def test_a_server_that_refuses_the_handshake_is_a_difference_per_connection(flow, tmp_path) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=403, text="go away")

    app = web.Application()
    app.router.add_get("/{tail:.*}", refuse)
    url, runner = await serve(app)
    try:
        result = await run_rerun(load_recording(flow), RerunOptions(upstream=url, db=tmp_path / "r.duckdb", wait=0.2))
    finally:
        await runner.cleanup()
    assert {(d.conn_id, d.kind, d.expected, d.got) for d in result.differences if d.kind != "finding"} == {
        (1, "handshake", 101, 403), (2, "handshake", 101, 403), (3, "handshake", 101, 403)}


async def test_a_server_that_vanishes_mid_run_is_a_close_and_what_went_missing(flow, tmp_path) -> None:
    async def vanish(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()
        request.transport.abort()  # no close frame: the TCP connection just ends
        return ws

    app = web.Application()
    app.router.add_get("/{tail:.*}", vanish)
    url, runner = await serve(app)
    try:
        result = await run_rerun(load_recording(flow), RerunOptions(upstream=url, db=tmp_path / "r.duckdb", wait=0.3))
    finally:
        await runner.cleanup()
    kinds = {(d.conn_id, d.kind) for d in result.differences}
    assert {(1, "close"), (1, "missing"), (2, "close"), (3, "close")} <= kinds
    close = next(d for d in result.differences if d.kind == "close" and d.conn_id == 1)
    assert close.expected is None and close.got in (1006, 1011), close


async def test_nothing_listening_is_one_clear_error(flow, unused_tcp_port) -> None:
    with pytest.raises(UpstreamUnreachable, match=r"cannot reach the upstream ws://127\.0\.0\.1:.*is the server running"):
        await run_rerun(load_recording(flow), RerunOptions(upstream=f"ws://127.0.0.1:{unused_tcp_port}", db=flow))


async def serve(app: web.Application) -> tuple[str, web.AppRunner]:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return f"ws://127.0.0.1:{runner.addresses[0][1]}", runner


# --- the commands: exit codes, JSON, JUnit, diff ---

async def cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "wsproxy", *args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE,
                                                   env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode, stdout.decode(), stderr.decode()


async def test_rerun_command_exit_codes_json_and_junit(flow, tmp_path) -> None:
    from junitparser import JUnitXml

    async def rerun_cli(faults: str, *args: str) -> tuple[int, str, str]:
        server = await start_chat_server(faults=Faults.parse(faults), first_message_id=300)  # fresh state each time
        try:
            return await cli("rerun", str(flow), "--upstream", server.url, "--wait", "0.5", *args)
        finally:
            await server.stop()

    code, stdout, stderr = await rerun_cli("", "--format", "json")
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["differences"] == 0 and report["items"] == [] and report["rerun_session"] == 2
    assert report["latency"]["new"]["rerun"]["count"] == 5 and report["messages_per_second"] > 0

    code, stdout, stderr = await rerun_cli("drop-response")
    assert code == 1, stderr
    assert "no response ok came for request User2-002" in stdout and "2 difference(s)" in stdout
    assert "connection 2 /chat?user=User2" in stdout

    junit = tmp_path / "rerun.xml"
    code, _, stderr = await rerun_cli("drop-response", "--format", "junit", "-o", str(junit))
    assert code == 1, stderr
    cases = [case for suite in JUnitXml.fromfile(str(junit)) for case in suite]
    assert len(cases) == 4  # three connections and the checker's findings
    failed = {case.name: [r.message for r in case.result] for case in cases if case.result}
    assert failed == {"connection 2 /chat?user=User2": ["no response ok came for request User2-002"],
                      "findings of the live checker": ["unanswered-request: 1 now, 0 in the recording"]}

    # the default session is the newest that is not itself a rerun: still session 1
    code, stdout, _ = await rerun_cli("", "--format", "json", "-q")
    assert code == 0 and json.loads(stdout)["session"] == 1 and json.loads(stdout)["rerun_session"] == 5

    code, stdout, _ = await cli("diff", str(flow), "--session", "1", "--session", "3", "--format", "json")
    assert code == 1 and json.loads(stdout)["differences"] == 2
    code, stdout, _ = await cli("diff", str(flow), "--session", "1", "--session", "2")
    assert code == 0 and "no differences" in stdout
    code, stdout, _ = await cli("diff", str(flow), "--session", "3", "--session", "4")
    assert code == 0, stdout  # two reruns against the same faulty server


@pytest.mark.parametrize("args, message", [
    (["--upstream", "ws://127.0.0.1:1"], "Error: cannot reach the upstream ws://127.0.0.1:1"),
    (["--upstream", "ws://127.0.0.1:1", "--format", "junit"], "Error: --format junit writes a file: add -o FILE"),
    (["--upstream", "ws://127.0.0.1:1", "--vary", "user"], "Error: --vary 'user': write query:NAME or header:NAME"),
    (["--upstream", "ws://127.0.0.1:1", "--rename", "nothing"], "Error: --rename 'nothing': write FROM=TO"),
    (["--upstream", "ws://127.0.0.1:1", "--header", "novalue"], "Error: --header 'novalue': write NAME:VALUE"),
    (["--upstream", "ws://127.0.0.1:1", "--ignore", "payload[x]"], "Error: bad JSON path 'payload[x]': a list index"),
])
async def test_rerun_usage_errors_are_one_line_and_exit_2(flow, args, message) -> None:
    code, _, stderr = await cli("rerun", str(flow), "-q", *args)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(message), stderr


async def test_diff_needs_two_sessions(flow) -> None:
    code, _, stderr = await cli("diff", str(flow))
    assert code == 2 and stderr.strip() == f"Error: {flow} holds 1 session(s); diff needs two (record or rerun another)"


async def test_a_profile_names_fields_to_ignore_for_diff_and_rerun(flow, tmp_path) -> None:
    await rerun_against(flow, "missing-event-id", wait=0.5)  # session 2: the catch-up count changed, among others
    profile = tmp_path / "p.toml"
    profile.write_text('[rerun]\nignore = ["payload.count"]\nrebind = ["payload.lastEventId"]\n')
    _, plain, _ = await cli("diff", str(flow), "--session", "1", "--session", "2", "--format", "json")
    _, quiet, _ = await cli("diff", str(flow), "--session", "1", "--session", "2", "--format", "json",
                            "--profile", str(profile))
    paths = [d["path"] for d in json.loads(plain)["items"]]
    assert "payload.count" in paths
    assert [d["path"] for d in json.loads(quiet)["items"]] == [p for p in paths if p != "payload.count"]
    profile.write_text('[rerun]\nskip = ["x"]\n')
    code, _, stderr = await cli("diff", str(flow), "--session", "1", "--session", "2", "--profile", str(profile))
    assert code == 2 and "[rerun] has unknown key(s) skip" in stderr


async def test_a_wss_upstream_is_rerun_with_its_ca(flow, tmp_path) -> None:
    import ssl

    import trustme

    from wsproxy.chat.server import make_app
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    runner = web.AppRunner(make_app(first_message_id=70), handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    url = f"wss://127.0.0.1:{runner.addresses[0][1]}"
    try:
        trusted = await run_rerun(load_recording(flow, 1), RerunOptions(upstream=url, db=flow, ca_file=str(ca_file)))
        untrusted = await run_rerun(load_recording(flow, 1), RerunOptions(upstream=url, db=flow, wait=0.2))
    finally:
        await runner.cleanup()
    assert trusted.differences == []
    assert {d.kind for d in untrusted.differences} >= {"handshake"}  # the proxy could not verify it: 502
    assert {d.got for d in untrusted.differences if d.kind == "handshake"} == {502}


async def test_ctrl_c_stops_a_rerun_with_what_it_did_recorded(flow) -> None:
    import signal
    server = await start_chat_server(faults=Faults.parse("drop-response"))  # the rerun then waits --wait 60
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wsproxy", "rerun", str(flow), "--upstream", server.url, "--wait", "60",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
        for _ in range(200):  # until the rerun has sent the request whose response never comes
            await asyncio.sleep(0.05)
            if server.runner.app[CORE_KEY].faults.fired:  # the response was dropped: the rerun waits now
                break
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        await server.stop()
    assert process.returncode == 130, stderr
    assert stderr.decode().strip().endswith(f"interrupted: what the rerun did so far is recorded in {flow} (its newest session)")
    [(ended, frames)] = recorded(flow, "SELECT s.ended_at IS NOT NULL, (SELECT count(*) FROM frames JOIN connections c "
                                       "USING (conn_id) WHERE c.session_id = 2) FROM sessions s WHERE session_id = 2")
    assert ended and frames >= 10


async def test_diff_against_another_file(flow, tmp_path) -> None:
    from wsproxy.inspect.exporter import export_session
    await rerun_against(flow, "drop-response", wait=0.5)  # session 2 of flow.duckdb
    fixture = tmp_path / "fixture.jsonl"
    export_session(flow, fixture, "jsonl", 1)
    code, stdout, stderr = await cli("diff", str(fixture), "--against", str(flow), "--format", "json")
    report = json.loads(stdout)
    assert code == 1 and report["session"] == 1 and report["other_session"] == 2, stderr
    assert report["other_source"] == str(flow) and report["differences"] == 2
    code, stdout, _ = await cli("diff", str(fixture), "--against", str(flow), "--session", "1", "--session", "1")
    assert code == 0 and f"against {flow} session 1" in stdout and "no differences" in stdout
