"""Recordings in and out: export (JSONL, HAR, Parquet) and import (HAR, JSONL)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wsproxy.cli.app import command, err, shown
from wsproxy.cli.options import Recording, SessionOption
from wsproxy.core.errors import UserError

EXPORT_FORMATS = ("jsonl", "har", "parquet")

PANEL = "Formats"


@command(panel=PANEL)
def export(
    recording: Recording,
    output: Annotated[Path, typer.Option("-o", "--output", help="The file (or, for parquet, folder) to write.")],
    format: Annotated[str, typer.Option("--format", help="jsonl (lossless fixtures format), har (Chrome DevTools "
                                                         "dialect) or parquet (a folder, one file per table).")] = "jsonl",
    session_id: SessionOption = None,
    partition: Annotated[str | None, typer.Option(
        metavar="KEYS", help="parquet: write a hive-partitioned dataset of every session (or --session's) by "
                             "these keys: date, worker, session (e.g. date,worker).")] = None,
) -> None:
    """Export a recorded session: JSONL for fixtures, HAR for browsers and other tools, Parquet for data tools.

    JSONL is lossless and replayable with `wsproxy replay`; HAR opens in Chrome DevTools, HTTP
    Toolkit and Proxyman (data messages only: HAR cannot carry closes or pings); Parquet writes
    sessions, connections, frames, exchanges, events, violations and injections as files in the
    folder -o names, with fixed column types that Spark, ClickHouse and DuckDB read alike
    (docs/scale.md); --partition makes it a dataset of every session, one folder per key value.

    Examples:

      wsproxy export demo.duckdb --format jsonl -o fixtures/overview.jsonl

      wsproxy export today.duckdb --session 3 --format har -o bug-1234.har

      wsproxy export today.duckdb --format parquet -o today-parquet/

      wsproxy export captures/ --format parquet --partition date,worker -o /data/wsproxy/
    """
    from wsproxy.inspect.dataset import parse_partition
    from wsproxy.inspect.exporter import export_session

    if format not in EXPORT_FORMATS:
        raise UserError(f"--format {format!r} is not supported: use jsonl, har or parquet")
    keys = parse_partition(partition)
    if keys and format != "parquet":
        raise UserError("--partition is for --format parquet (a dataset of folders)")
    try:
        summary = export_session(recording, output, format, session_id, keys)
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror}") from None
    err.print(summary, markup=False, highlight=False)


@command("import", panel=PANEL)
def import_(
    source: Annotated[Path, typer.Argument(help="A HAR file (Chrome, Firefox, mitmproxy, Playwright, ...) or a "
                                                "wsproxy JSONL export.")],
    db: Annotated[Path, typer.Option(help="The recording to add it to, as a new session (created if missing).")],
    label: Annotated[str | None, typer.Option(help="A name for the new session (default: the file name).")] = None,
) -> None:
    """Import a capture as a new session, parsed like recorded traffic.

    Afterwards check, replay, query, show and diagram work on it as on a recording.
    Malformed HAR rows are skipped and counted, never fatal.

    Examples:

      wsproxy import chrome-export.har --db captures.duckdb

      wsproxy import fixtures/overview.jsonl --db restored.duckdb && wsproxy check restored.duckdb
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from wsproxy.inspect.importer import import_file

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(f"reading {source.name}", total=None)

        def written(done: int, total: int) -> None:
            bar.update(task, description="writing frames", completed=done, total=total)
        result = import_file(source, db, label, written)
    err.print(f"imported {result.connections} connection(s), {result.frames:,} frames from {shown(source)} into {shown(db)} as "
              f"session {result.session_id}")
    for reason, count in sorted(result.skipped.items()):
        err.print(f"[yellow]skipped {count} × {shown(reason)}[/]")


@command(panel=PANEL)
def pack(
    recording: Recording,
    output: Annotated[Path, typer.Option("-o", "--output", help="The single DuckDB file to write.")],
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Fold a recording and the Parquet parts beside it into one DuckDB file, to hand on as one thing.

    A recording that held many large frames keeps them in a folder beside its file
    (RECORDING.parts/); every wsproxy command reads both, and so does DuckDB run in the
    recording's folder. The packed file needs nothing beside it. RECORDING is not changed.

    Examples:

      wsproxy pack today.duckdb -o bug-1234.duckdb

      wsproxy pack today.duckdb -o fixtures/images.duckdb --force
    """
    from wsproxy.store.pack import pack as pack_recording

    with err.status(f"packing {shown(recording)} into {shown(output)} …"):
        result = pack_recording(recording, output, force=force)
    parts = f", {result.parts} Parquet part(s) folded in" if result.parts else ""
    err.print(f"packed {result.frames:,} frames{parts} into {shown(output)} ({result.bytes / 1e6:.1f} MB)",
              markup=False, highlight=False)
