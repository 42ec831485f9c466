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
    (["chat-server", "--faults", "bogus"], "unknown fault 'bogus'"),
    (["chat-client", "ws://127.0.0.1:9", "--scenario", "dance"], "unknown scenario"),
])
def test_bad_input_is_one_error_line_and_exit_1(args: list[str], message: str) -> None:
    result = wsproxy(*args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr


def test_port_in_use_is_a_clear_error(tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = wsproxy("record", "--listen", f"127.0.0.1:{port}", "--db", str(tmp_path / "x.duckdb"))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("Error: address already in use")
    assert "Traceback" not in result.stderr


def test_unreachable_server_for_the_scripted_client_is_one_line(unused_tcp_port) -> None:
    result = wsproxy("chat-client", f"ws://127.0.0.1:{unused_tcp_port}")
    assert result.returncode == 1 and result.stderr.startswith("Error: cannot talk to")


def test_demo_records_the_overview_flow_and_prints_a_summary(tmp_path) -> None:
    result = wsproxy("demo", "--db", str(tmp_path / "demo.duckdb"), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Recorded session 1" in result.stdout and "Example query" in result.stdout
    with duckdb.connect(str(tmp_path / "demo.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM connections").fetchone()[0] == 3
        kinds = dict(con.execute("SELECT msg_type, count(*) FROM frames WHERE kind='text' GROUP BY 1").fetchall())
    assert kinds == {"request": 13, "response": 13, "event": 15}
