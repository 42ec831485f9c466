"""``wsproxy rerun`` (a recording's clients against a live server) and ``wsproxy diff`` (two sessions)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from wsproxy.cli import options
from wsproxy.cli.app import command, err, out, run_async, shown
from wsproxy.cli.options import ProfileOption, choice
from wsproxy.core.errors import EXIT_FOUND, EXIT_INTERRUPTED, UserError

PANEL = "Replay"
RERUN_FORMATS = ("text", "json", "junit")

IgnoreOption = Annotated[list[str] | None, typer.Option(
    "--ignore", help="A JSON path to leave out of the comparison, e.g. payload.serverTime or "
                     "payload.items[*].etag (repeatable).")]
RebindOption = Annotated[list[str] | None, typer.Option(
    "--rebind", help="A JSON path whose value the server generates (recorded 125, live 7: sent and compared "
                     "as the live one). Message and event ids of the chat protocol are built in; a profile's "
                     "\\[rerun] rebind adds more (repeatable).")]
FormatOption = Annotated[str, typer.Option("--format", help="text (default), json, or junit (with -o FILE).")]
OutputOption = Annotated[Path | None, typer.Option("--output", "-o", help="Write the report to FILE "
                                                                                 "instead of standard output.")]


def _rules(ignore: list[str] | None, rebind: list[str] | None, profile: Any) -> Any:
    """The comparison rules: the chat protocol's, the profile's [rerun] paths, then the options'."""
    from wsproxy.core.rerun_compare import CHAT_IGNORES, CHAT_REBINDS, PathError, Rebind, Rules, parse_path
    try:
        ignores = tuple(parse_path(p) for p in [*profile.rerun_ignore, *(ignore or [])])
        rebinds = tuple(Rebind(parse_path(p), p) for p in [*profile.rerun_rebind, *(rebind or [])])
    except PathError as exc:
        raise UserError(f"bad JSON path {exc}") from None
    return Rules(rebinds=CHAT_REBINDS + rebinds, ignores=CHAT_IGNORES + ignores)


