"""Security: loopback by default and a warning otherwise, secrets redacted in recordings and in
every export, the live query endpoint only for this user, traffic never reaching the terminal raw."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request

import aiohttp
import pytest

from helpers import eventually, wsproxy
from wsproxy.store.files import sidecar_path

SECRET = "s3cr3t-t0ken-value"


def test_record_listens_on_loopback_by_default_and_warns_otherwise() -> None:
    from wsproxy.record.session import RecordOptions, parse_listen
    assert parse_listen(RecordOptions().listen)[0] == "127.0.0.1"
    process = subprocess.Popen([sys.executable, "-m", "wsproxy", "record", "--listen", "0.0.0.0:0", "--db",
                                "/tmp/wsproxy-public-warning.duckdb", "--quiet"], stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
    finally:
        process.terminate()
        process.wait(10)
    assert line.startswith("Warning: listening on 0.0.0.0: other machines can connect to this proxy")


async def test_secrets_are_redacted_in_every_export(upstream, proxy, tmp_path) -> None:
    session = await proxy(upstream)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{session.url}/echo?user=a&token={SECRET}",
                               headers={"Authorization": f"Bearer {SECRET}", "Cookie": f"sid={SECRET}"}) as ws:
        await ws.send_str("hello")
        await ws.receive(timeout=5)
    await session.stop()
    db = str(session.options.db)
    for fmt, name in (("jsonl", "x.jsonl"), ("har", "x.har")):
        assert wsproxy("export", db, "--format", fmt, "-o", str(tmp_path / name)).returncode == 0
        text = (tmp_path / name).read_text()
        assert SECRET not in text and "[REDACTED]" in text, fmt
    assert wsproxy("export", db, "--format", "parquet", "-o", str(tmp_path / "pq")).returncode == 0
    for parquet in (tmp_path / "pq").iterdir():
        assert SECRET.encode() not in parquet.read_bytes()


async def test_the_live_query_endpoint_is_for_this_user_only(chat_server, proxy, tmp_path) -> None:
    session = await proxy(chat_server.url, db=tmp_path / "live.duckdb")
    sidecar = sidecar_path(session.options.db)
    await eventually(sidecar.exists)
    assert stat.S_IMODE(os.stat(sidecar).st_mode) == 0o600
    info = json.loads(sidecar.read_text())
    request = urllib.request.Request(f"http://127.0.0.1:{info['port']}/query", method="POST",
                                     data=json.dumps({"sql": "SELECT 1"}).encode())
    with pytest.raises(urllib.error.HTTPError) as refused:  # no token: nothing
        await asyncio.to_thread(urllib.request.urlopen, request, None, 5)
    assert refused.value.code == 403
    assert session.live_query._runner.addresses[0][0] == "127.0.0.1"  # loopback only
    await session.stop()


@pytest.mark.parametrize("sql", ["ATTACH '/tmp/other.duckdb' AS other", "INSTALL httpfs", "CALL pragma_version()",
                                 "CREATE TABLE x (a INTEGER)", "SET memory_limit = '1MB'"])
def test_query_cannot_write_attach_or_configure(sql) -> None:
    from pathlib import Path
    golden = Path(__file__).parent.parent / "fixtures" / "schema-v1-demo.duckdb"
    result = wsproxy("query", str(golden), sql)
    assert result.returncode == 2 and "read-only" in result.stderr


async def test_terminal_escapes_in_traffic_never_reach_the_terminal(upstream, proxy, tmp_path) -> None:
    evil = "\x1b[2J\x1b]0;pwned\x07[bold red]markup[/]"
    session = await proxy(upstream)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{session.url}/echo?user={evil[:4]}") as ws:
        await ws.send_str(evil)
        await ws.receive(timeout=5)
        await ws.send_str(json.dumps({"type": "request", "timestamp": 1, "id": evil, "payloadType": "new",
                                      "payload": {"chatId": "x", "message": evil}}))
        await ws.receive(timeout=5)
    await session.stop()
    db = str(session.options.db)
    for args in (["show", db], ["check", db], ["diagram", db], ["query", db, "SELECT text FROM frames"],
                 ["connections", db]):
        result = wsproxy(*args)
        assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout, args
    assert "\\x1b[2J" in wsproxy("show", db).stdout  # shown escaped, not dropped
