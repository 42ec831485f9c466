"""`wsproxy record --workers N` as a user runs it: N processes on one port writing one folder, a
100-connection load recorded whole, every command reading the folder, a worker that dies (issue 26).
The folder's parts in-process are in test_segments.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import duckdb
import pytest

from helpers import child, eventually, free_port, read_until, wsproxy
from wsproxy.chat.client import ChatClient, run_load
from wsproxy.chat.server import start_chat_server
from wsproxy.store.query import run_query

pytestmark = pytest.mark.slow


class Master:
    """The pool's process, its JSON log lines gathered as they come (a full pipe would stall it)."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process, self.url = process, url
        self.events: list[dict] = []
        self._drain = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                self.events.append({"event": "text", "line": line.decode()})

    def said(self) -> str:
        """The end of what it printed, for a failing assertion."""
        return "".join(event.get("line") or json.dumps(event) + "\n" for event in self.events)[-3000:]

    def of(self, kind: str) -> list[dict]:
        return [event for event in self.events if event.get("event") == kind]

    async def stop(self) -> tuple[int, dict]:
        """Ctrl-C; the exit code and the summary."""
        self.process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(self.process.wait(), 90)
        await asyncio.wait_for(self._drain, 10)
        summaries = self.of("summary")
        assert len(summaries) == 1, self.said()
        return code, summaries[0]


@asynccontextmanager
async def workers(upstream: str, folder: Path, *extra: str) -> AsyncIterator[Master]:
    port = free_port()
    async with child("record", "--listen", f"127.0.0.1:{port}", "--upstream", upstream, "--db", str(folder),
                     "--log-format", "json", *extra) as process:
        assert process.stderr is not None
        listening = json.loads((await read_until(process.stderr, '"event":"listening"', timeout=90))[-1])
        assert listening["url"] == f"ws://127.0.0.1:{port}" and listening["db"] == str(folder)
        yield Master(process, listening["url"])


def rows(folder: Path, sql: str) -> list[tuple]:
    return run_query(folder, sql).rows


async def test_a_hundred_connections_through_two_rotating_workers_are_recorded_whole(chat_server, tmp_path) -> None:
    folder = tmp_path / "staging"
    async with workers(chat_server.url, folder, "--workers", "2", "--rotate", "1s") as master:
        load = asyncio.create_task(run_load(master.url, users=100, messages=30, window=4, timeout=60))
        await eventually(lambda: len(list(folder.glob("*.duckdb"))) >= 2, timeout=30)
        # while both write: a live query and show --follow read every worker's segments
        live = await asyncio.to_thread(wsproxy, "query", str(folder), "SELECT count(*) AS n FROM frames",
                                       "--format", "json")
        assert live.returncode == 0, live.stderr
        assert json.loads(live.stdout)[0]["n"] >= 0
        async with child("show", str(folder), "--follow", env={**os.environ, "COLUMNS": "200"}) as show:
            assert show.stdout is not None
            await read_until(show.stdout, "new", timeout=60)
            show.send_signal(signal.SIGINT)
            await asyncio.wait_for(show.wait(), 20)
        result = await load
        assert result.responses == 3000 and result.events_received >= 3000
        code, summary = await master.stop()
    assert code == 0, master.said()
    assert not master.of("worker_died") and not master.of("recording_failed")
    assert summary["workers"] == 2 and summary["workers_lost"] == 0 and summary["connections"] == 100
    assert not any(summary["findings"].values()), summary["findings"]

    segments = sorted(p.name for p in folder.glob("*.duckdb"))
    assert {name.split("-")[1] for name in segments} == {"w000", "w001"}
    assert len(segments) > 2, "--rotate 1s rotated during the load"
    assert not list(folder.glob("*.wsproxy-live")) and not list(folder.glob("*.wal"))
    # every frame once, nothing lost: the rows are the workers' own counts added up
    assert rows(folder, "SELECT count(*), count(DISTINCT (conn_id, seq)) FROM frames") == [(summary["rows_written"],) * 2]
    assert rows(folder, "SELECT count(*) FROM messages") == [(summary["frames_client"] + summary["frames_server"],)]
    assert rows(folder, "SELECT count(*) FROM messages WHERE sender = 'client'") == [(3100,)]  # subscribe + 30 each
    assert rows(folder, "SELECT count(*), count(DISTINCT conn_id), count(closed_at) FROM connections") == [(100,) * 3]
    assert rows(folder, "SELECT count(*), count(response_seq) FROM exchanges") == [(3100, 3100)]
    assert rows(folder, "SELECT count(*) FROM violations") == [(0,)]
    assert rows(folder, "SELECT count(*), count(ended_at) FROM sessions") == [(1, 1)]
    # sequence numbers run on without a gap across the segments a connection spans
    assert rows(folder, "SELECT count(*) FROM (SELECT conn_id, max(seq) - count(*) AS gap FROM frames "
                        "GROUP BY conn_id) WHERE gap <> 0") == [(0,)]
    # both workers carried connections (each connection's id tells its worker: ids step by the worker count)
    assert rows(folder, "SELECT count(DISTINCT conn_id % 2) FROM connections") == [(2,)]
    check = wsproxy("check", str(folder), "--format", "json")
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["findings"] == []


