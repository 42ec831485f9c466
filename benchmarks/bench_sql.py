"""What the SQL boundary costs (issue 23): the web view's statements run raw on a cursor against the
same statements through ``store.sql.UserSql`` (the parser's check, a cursor of its own, a READ ONLY
transaction, a deadline), interleaved A B A B in one run; and `wsproxy import` of a large HAR.

    .venv/bin/python benchmarks/bench_sql.py [--rounds 5] [--repeat 300] [--har-entries 100000]

The recording is fixtures/schema-v4-demo.duckdb (small on purpose: the fixed cost per statement is
what the boundary adds; a big statement's own time is the same either way).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wsproxy.store.files import create_reader_views
from wsproxy.store.recording import open_recording
from wsproxy.store.sql import UserSql
from wsproxy.ui.filters import FrameFilter
from wsproxy.ui.views import FRAME_COLUMNS, VERSION_SQL

ROOT = Path(__file__).parent.parent
CLAUSE, PARAMS = FrameFilter.from_query({"direction": "server", "where": "size > 10"}).sql()
STATEMENTS = [  # what a connection page asks, in the view's own words
    (VERSION_SQL, []),
    (f"SELECT count(*) FROM frames f WHERE f.conn_id = ?{CLAUSE}", [1, *PARAMS]),
    (f"SELECT {FRAME_COLUMNS} FROM frames f WHERE f.conn_id = ?{CLAUSE} ORDER BY f.seq LIMIT 200 OFFSET 0",
     [1, *PARAMS]),
]


def per_statement_ms(ask, repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        for sql, params in STATEMENTS:
            ask(sql, params)
    return (time.perf_counter() - started) / (repeat * len(STATEMENTS)) * 1000


def big_har(path: Path, entries: int) -> None:
    message = {"type": "send", "time": 1764583200.5, "opcode": 1}
    with path.open("w") as out:
        out.write('{"log": {"version": "1.2", "creator": {"name": "bench", "version": "1"}, "entries": [')
        for i in range(entries):
            request = json.dumps({"type": "request", "id": f"u{i}-1", "payloadType": "subscribe", "timestamp": 1,
                                  "payload": {}})
            entry = {"startedDateTime": "2025-12-01T10:00:00.000Z", "time": 12.5, "_resourceType": "websocket",
                     "request": {"method": "GET", "url": f"ws://127.0.0.1:8765/chat?user=u{i}", "headers": []},
                     "response": {"status": 101, "headers": []},
                     "_webSocketMessages": [{**message, "data": request},
                                            {**message, "type": "receive", "data": request.replace("request", "response")}]}
            out.write(("," if i else "") + json.dumps(entry))
        out.write("]}}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--har-entries", type=int, default=100_000)
    args = parser.parse_args()
    con = open_recording(ROOT / "fixtures" / "schema-v4-demo.duckdb")
    raw = con.cursor()
    create_reader_views(raw)
    guarded = UserSql(con)
    raw_ms, guarded_ms = [], []
    for _ in range(args.rounds):  # interleaved: A B A B
        raw_ms.append(per_statement_ms(lambda sql, params: raw.execute(sql, params).fetchall(), args.repeat))
        guarded_ms.append(per_statement_ms(lambda sql, params: guarded.run(sql, params, 10_000), args.repeat))
    guarded.close()
    raw_median, guarded_median = statistics.median(raw_ms), statistics.median(guarded_ms)
    print(f"per statement of a connection page, median of {args.rounds} rounds x {args.repeat}:")
    print(f"  raw cursor      {raw_median:.3f} ms   (rounds: {', '.join(f'{v:.3f}' for v in raw_ms)})")
    print(f"  UserSql.run     {guarded_median:.3f} ms   (rounds: {', '.join(f'{v:.3f}' for v in guarded_ms)})")
    print(f"  the boundary adds {guarded_median - raw_median:.3f} ms a statement ({guarded_median / raw_median:.2f}x)")
    with tempfile.TemporaryDirectory() as tmp:
        har, db = Path(tmp) / "big.har", Path(tmp) / "into.duckdb"
        big_har(har, args.har_entries)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "wsproxy", "import", str(har), "--db", str(db)], check=True,
                       capture_output=True)
        elapsed = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"import of a {har.stat().st_size / 1e6:.0f} MB HAR, {args.har_entries:,} entries x 2 messages: "
              f"{elapsed:.1f} s, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
