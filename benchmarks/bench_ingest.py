"""DuckDB ingestion paths for frame rows, side by side in one run.

    .venv/bin/python benchmarks/bench_ingest.py [--rows 200000] [--large 2000] [--growth 20000]

Compares executemany, a columnar Arrow batch (what the recorder uses), and a staging
Parquet file, each inserting realistic ``frames`` rows in batches of 10,000 with a
commit per batch and a final checkpoint. Target (issue 3): >= 200,000 frames/s on the chosen path.
Then the ceiling for 64 KiB messages of random text, stored as they are (what the recorder does
under load) and with ZSTD (what it does when it keeps up), and how it holds up as a recording of
them grows: with the recorder's settings, and with DuckDB merging row groups at every checkpoint
(its default).
"""

from __future__ import annotations

import argparse
import base64
import os
import tempfile
import time
from pathlib import Path

import msgspec
import pyarrow.parquet as pq

from wsproxy.core.protocol import decode
from wsproxy.core.rows import FrameRow, frame_row
from wsproxy.store.batches import frames_table, insert_frames
from wsproxy.store.files import open_for_writing

SAMPLES = [
    ("client", '{"type":"request","timestamp":1700000002.123,"id":"load0001-042","payloadType":"new","payload":{"chatId":"load0002","message":"message 42 from load0001"}}'),
    ("server", '{"type":"response","timestamp":1700000002.124,"id":"load0001-042","payload":{"messageId":4242}}'),
    ("server", '{"type":"event","timestamp":1700000002.125,"id":17,"eventType":"new","payload":{"messageId":4242,"chatId":"load0001","from":"load0001","message":"message 42 from load0001"}}'),
]


def make_rows(count: int) -> list[FrameRow]:
    parsed = [(sender, text, decode("text", text, sender)) for sender, text in SAMPLES]
    base = time.time_ns() // 1000
    return [frame_row(1 + i % 100, i, base + i, *parsed[i % 3][:1], "text", parsed[i % 3][1], parsed[i % 3][2])
            for i in range(count)]


def timed(name: str, rows: list[FrameRow], batch: int, insert, zstd: bool = True, merging: bool = False) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        con = open_for_writing(Path(tmp) / "bench.duckdb")  # the recorder's own settings
        if not zstd:
            con.execute("SET disabled_compression_methods = 'zstd'")  # as the recorder does under load
        if merging:
            con.execute("RESET max_vacuum_tasks")  # DuckDB's default: merge row groups at each checkpoint
        slowest = 0.0
        start = time.perf_counter()
        for offset in range(0, len(rows), batch):
            began = time.perf_counter()
            con.execute("BEGIN TRANSACTION")
            insert(con, rows[offset:offset + batch], Path(tmp))
            con.execute("COMMIT")  # DuckDB checkpoints within a commit when its log passes 16 MB
            slowest = max(slowest, time.perf_counter() - began)
        con.execute("CHECKPOINT")  # moving the WAL into the file is part of the cost, paid sooner or later
        elapsed = time.perf_counter() - start
        assert con.execute("SELECT count(*) FROM frames").fetchone()[0] == len(rows)
        con.close()
    rate = len(rows) / elapsed
    print(f"{name:<28}{len(rows):>10,}{rate:>16,.0f}{slowest * 1000:>18,.0f}")
    return rate


def by_executemany(con, chunk, _tmp) -> None:
    con.executemany("INSERT INTO frame_store VALUES (?, ?, make_timestamptz(?), " + ", ".join("?" * 15) + ")",
                    [msgspec.structs.astuple(row) for row in chunk])


def by_arrow(con, chunk, _tmp) -> None:
    insert_frames(con, chunk)  # the recorder's own path


def by_parquet(con, chunk, tmp) -> None:
    path = tmp / "staging.parquet"
    pq.write_table(frames_table(chunk), path)
    con.execute(f"INSERT INTO frame_store BY NAME SELECT * FROM read_parquet('{path}')")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=2_000, help="64 KiB rows for the large-message ceiling")
    parser.add_argument("--growth", type=int, default=20_000, help="64 KiB rows for the growing recording (0: skip)")
    args = parser.parse_args()
    rows = make_rows(args.rows)
    print(f"{'path':<28}{'rows':>10}{'rows/s':>16}{'slowest commit ms':>18}")
    slow = timed("executemany", rows[: max(args.batch, args.rows // 40)], args.batch, by_executemany)
    arrow = timed("arrow batch (recorder)", rows, args.batch, by_arrow)
    parquet = timed("staging parquet file", rows, args.batch, by_parquet)
    print(f"arrow / executemany: {arrow / slow:,.0f}x;  arrow / parquet: {arrow / parquet:.2f}x;  "
          f"target >= 200,000 rows/s: {'met' if arrow >= 200_000 else 'NOT met'}")
    large = large_rows(max(args.large, args.growth))
    print(f"\n64 KiB messages ({args.large:,}, batches of 100):")
    fast = timed("uncompressed (under load)", large[:args.large], 100, by_arrow, zstd=False)
    small = timed("ZSTD (keeping up)", large[:args.large], 100, by_arrow)
    print(f"= {fast * 64 / 1024:,.0f} MiB/s of messages recorded uncompressed, {small * 64 / 1024:,.0f} MiB/s with ZSTD")
    if args.growth:
        print(f"\nA growing recording: {args.growth:,} messages of 64 KiB ({args.growth * 64 / 1024 / 1024:,.2f} GiB), "
              f"batches of 100, uncompressed:")
        kept = timed("recorder (no merging)", large[:args.growth], 100, by_arrow, zstd=False)
        merged = timed("merging at each checkpoint", large[:args.growth], 100, by_arrow, zstd=False, merging=True)
        print(f"no merging / merging: {kept / merged:.2f}x")


def large_rows(count: int) -> list[tuple]:
    """64 KiB request frames, each with its own (incompressible) text, as real messages have."""
    head = '{"type":"request","timestamp":1700000000.5,"id":"r%08d","payloadType":"new","payload":{"chatId":"c","message":"'
    body = 65536 - len(head) - 3
    pool = base64.b64encode(os.urandom(body * 3 // 4 * 256)).decode()  # 256 distinct bodies (16 MiB), in turn
    bodies = [pool[k * body:(k + 1) * body] for k in range(256)]
    texts = [(head % i) + bodies[i % 256] + '"}}' for i in range(count)]
    return [frame_row(1, i, 1_700_000_000_000_000 + i, "client", "text", text, decode("text", text, "client"))
            for i, text in enumerate(texts)]


if __name__ == "__main__":
    main()
