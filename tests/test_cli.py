"""The command line: help, version, one-line errors with exit codes, the demo end to end."""

from __future__ import annotations

import socket
import subprocess
import sys

import duckdb
import pytest


def wsproxy(*args: str, timeout: float = 60, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wsproxy", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_help_lists_every_command_and_version_prints() -> None:
    result = wsproxy("--help")
    assert result.returncode == 0
    for command in ("record", "demo", "chat-server", "chat-client"):
        assert command in result.stdout
    assert "--install-completion" in result.stdout
    version = wsproxy("--version")
    assert version.returncode == 0 and version.stdout.strip() == "wsproxy 0.1.0"


@pytest.mark.parametrize("args,message", [
    (["record", "--upstream", "http://x"], "must be a ws:// or wss:// URL"),
    (["record", "--listen", "127.0.0.1:notaport"], "is not HOST:PORT"),
    (["record", "--tls-cert", "only.pem"], "--tls-cert and --tls-key go together"),
    (["record", "--log-format", "xml"], "--log-format must be text or json"),
    (["record", "--event-loop", "trio"], "--event-loop must be asyncio, uvloop or auto, not 'trio'"),
    (["chat-server", "--faults", "bogus"], "unknown fault 'bogus'"),
    (["chat-client", "ws://127.0.0.1:9", "--scenario", "dance"], "unknown scenario"),
])
def test_bad_input_is_one_error_line_and_exit_2(args: list[str], message: str) -> None:
    result = wsproxy(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr


def test_port_in_use_is_a_clear_error(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = wsproxy("record", "--listen", f"127.0.0.1:{port}", "--db", str(tmp_path / "x.duckdb"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("Error: address already in use")
    assert "Traceback" not in result.stderr


def test_unreachable_server_for_the_scripted_client_is_one_line(unused_tcp_port) -> None:
    result = wsproxy("chat-client", f"ws://127.0.0.1:{unused_tcp_port}")
    assert result.returncode == 2 and result.stderr.startswith("Error: cannot talk to")


def test_demo_records_the_overview_flow_and_prints_a_summary(tmp_path) -> None:
    result = wsproxy("demo", "--db", str(tmp_path / "demo.duckdb"), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Recorded session 1" in result.stdout and "Example query" in result.stdout
    with duckdb.connect(str(tmp_path / "demo.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM connections").fetchone()[0] == 3
        kinds = dict(con.execute("SELECT msg_type, count(*) FROM frames WHERE kind='text' GROUP BY 1").fetchall())
    assert kinds == {"request": 13, "response": 13, "event": 15}
    assert "Protocol check: 0 errors  0 warnings  0 info" in result.stdout
    assert f"Sequence diagram: {tmp_path / 'demo.html'}" in result.stdout.replace("\n", "")
    assert "sequenceDiagram" in (tmp_path / "demo.html").read_text()


def test_demo_with_faults_shows_live_findings(tmp_path) -> None:
    result = wsproxy("demo", "--db", str(tmp_path / "demo.duckdb"), "--faults", "duplicate-response,binary", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ERROR   duplicate-response conn 1 #" in result.stdout and "INFO    binary-message" in result.stdout
    assert "Protocol check: 1 error  0 warnings  1 info" in result.stdout


# --- wsproxy check ---

@pytest.fixture(scope="module")
def faulty_recording(tmp_path_factory):
    """A recording of the overview flow against a server that duplicates a response and sends binary."""
    import asyncio

    from wsproxy.chat.client import overview_flow
    from wsproxy.chat.faults import Faults
    from wsproxy.chat.server import start_chat_server
    from wsproxy.record.session import RecordOptions, RecordSession
    db = tmp_path_factory.mktemp("check") / "faulty.duckdb"

    async def record(faults: str, label: str) -> None:
        server = await start_chat_server("127.0.0.1", 0, Faults.parse(faults))
        session = RecordSession(RecordOptions(listen="127.0.0.1:0", upstream=server.url, db=db, label=label))
        await session.start()
        await overview_flow(session.url)
        await session.stop()
        await server.stop()

    async def both() -> None:
        await record("", "clean")
        await record("duplicate-response,binary", "faulty")
    asyncio.run(both())
    return db


def test_check_reports_findings_grouped_and_exits_1_on_errors(faulty_recording) -> None:
    result = wsproxy("check", str(faulty_recording))
    assert result.returncode == 1, result.stderr
    assert "session 2 (faulty)" in result.stdout and "conn 4" in result.stdout
    assert "ERROR   duplicate-response × 1" in result.stdout and "INFO    binary-message × 1" in result.stdout
    assert "1 error  0 warnings  1 info  →  FAIL" in result.stdout


def test_check_a_clean_session_exits_0(faulty_recording) -> None:
    result = wsproxy("check", str(faulty_recording), "--session", "1")
    assert result.returncode == 0 and "0 errors  0 warnings  0 info  →  OK" in result.stdout


def test_check_json_for_scripts(faulty_recording) -> None:
    import json
    result = wsproxy("check", str(faulty_recording), "--format", "json")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["session_id"] == 2 and report["label"] == "faulty"
    assert report["counts"] == {"error": 1, "warning": 0, "info": 1}
    assert {f["code"] for f in report["findings"]} == {"duplicate-response", "binary-message"}
    assert all(f["conn_id"] and f["seq"] and f["ts"].endswith("+00:00") for f in report["findings"])


def test_check_profile_and_fail_on(faulty_recording, tmp_path) -> None:
    profile = tmp_path / "lenient.toml"
    profile.write_text('name = "lenient"\n[severities]\nduplicate-response = "warning"\n')
    lenient = wsproxy("check", str(faulty_recording), "--profile", str(profile))
    assert lenient.returncode == 0 and "WARNING duplicate-response" in lenient.stdout and "profile lenient" in lenient.stdout
    strict = wsproxy("check", str(faulty_recording), "--profile", str(profile), "--fail-on", "warning")
    assert strict.returncode == 1


@pytest.mark.parametrize("args,code,message", [
    (["check", "/nonexistent.duckdb"], 2, "does not exist"),
    (["check", "{db}", "--session", "9"], 2, "no session 9 in this recording (sessions: 1, 2)"),
    (["check", "{db}", "--format", "xml"], 2, "--format must be text or json"),
    (["check", "{db}", "--profile", "/nonexistent.toml"], 2, "profile /nonexistent.toml does not exist"),
    (["check", "{notdb}"], 2, "is not a DuckDB recording"),
])
def test_check_errors_are_one_line(faulty_recording, tmp_path, args, code, message) -> None:
    notdb = tmp_path / "notes.duckdb"
    notdb.write_text("not a database")
    result = wsproxy(*(a.format(db=faulty_recording, notdb=notdb) for a in args))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and len(lines) == 1 and message in lines[0], result.stderr


# --- wsproxy replay and export ---

GOLDEN = __import__("pathlib").Path(__file__).parent.parent / "fixtures" / "schema-v1-demo.duckdb"


@pytest.mark.parametrize("args,message", [
    (["replay", str(GOLDEN), "--timing", "fast"], "--timing 'fast': use asap, recorded or scale:F"),
    (["replay", str(GOLDEN), "--match", "fuzzy"], "--match must be strict or loose"),
    (["replay", str(GOLDEN), "--bind", "user"], "--bind must be query:NAME or header:NAME"),
    (["replay", "/nonexistent.duckdb"], "does not exist"),
    (["replay", str(GOLDEN), "--session", "7"], "no session 7 in this recording"),
    (["export", str(GOLDEN), "-o", "/tmp/x.xml", "--format", "xml"], "--format 'xml' is not supported"),
])
def test_replay_and_export_errors_are_one_line(args, message) -> None:
    result = wsproxy(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr


def test_export_writes_jsonl_that_replay_reads(tmp_path) -> None:
    out = tmp_path / "demo.jsonl"
    result = wsproxy("export", str(GOLDEN), "-o", str(out))
    assert result.returncode == 0 and "wrote 47 frames" in result.stderr
    lines = out.read_text().splitlines()
    assert lines[0].startswith('{"record":"wsproxy-jsonl","version":1')
    assert sum('"record":"frame"' in line for line in lines) == 47


async def test_replay_serves_the_demo_with_zero_divergences_and_reports_them_otherwise(tmp_path) -> None:
    import asyncio
    import shutil
    import signal

    from wsproxy.chat.client import ChatClient, overview_flow
    db = tmp_path / "demo.duckdb"
    shutil.copy(GOLDEN, db)

    async def serve(*extra: str) -> tuple[asyncio.subprocess.Process, str]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wsproxy", "replay", str(db), "--listen", f"127.0.0.1:{port}", *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
        line = await asyncio.wait_for(process.stderr.readline(), 20)
        assert b"replaying session 1 (demo)" in line, line
        return process, f"ws://127.0.0.1:{port}"

    process, url = await serve("--fail-on-divergence")
    await overview_flow(url)
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    assert b"replayed to 3 client(s) (0 refused): 14 messages received, 27 sent; no divergence" in err

    process, url = await serve("--fail-on-divergence")
    client = await ChatClient.connect(url, "User1")
    await client.request("read", {"messageId": 99}, check=False)
    await client.close()
    await asyncio.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    text = err.decode()
    assert process.returncode == 1, text
    assert "DIVERGE mismatch conn 1  expected request subscribe {} (recorded seq 1), got request read" in text
    assert "kept in" in text and "replay_divergences" in text
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT kind FROM replay_divergences ORDER BY ts").fetchall() == [("mismatch",), ("closed-early",)]


# --- exit codes mean the same in every command ---

@pytest.mark.parametrize("command", [
    ["check"], ["replay"], ["query", "{file}", "SELECT 1"], ["show"], ["sessions"], ["connections"], ["diagram"],
    ["export", "{file}", "-o", "{out}"], ["rerun", "{file}", "--upstream", "ws://127.0.0.1:1"],
    ["diff", "{file}", "--session", "1", "--session", "2"],
])
def test_an_unreadable_recording_exits_2_in_every_command(tmp_path, command) -> None:
    notdb = tmp_path / "notes.duckdb"
    notdb.write_bytes(b"\x00not a database at all\x00" * 10)
    args = [a.format(file=notdb, out=tmp_path / "out.jsonl") for a in command]
    if "{file}" not in command:
        args.append(str(notdb))
    result = wsproxy(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("Error: "), (command, result.stderr)


@pytest.mark.parametrize("command", [["check", str(GOLDEN)], ["record", "--listen", "127.0.0.1:0"]])
def test_a_bad_fail_on_is_the_same_error_everywhere(command) -> None:
    result = wsproxy(*command, "--fail-on", "sometimes")
    assert result.returncode == 2
    assert result.stderr.strip() == "Error: --fail-on must be error, warning or none, not 'sometimes'"


@pytest.mark.parametrize("command", [["check", str(GOLDEN)], ["query", str(GOLDEN), "SELECT 1"],
                                     ["sessions", str(GOLDEN)], ["connections", str(GOLDEN)]])
def test_a_bad_format_exits_2_in_every_command(command) -> None:
    result = wsproxy(*command, "--format", "yaml")
    assert result.returncode == 2 and result.stderr.startswith("Error: --format must be ") and "not 'yaml'" in result.stderr


def test_every_command_documents_the_exit_codes() -> None:
    from typer.testing import CliRunner

    from wsproxy.cli import app
    from wsproxy.core.errors import EXIT_CODES_HELP
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert len(names) >= 13
    for name in names:
        result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "400"})
        assert "Exit status: 0 ok; 1 findings" in " ".join(result.output.split()), name
    assert "130 interrupted" in EXIT_CODES_HELP


def test_ctrl_c_exits_130(tmp_path) -> None:
    import signal
    import time
    process = subprocess.Popen([sys.executable, "-m", "wsproxy", "show", str(GOLDEN), "--follow"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert process.stdout is not None and process.stdout.readline()  # it printed the timeline: it is following
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 130, err


def test_loop_uvloop_without_uvloop_says_how_to_get_it() -> None:
    import importlib.util
    if importlib.util.find_spec("uvloop") is not None:
        pytest.skip("uvloop is installed here")
    result = wsproxy("record", "--listen", "127.0.0.1:0", "--event-loop", "uvloop")
    assert result.returncode == 2
    assert result.stderr.strip() == ("Error: --event-loop uvloop: uvloop is not installed (pip install uvloop), or "
                                     "use --event-loop asyncio")
    old = wsproxy("record", "--listen", "127.0.0.1:0", "--loop", "uvloop")  # the old name still works, with a note
    assert old.returncode == 2 and old.stderr.splitlines() == [
        "Warning: record --loop is deprecated: use --event-loop (replay --loop means something else)",
        "Error: --event-loop uvloop: uvloop is not installed (pip install uvloop), or use --event-loop asyncio"]


def test_paths_labels_and_urls_are_printed_verbatim(tmp_path) -> None:
    """Rich markup in a user's value is shown, never read: "runs/[b]/today.duckdb" stays whole."""
    folder = tmp_path / "[b]"
    folder.mkdir()
    demo = wsproxy("demo", "--db", str(folder / "today.duckdb"), timeout=120)
    assert demo.returncode == 0 and f"{folder}/today.duckdb" in demo.stdout, demo.stdout
    export = wsproxy("export", str(folder / "today.duckdb"), "-o", str(folder / "x.jsonl"))
    assert f"{folder}/x.jsonl" in export.stderr, export.stderr
    imported = wsproxy("import", str(folder / "x.jsonl"), "--db", str(folder / "y.duckdb"), "--label", "[red]login bug")
    assert f"from {folder}/x.jsonl into {folder}/y.duckdb" in " ".join(imported.stderr.split()), imported.stderr
    check = wsproxy("check", str(folder / "y.duckdb"))
    assert "([red]login bug)" in check.stdout and f"{folder}/y.duckdb" in check.stdout, check.stdout
    sessions = wsproxy("sessions", str(folder / "y.duckdb"), "--format", "markdown")
    assert "| [red]login bug |" in sessions.stdout, sessions.stdout