async def _flow(url: str) -> None:
    """The overview's exchange: two users subscribe, one sends the other a message and it is delivered."""
    async with aiohttp.ClientSession() as http:
        alice = await ChatClient.connect(url, "alice", session=http)
        bob = await ChatClient.connect(url, "bob", session=http)
        await alice.subscribe()
        await bob.subscribe()
        await alice.request("new", {"chatId": "bob", "message": "hello from the folder"})
        await bob.wait_event("new", count=1)
        await alice.close()
        await bob.close()


async def test_every_command_reads_a_folder_of_two_sessions(tmp_path) -> None:
    folder = tmp_path / "rec"
    for _ in range(2):  # two recordings into one folder: sessions 1 and 2, each of a server just started
        server = await start_chat_server("127.0.0.1", 0)
        try:
            async with workers(server.url, folder, "--workers", "2", "--rotate", "1s") as master:
                await _flow(master.url)
                code, summary = await master.stop()
        finally:
            await server.stop()
        assert code == 0 and summary["connections"] == 2
    sessions = wsproxy("sessions", str(folder), "--format", "json")
    assert sessions.returncode == 0, sessions.stderr
    assert [s["session_id"] for s in json.loads(sessions.stdout)] == [1, 2]
    for args in (("connections", "--session", "1"), ("show", "--session", "2"), ("diagram",), ("check",),
                 ("query", "SELECT * FROM exchanges")):
        done = wsproxy(args[0], str(folder), *args[1:])
        assert done.returncode == 0, (args, done.stderr)
        assert done.stdout.strip(), args
    assert "hello from the folder" in wsproxy("show", str(folder), "--session", "1").stdout
    # the same flow twice: no semantic difference between the sessions
    diff = wsproxy("diff", str(folder), "--session", "1", "--session", "2")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    for fmt, name in (("jsonl", "one.jsonl"), ("har", "one.har"), ("parquet", "pq")):
        done = wsproxy("export", str(folder), "--session", "1", "--format", fmt, "-o", str(tmp_path / name))
        assert done.returncode == 0, (fmt, done.stderr)
    exported = [line for line in (tmp_path / "one.jsonl").read_text().splitlines() if '"seq":' in line]
    assert len(exported) == rows(folder, "SELECT count(*) FROM frames f JOIN connections c USING (conn_id) "
                                         "WHERE c.session_id = 1")[0][0] > 8
    packed = wsproxy("pack", str(folder), "-o", str(tmp_path / "one.duckdb"))
    assert packed.returncode == 0, packed.stderr
    with duckdb.connect(str(tmp_path / "one.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM frames").fetchall() == rows(folder, "SELECT count(*) FROM frames")
    # rerun against the real server, and against the folder replayed as a mock server
    server = await start_chat_server("127.0.0.1", 0)
    try:
        rerun = await asyncio.to_thread(wsproxy, "rerun", str(folder), "--session", "1", "--upstream", server.url)
    finally:
        await server.stop()
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    # the rerun is one more session of the folder, in a segment of its own
    assert [row[0] for row in rows(folder, "SELECT session_id FROM sessions ORDER BY 1")] == [1, 2, 3]
    port = free_port()
    async with child("replay", str(folder), "--session", "1", "--listen", f"127.0.0.1:{port}") as replay:
        assert replay.stderr is not None
        await read_until(replay.stderr, f"127.0.0.1:{port}", timeout=30)
        rerun = await asyncio.to_thread(wsproxy, "rerun", str(folder), "--session", "1", "--upstream",
                                        f"ws://127.0.0.1:{port}")
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    # the web view's API over the folder
    async with child("ui", str(folder), "--listen", "127.0.0.1:0") as ui:
        assert ui.stdout is not None
        url = (await asyncio.wait_for(ui.stdout.readline(), 30)).decode().strip()
        async with aiohttp.ClientSession() as http, http.get(url.replace("/?", "/api/summary?")) as response:
            assert response.status == 200
            body = await response.json()
        assert body["session"] == 4 and [s["id"] for s in body["sessions"]] == [1, 2, 3, 4], body
        assert len(body["connections"]) == 2  # the second rerun's (the newest session)


async def test_a_worker_that_dies_is_reported_and_the_others_carry_on(chat_server, tmp_path) -> None:
    folder = tmp_path / "rec"
    async with workers(chat_server.url, folder, "--workers", "2") as master:
        await run_load(master.url, users=10, messages=10)
        await eventually(lambda: rows(folder, "SELECT count(*) FROM messages WHERE sender = 'client'") == [(110,)],
                         timeout=20)  # both workers have written the load (a live query asks each of them)
        sidecars = sorted(folder.glob("*.wsproxy-live"))
        assert len(sidecars) == 2
        victim = json.loads(sidecars[0].read_text())["pid"]
        os.kill(victim, signal.SIGKILL)
        await eventually(lambda: master.of("worker_died"), timeout=20)
        died = master.of("worker_died")[0]
        assert died["worker"] == 0 and "worker 0" in died["message"], died
        # the other worker takes every new connection
        after = await run_load(master.url, users=10, messages=10)
        assert after.responses == 100
        code, summary = await master.stop()
    assert code == 2, master.said()
    assert summary["workers_lost"] == 1
    assert any("1 of 2 workers ended early" in e.get("message", "") for e in master.of("error"))
    # the dead worker's segment stays readable: what it had written is there
    assert rows(folder, "SELECT count(*) FROM messages WHERE sender = 'client'") == [(220,)]
    assert summary["frames_client"] < 220
    check = wsproxy("check", str(folder))
    assert check.returncode in (0, 1), check.stderr  # readable; its cut-off connections may be findings


async def test_the_web_view_and_fail_on_see_every_worker(faulty_chat_server, tmp_path) -> None:
    server = await faulty_chat_server("duplicate-response:always")
    folder = tmp_path / "rec"
    async with workers(server.url, folder, "--workers", "2", "--ui", "127.0.0.1:0", "--fail-on", "error") as master:
        await eventually(lambda: master.of("ui"), timeout=30)
        url = master.of("ui")[0]["url"]
        async with aiohttp.ClientSession() as http:
            clients = [await ChatClient.connect(master.url, f"user{i}", session=http) for i in range(6)]
            for client in clients:
                await client.subscribe()
            # the page's API reads both workers' segments while they are written
            opened: list[int] = []

            async def every_connection_shown() -> bool:
                async with http.get(url.replace("/?", "/api/summary?")) as response:
                    body = await response.json()
                opened[:] = [c["conn_id"] for c in body["connections"]]
                return len(opened) == 6
            deadline = asyncio.get_running_loop().time() + 20
            while not await every_connection_shown():
                assert asyncio.get_running_loop().time() < deadline, opened
                await asyncio.sleep(0.3)
            assert {conn_id % 2 for conn_id in opened} == {0, 1}, opened  # both workers' connections
            for client in clients:
                await client.close()
        code, summary = await master.stop()
    assert summary["findings"]["error"] >= 6, summary  # every subscribe answered twice, on either worker
    assert code == 1, master.said()  # --fail-on judged every worker's findings together


def test_workers_need_a_folder_and_sane_numbers(tmp_path) -> None:
    file = tmp_path / "one.duckdb"
    file.write_bytes(b"")
    for args, message in ((("--workers", "0"), "--workers"), (("--workers", "many"), "--workers"),
                          (("--workers", "2", "--db", str(file)), "folder")):
        done = wsproxy("record", "--upstream", "ws://127.0.0.1:9", "--listen", "127.0.0.1:0",
                       *(args if "--db" in args else (*args, "--db", str(tmp_path / "rec"))))
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


if sys.platform != "linux":  # SO_REUSEPORT as Linux has it; elsewhere one acceptor would hand sockets on
    pytestmark = [pytest.mark.slow, pytest.mark.skip(reason="record --workers is tested on Linux")]


async def test_every_worker_checks_against_the_spec_and_infer_reads_the_folder(chat_server, tmp_path) -> None:
    # `record --workers 2 --spec FILE`: each worker loads the document; a folder is inferred from like a file
    import yaml
    document = yaml.safe_load((Path(__file__).parent.parent / "docs" / "chat-protocol.asyncapi.yaml").read_text())
    document["components"]["messages"]["newResponse"]["payload"]["properties"]["payload"]["properties"]["messageId"] = {
        "type": "string"}  # the server answers with an integer: every `new` response breaks it
    spec = tmp_path / "strict.yaml"
    spec.write_text(yaml.safe_dump(document))
    folder = tmp_path / "rec"
    async with workers(chat_server.url, folder, "--workers", "2", "--spec", str(spec)) as master:
        await run_load(master.url, users=6, messages=5)
        code, _summary = await master.stop()
    assert code == 0, master.said()
    assert rows(folder, "SELECT count(*), min(pointer), count(DISTINCT conn_id) > 1 FROM violations "
                        "WHERE code = 'spec-reply'") == [(30, "/payload/messageId", True)]
    inferred = wsproxy("spec", "infer", str(folder), "--format", "json")
    assert inferred.returncode == 0, inferred.stderr
    messages = json.loads(inferred.stdout)["components"]["messages"]
    assert messages["newRequest"]["x-wsproxy-observations"] == 30
