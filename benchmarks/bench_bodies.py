"""Where 64 KiB message bodies could go, side by side: VARCHAR in DuckDB (today), BLOB compressed by us,
Parquet files beside the recording. One command: .venv/bin/python benchmarks/bench_bodies.py

Per message: throughput, CPU and bytes on disk, 3 interleaved rounds (docs/performance.md, 64 KiB).
"""
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from wsproxy.core.protocol import decode
from wsproxy.core.rows import frame_row
from wsproxy.store.batches import BATCH, execute_with, insert_frames
from wsproxy.store.files import open_for_writing

sys.path.insert(0, str(Path(__file__).parent))
import loadgen

texts = [loadgen.request(i, "bench1", "bench2", 65536, "clean") for i in range(1500)]
rows = [frame_row(1, i, 1_700_000_000_000_000 + i, "client", "text", t, decode("text", t, "client")) for i, t in enumerate(texts)]
B = 128
def varchar(con, tmp, chunk):
    con.execute("BEGIN"); insert_frames(con, chunk); con.execute("COMMIT")
def blob_zstd(con, tmp, chunk):
    data = pa.array([pa.compress(r.text.encode(), "zstd", asbytes=True) for r in chunk], pa.binary())
    t = pa.table({"conn_id": [r.conn_id for r in chunk], "seq": [r.seq for r in chunk], "body": data})
    con.execute("BEGIN"); execute_with(con, t, f"INSERT INTO bodies SELECT * FROM {BATCH}"); con.execute("COMMIT")
def blob_zlib1(con, tmp, chunk):
    data = pa.array([zlib.compress(r.text.encode(), 1) for r in chunk], pa.binary())
    t = pa.table({"conn_id": [r.conn_id for r in chunk], "seq": [r.seq for r in chunk], "body": data})
    con.execute("BEGIN"); execute_with(con, t, f"INSERT INTO bodies SELECT * FROM {BATCH}"); con.execute("COMMIT")
n = [0]
def parquet_side(con, tmp, chunk):
    n[0] += 1
    t = pa.table({"conn_id": [r.conn_id for r in chunk], "seq": [r.seq for r in chunk], "text": [r.text for r in chunk]})
    pq.write_table(t, tmp / f"bodies-{n[0]}.parquet", compression="none", use_dictionary=False, write_statistics=False)
def parquet_side_zstd(con, tmp, chunk):
    n[0] += 1
    t = pa.table({"conn_id": [r.conn_id for r in chunk], "seq": [r.seq for r in chunk], "text": [r.text for r in chunk]})
    pq.write_table(t, tmp / f"bodies-{n[0]}.parquet", compression="zstd", compression_level=1, use_dictionary=False, write_statistics=False)
variants = {"VARCHAR (today, busy)": varchar, "BLOB, zstd by us (pyarrow)": blob_zstd, "BLOB, zlib-1 by us": blob_zlib1,
            "Parquet beside, none": parquet_side, "Parquet beside, zstd-1": parquet_side_zstd}
res = {k: [] for k in variants}
for _ in range(3):
    for k, fn in variants.items():
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            con = open_for_writing(tmp / "b.duckdb")
            con.execute("SET disabled_compression_methods = 'zstd,dict_fsst'")
            con.execute("CREATE TABLE bodies (conn_id INTEGER, seq INTEGER, body BLOB)")
            a = time.perf_counter(); c = time.process_time()
            for off in range(0, len(rows), B):
                fn(con, tmp, rows[off:off+B])
            con.execute("CHECKPOINT")
            el = time.perf_counter() - a; cpu = time.process_time() - c
            size = sum(p.stat().st_size for p in tmp.iterdir())
            con.close()
            res[k].append((len(rows) / el, cpu / len(rows) * 1e6, size / len(rows)))
for k, v in res.items():
    print(f"{k:28} {statistics.median(x[0] for x in v):8,.0f} msgs/s  {statistics.median(x[1] for x in v):5.0f} us CPU/msg  {statistics.median(x[2] for x in v)/1024:5.1f} KiB/msg on disk")
