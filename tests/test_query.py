"""wsproxy query: read-only SQL, every output format, and queries while `record` writes the file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from helpers import eventually, wsproxy
from wsproxy.chat.client import overview_flow
from wsproxy.store.files import sidecar_path

GOLDEN = Path(__file__).parent.parent / "fixtures" / "schema-v1-demo.duckdb"


def test_json_keeps_types() -> None:
    result = wsproxy("query", str(GOLDEN), "SELECT conn_id, ts, payload, size > 0 AS sized, NULL AS nothing "
                                           "FROM messages WHERE payload_type = 'subscribe' ORDER BY conn_id LIMIT 1",
                     "--format", "json")
    [row] = json.loads(result.stdout)
    assert row["conn_id"] == 1 and row["payload"] == {} and row["sized"] is True and row["nothing"] is None
    assert row["ts"].startswith("2026-") and row["ts"].endswith("+00:00")


def test_csv_markdown_and_table() -> None:
    sql = "SELECT user_name, count(*) AS n FROM messages GROUP BY 1 ORDER BY 1"
    assert wsproxy("query", str(GOLDEN), sql, "--format", "csv").stdout == "user_name,n\nUser1,19\nUser2,22\n"
    assert wsproxy("query", str(GOLDEN), sql, "--format", "markdown").stdout == \
        "| user_name | n |\n| --- | --- |\n| User1 | 19 |\n| User2 | 22 |\n"
    table = wsproxy("query", str(GOLDEN), sql).stdout
    assert "user_name" in table and "User2" in table and "2 row(s)" in table


@pytest.mark.parametrize("sql,message", [
    ("DELETE FROM frames", "read-only: DELETE statements are refused"),
    ("SELECT 1; DROP TABLE frames", "read-only: DROP statements are refused"),
    ("COPY frames TO '/tmp/x.csv'", "read-only: COPY statements are refused"),
    ("SELEC 1", "the SQL does not parse"),
    ("SELECT nope FROM frames", "the query failed: Binder Error"),
])
def test_writes_and_bad_sql_are_one_line_errors(sql, message) -> None:
    result = wsproxy("query", str(GOLDEN), sql)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


async def test_query_while_record_writes_the_file(chat_server, proxy, tmp_path) -> None:
    session = await proxy(chat_server.url, db=tmp_path / "live.duckdb")
    await overview_flow(session.url)
    await eventually(lambda: session.recorder.stats.rows_written >= 47, timeout=5)
    assert sidecar_path(session.options.db).exists()
    count = await asyncio.to_thread(wsproxy, "query", str(session.options.db),
                                    "SELECT count(*) AS n FROM frames", "--format", "json")
    assert json.loads(count.stdout) == [{"n": session.recorder.stats.rows_written}], count.stderr
    views = await asyncio.to_thread(wsproxy, "query", str(session.options.db),
                                    "SELECT count(*) AS n FROM exchanges", "--format", "csv")
    assert views.stdout == "n\n13\n"
    write = await asyncio.to_thread(wsproxy, "query", str(session.options.db), "DELETE FROM frames")
    assert write.returncode == 2 and "read-only" in write.stderr
    await session.stop()
    assert not sidecar_path(session.options.db).exists()