@command(panel=PANEL)
def rerun(
    recording: Annotated[Path, typer.Argument(help="A DuckDB recording, a JSONL export or a HAR file.")],
    upstream: Annotated[str, typer.Option(help="The live server to rerun against, e.g. ws://127.0.0.1:8765.")],
    session_id: Annotated[int | None, typer.Option(
        "--session", help="Session to rerun (default: the newest that is not itself a rerun).")] = None,
    db: Annotated[Path | None, typer.Option(help="Record the rerun here as a new session (default: the "
                                                    "recording itself if DuckDB or a folder, else FILE.rerun.duckdb "
                                                    "beside it).")] = None,
    wait: Annotated[float, typer.Option(min=0.0, help="Seconds to wait for the server messages a client message "
                                                      "was recorded after.")] = 5.0,
    header: Annotated[list[str] | None, typer.Option(
        help="NAME:VALUE sent with every handshake, e.g. for a header the recording redacted (repeatable).")] = None,
    ignore: IgnoreOption = None,
    rebind: RebindOption = None,
    copies: Annotated[int, typer.Option(min=1, help="Run this many copies of the session at once (load).")] = 1,
    vary: Annotated[list[str] | None, typer.Option(
        help="query:NAME or header:NAME: append the copy number to that value, wherever it appears, so that "
             "the copies stay apart (repeatable).")] = None,
    rename: Annotated[list[str] | None, typer.Option(
        help="FROM=TO substituted per copy in the URL, headers and payload strings; {copy} in TO is the copy "
             "number (repeatable).")] = None,
    format: FormatOption = "text",
    output: OutputOption = None,
    profile: ProfileOption = None,
    spec: options.SpecOption = None,
    no_redact: options.NoRedactOption = False,
    insecure: options.InsecureOption = False,
    ca: options.CaOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress; only the report.")] = False,
) -> None:
    """Play a recording's clients against a live server and report what it answers differently.

    Every recorded connection is opened in the recorded order; each client message is sent once the
    server messages recorded before it have come (or --wait passed), with the live server's ids where
    it generates them. Server messages are compared by meaning (request ids, timestamps and rebound
    ids aside); the rerun is recorded as a new session and checked live. See docs/rerun.md.
    Exit 0: nothing differs; 1: differences; 2: the recording or the upstream cannot be used.

    Examples:

      wsproxy rerun demo.duckdb --upstream ws://127.0.0.1:8765

      wsproxy rerun fixtures/flow.jsonl --upstream ws://staging:8765 --ignore payload.serverTime

      wsproxy rerun demo.duckdb --upstream ws://127.0.0.1:8765 --format junit -o rerun.xml

      wsproxy rerun demo.duckdb --upstream ws://127.0.0.1:8765 --copies 20 --vary query:user

      wsproxy rerun today.duckdb --upstream wss://staging.example.org --ca staging-ca.pem --header "Cookie: s=1"

      wsproxy rerun demo.duckdb --upstream ws://staging:8765 --spec chat.asyncapi.yaml   (new spec-* findings differ)
    """
    from wsproxy.core.rerun_plan import parse_header, parse_rename, parse_vary
    from wsproxy.replay.source import load_recording, source_kind
    from wsproxy.rerun.report import Report, latency_table
    from wsproxy.rerun.runner import RerunOptions, recorded_latencies, run_rerun, started_label
    from wsproxy.store.folder import is_folder

    choice("--format", format, RERUN_FORMATS)
    if format == "junit" and output is None:
        raise UserError("--format junit writes a file: add -o FILE (e.g. -o rerun.xml)")
    headers = dict(parse_header(h) for h in header or [])
    variation = [parse_vary(v) for v in vary or []]
    renames = [parse_rename(r) for r in rename or []]
    check_profile = options.profile(profile, spec)
    rules = _rules(ignore, rebind, check_profile)
    if session_id is None and (recording.exists() or is_folder(recording)) and source_kind(recording) == "duckdb":
        session_id = _newest_recorded(recording)
    session = load_recording(recording, session_id)
    if not session.connections:
        raise UserError(f"session {session.session_id} of {recording} has no connection to rerun")
    target = db or _rerun_target(recording)
    run_options = RerunOptions(upstream, target, started_label(recording, session, upstream), wait, headers, rules,
                               copies, variation, renames, check_profile, not no_redact, insecure, ca)
    show_progress = not quiet and err.is_terminal

    async def go() -> Any:
        if not show_progress:
            return await run_rerun(session, run_options)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        with Progress(TextColumn("rerun"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                      TimeElapsedColumn(), console=err, transient=True) as bar:
            task = bar.add_task("rerun", total=None)
            return await run_rerun(session, run_options, lambda done, total: bar.update(task, completed=done, total=total))

    if not quiet:
        err.print(f"rerunning session {session.session_id} of {shown(recording)} ({len(session.connections)} connection(s)"
                  + (f" x {copies} copies" if copies > 1 else "") + f") against {shown(upstream)}; recording into "
                  f"{shown(target)}",
                  highlight=False)
    try:
        result = run_async(go)
    except KeyboardInterrupt:
        err.print(f"interrupted: what the rerun did so far is recorded in {shown(target)} (its newest session)",
                  highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    report = Report("rerun", session, result.differences, copies, {
        "source": str(recording), "session": session.session_id, "upstream": upstream, "db": str(target),
        "rerun_session": result.session_id, "elapsed_seconds": round(result.elapsed, 3),
        "messages": result.messages, "messages_per_second": round(result.messages / max(result.elapsed, 1e-9), 1)},
        latency_table(recorded_latencies(session), _merged(c.latencies for c in result.copies)))
    _emit(report, format, output)
    if report.differences:
        raise typer.Exit(EXIT_FOUND)


@command(panel=PANEL)
def diff(
    recording: Annotated[Path, typer.Argument(help="A DuckDB recording (or JSONL export) holding both sessions.")],
    sessions: Annotated[list[int] | None, typer.Option(
        "--session", help="The two sessions to compare, expected first: --session 1 --session 2 "
                          "(default: the two newest).")] = None,
    against: Annotated[Path | None, typer.Option(
        help="Read the second session from this file (a recording, JSONL or HAR) instead of RECORDING.")] = None,
    ignore: IgnoreOption = None,
    rebind: RebindOption = None,
    format: FormatOption = "text",
    output: OutputOption = None,
    profile: ProfileOption = None,
    spec: options.SpecOption = None,
) -> None:
    """Compare the server side of two sessions the way `rerun` does: recorded vs rerun, or
    yesterday's vs today's. Connections are paired in the order they opened.
    Exit 0: nothing differs; 1: differences; 2: the recording cannot be read.

    Examples:

      wsproxy diff demo.duckdb --session 1 --session 2

      wsproxy diff demo.duckdb --format json --ignore payload.serverTime

      wsproxy diff fixtures/login.jsonl --against today.duckdb --session 1 --session 3
    """
    from wsproxy.core.rerun_compare import compare_sessions, finding_differences
    from wsproxy.inspect.check import check_session
    from wsproxy.replay.source import load_recording
    from wsproxy.rerun.report import Report
    from wsproxy.rerun.runner import finding_counts

    choice("--format", format, RERUN_FORMATS)
    if format == "junit" and output is None:
        raise UserError("--format junit writes a file: add -o FILE (e.g. -o diff.xml)")
    check_profile = options.profile(profile, spec)
    rules = _rules(ignore, rebind, check_profile)
    if against is not None:  # one session of each file: --session A --session B, or each file's newest
        picked: list[int | None] = list(sessions) if sessions else [None, None]
        if len(picked) != 2:
            raise UserError(f"with --against give no --session or two (A in RECORDING, B in {against}), not {len(picked)}")
        expected, other = load_recording(recording, picked[0]), load_recording(against, picked[1])
        sessions = [expected.session_id, other.session_id]
    else:
        if sessions is None:
            sessions = _two_newest(recording)
        if len(sessions) != 2:
            raise UserError(f"give two sessions to compare (--session A --session B), not {len(sessions)}")
        expected, other = (load_recording(recording, s) for s in sessions)
    differences = compare_sessions(expected, other, rules) + finding_differences(
        finding_counts(check_session(expected, check_profile)), finding_counts(check_session(other, check_profile)))
    report = Report("diff", expected, differences, 1, {"source": str(recording), "session": sessions[0],
                                                       "other_session": sessions[1],
                                                       **({"other_source": str(against)} if against else {})})
    _emit(report, format, output)
    if differences:
        raise typer.Exit(EXIT_FOUND)


def _rerun_target(recording: Path) -> Path:
    """Where a rerun is recorded unless --db says: into the recording (a file, or a folder as one more
    segment; a glob of segments: their folder), or beside a JSONL or HAR file."""
    from wsproxy.replay.source import source_kind
    from wsproxy.store.folder import is_folder
    if is_folder(recording):
        return recording if recording.is_dir() else recording.parent
    if source_kind(recording) == "duckdb":
        return recording
    return recording.with_name(recording.name + ".rerun.duckdb")


def _newest_recorded(recording: Path) -> int | None:
    """The newest session that is not itself a rerun (reruns are recorded into the same file)."""
    from wsproxy.rerun.runner import RERUN_LABEL
    from wsproxy.store.recording import open_recording
    con = open_recording(recording)
    try:
        row = con.execute("SELECT max(session_id) FROM sessions WHERE coalesce(label, '') NOT LIKE ?",
                          [RERUN_LABEL + "%"]).fetchone()
    finally:
        con.close()
    return row[0] if row else None


def _two_newest(recording: Path) -> list[int]:
    from wsproxy.replay.source import source_kind
    from wsproxy.store.folder import is_folder
    from wsproxy.store.recording import open_recording
    if not (recording.exists() or is_folder(recording)) or source_kind(recording) != "duckdb":
        raise UserError("name the two sessions to compare: --session A --session B")
    con = open_recording(recording)
    try:
        ids = [row[0] for row in con.execute("SELECT session_id FROM sessions ORDER BY session_id DESC LIMIT 2").fetchall()]
    finally:
        con.close()
    if len(ids) < 2:
        raise UserError(f"{recording} holds {len(ids)} session(s); diff needs two (record or rerun another)")
    return ids[::-1]


def _merged(parts: Any) -> dict[str, list[float]]:
    merged: dict[str, list[float]] = {}
    for part in parts:
        for kind, values in part.items():
            merged.setdefault(kind, []).extend(values)
    return merged


def _emit(report: Any, format: str, output: Path | None) -> None:
    from wsproxy.rerun.report import to_json, to_junit
    if format == "text":
        from wsproxy.cli.render import rerun_report
        if output is None:
            rerun_report(out, report)
        else:
            from rich.console import Console
            with output.open("w", encoding="utf-8") as handle:
                rerun_report(Console(file=handle, width=120, no_color=True), report)
        return
    text = to_junit(report) if format == "junit" else msgspec.json.encode(to_json(report)).decode() + "\n"
    if output is None:
        out.file.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"{format} report written to {shown(output)} ({len(report.differences)} difference(s))", highlight=False)
