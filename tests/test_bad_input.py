"""Bad input everywhere: one clear line on stderr, a non-zero exit, never a traceback; and the pure
core (decoding, checking, replay matching) never raises on generated traffic."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import wsproxy

READERS = {
    "check": ["check", "{f}"],
    "query": ["query", "{f}", "SELECT 1"],
    "replay": ["replay", "{f}", "--listen", "127.0.0.1:0"],
    "export": ["export", "{f}", "-o", "{tmp}/out.jsonl"],
    "sessions": ["sessions", "{f}"],
    "connections": ["connections", "{f}"],
    "show": ["show", "{f}"],
    "diagram": ["diagram", "{f}"],
    "import": ["import", "{f}", "--db", "{tmp}/into.duckdb"],
    "ui": ["ui", "{f}", "--listen", "127.0.0.1:0"],
    "rerun": ["rerun", "{f}", "--upstream", "ws://127.0.0.1:9"],
    "record": ["record", "--db", "{f}", "--listen", "127.0.0.1:0", "--quiet"],
}
DAMAGE = ("truncated", "damaged")  # a real recording cut short (a copy onto a full disk), or with a bad block


def bad_file(kind: str, tmp) -> str:
    path = tmp / f"{kind}.duckdb"
    if kind == "missing":
        return str(path)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "corrupt":
        path.write_bytes(b"DUCK" + bytes(range(256)) * 64)
    elif kind == "foreign":
        with duckdb.connect(str(path)) as con:
            con.execute("CREATE TABLE customers (id INTEGER, name VARCHAR)")
    elif kind in DAMAGE:
        data = (Path(__file__).parent.parent / "fixtures" / "schema-v4-demo.duckdb").read_bytes()
        data = data[:len(data) // 2] if kind == "truncated" else data[:16384] + bytes(range(256)) * 64 + data[16384 + 16384:]
        path.write_bytes(data)
    elif kind == "newer":
        with duckdb.connect(str(path)) as con:
            con.execute("CREATE TABLE wsproxy_meta (key VARCHAR, value VARCHAR); CREATE TABLE frames (x INTEGER);"
                        "INSERT INTO wsproxy_meta VALUES ('application', 'wsproxy'), ('schema_version', '99')")
    return str(path)


# import reads HAR and JSONL sources: for it a DuckDB file of any kind is just "corrupt" input
CASES = [(command, kind) for command in sorted(READERS)
         for kind in ("missing", "empty", "corrupt", "foreign", "newer", *DAMAGE)
         if not (command == "import" and kind in ("foreign", "newer", *DAMAGE))
         and not (command in ("ui", "rerun", "record") and kind not in DAMAGE)]


@pytest.mark.parametrize("command,kind", CASES)
def test_every_reading_command_refuses_bad_files_in_one_line(command, kind, tmp_path) -> None:
    target = bad_file(kind, tmp_path)
    args = [a.format(f=target, tmp=tmp_path) for a in READERS[command]]
    result = wsproxy(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stdout
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr


def test_a_replay_source_with_no_session(tmp_path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text('{"record":"wsproxy-jsonl","version":1}\n')
    result = wsproxy("replay", str(path))
    assert result.returncode == 2 and "holds no session record" in result.stderr


def test_a_port_in_use_for_replay(tmp_path) -> None:
    import socket
    from pathlib import Path
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        golden = Path(__file__).parent.parent / "fixtures" / "schema-v1-demo.duckdb"
        result = wsproxy("replay", str(golden), "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 2 and "address already in use" in result.stderr and "Traceback" not in result.stderr
    assert "choose another HOST:PORT" in result.stderr  # the option is --listen, not --port


def test_a_negative_message_size_limit_is_refused() -> None:
    result = wsproxy("record", "--max-message-size", "-1", "--db", "/tmp/never.duckdb")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--max-message-size must be 0 (no limit) or a number of bytes, not -1" in result.stderr


async def test_record_into_a_file_that_ui_holds_names_ui(tmp_path) -> None:
    import asyncio
    import shutil
    import sys
    db = tmp_path / "held.duckdb"
    shutil.copy(Path(__file__).parent.parent / "fixtures" / "schema-v4-demo.duckdb", db)
    ui = await asyncio.create_subprocess_exec(sys.executable, "-m", "wsproxy", "ui", str(db), "--listen", "127.0.0.1:0",
                                              stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await asyncio.wait_for(ui.stdout.readline(), 20)
        result = await asyncio.to_thread(wsproxy, "record", "--db", str(db), "--listen", "127.0.0.1:0", "--quiet")
    finally:
        ui.terminate()
        await ui.wait()
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "another process (`wsproxy ui`, `wsproxy query` or a DuckDB client)" in result.stderr
    assert "another `wsproxy record`" not in result.stderr


# --- the pure core never raises on generated traffic ---

def _overview_plan():
    from pathlib import Path

    from wsproxy.core.replay_plan import ReplayPlan
    from wsproxy.replay.source import load_recording
    return load_recording(Path(__file__).parent.parent / "fixtures" / "schema-v1-demo.duckdb"), ReplayPlan


MESSAGES = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=30),
    st.builds(lambda t, i, p, pl: json.dumps({"type": t, "id": i, "payloadType": p, "payload": pl, "timestamp": 1}),
              st.sampled_from(["request", "event", "response", "x"]), st.text(max_size=5),
              st.sampled_from(["subscribe", "new", "read", "zz"]),
              st.dictionaries(st.sampled_from(["chatId", "message", "messageId", "lastEventId"]),
                              st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["bind", "msg", "msg", "close"]), st.sampled_from(["User1", "User2", "X"]),
                          MESSAGES, st.sampled_from(["strict", "loose"])), max_size=30))
def test_replay_matching_never_raises(steps) -> None:
    from wsproxy.core.replay_plan import render
    session, ReplayPlan = _overview_plan()
    plans = {"strict": ReplayPlan(session), "loose": ReplayPlan(session, match="loose")}
    bound: dict[str, list[int]] = {"strict": [], "loose": []}
    now = 0
    for action, user, message, mode in steps:
        plan, slots = plans[mode], bound[mode]
        now += 1000
        if action == "bind" or not slots:
            result = plan.bind("/chat", f"user={user}", {}, [], now)
            if result.slot is not None:
                slots.append(result.slot)
                sends = plan.connected(result.slot, now)
            else:
                continue
        elif action == "close":
            plan.client_closed(slots.pop(), now)
            sends = plan.release(now)
        else:
            kind = "binary" if isinstance(message, bytes) else "text"
            sends, _ = plan.client_message(slots[-1], kind, message, now)
        for send in sends:
            render(send, now)  # every send renders to something that can go on the wire
