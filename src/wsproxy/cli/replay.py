"""``wsproxy replay``: serve a recording as a mock server."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from wsproxy.cli.app import command, err, run_until_signal, shown
from wsproxy.cli.options import SessionOption, SpecOption, choice, profile
from wsproxy.core.errors import EXIT_FOUND, UserError

PANEL = "Replay"


@command(panel=PANEL)
def replay(
    recording: Annotated[Path, typer.Argument(help="A DuckDB recording or a JSONL export of one.")],
    listen: Annotated[str, typer.Option(help="HOST:PORT to serve the replay on.")] = "127.0.0.1:8765",
    session_id: SessionOption = None,
    timing: Annotated[str, typer.Option(help="asap (default): answer at once; recorded: keep the recorded gaps; "
                                             "scale:F: gaps times F (scale:0.5 = twice as fast).")] = "asap",
    match: Annotated[str, typer.Option(help="strict: the same messages as recorded (ids and timestamps aside); "
                                            "loose: same type and payloadType, closest payload.")] = "strict",
    bind: Annotated[str | None, typer.Option(help="Bind clients to recorded connections by query:NAME or "
                                                     "header:NAME instead of path and query.")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Start over when every recorded connection was replayed.")] = False,
    report: Annotated[Path | None, typer.Option(help="Append divergences to this JSONL file (default: the "
                                                        "recording's replay_divergences table).")] = None,
    fail_on_divergence: Annotated[bool, typer.Option("--fail-on-divergence",
                                                     help="Exit 1 if any client diverged from the recording.")] = False,
    inject: Annotated[list[str] | None, typer.Option(
        help="Misbehave on purpose in what the mock server sends, as `record --inject` (repeatable; "
             "docs/inject.md), e.g. 'drop response type=new once'.")] = None,
    inject_file: Annotated[Path | None, typer.Option(help="The same rules as \\[\\[inject]] tables in TOML.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed for rate= rules.")] = 0,
    spec: SpecOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the final summary.")] = False,
) -> None:
    """Serve a recorded session as a mock server that knows the protocol.

    Clients are bound to recorded connections; each client message is matched with the
    recorded one, and the recorded answers go out with the client's request ids and fresh
    timestamps, in causal order across connections. Divergences are printed and kept.
    Ctrl-C stops. See docs/replay.md.

    Examples:

      wsproxy replay demo.duckdb --listen 127.0.0.1:8765

      wsproxy replay fixtures/login.jsonl --timing recorded --bind query:user

      wsproxy replay today.duckdb --session 2 --match loose --loop --fail-on-divergence

      wsproxy replay demo.duckdb --inject "duplicate event type=new"

      wsproxy replay demo.duckdb --spec chat.asyncapi.yaml --fail-on-divergence   (the client held to the document)
    """
    from wsproxy.clock import now_us
    from wsproxy.core.replay_plan import MATCH_MODES, ReplayPlan, parse_timing
    from wsproxy.record.session import parse_listen
    from wsproxy.replay.server import start_replay
    from wsproxy.replay.source import load_recording, save_divergences

    host, port = parse_listen(listen)
    scale = parse_timing(timing)
    choice("--match", match, MATCH_MODES)
    if bind is not None and not (bind.startswith(("query:", "header:")) and bind.split(":", 1)[1]):
        raise UserError("--bind must be query:NAME or header:NAME, e.g. --bind query:user")
    from wsproxy.cli.record import announce_injection, inject_rules
    from wsproxy.core.inject import Injector
    rules = inject_rules(inject, inject_file)
    for rule in rules:
        if rule.direction == "client":
            raise UserError(f"replay --inject acts on what the mock server sends: {rule.text!r} selects what "
                            f"the client sends (use it with `wsproxy record`)")
    rules = [replace(rule, sender="server") if rule.direction is None else rule for rule in rules]
    from wsproxy.core.checker import Checker
    checked = profile(None, spec) if spec is not None else None
    session = load_recording(recording, session_id)
    connections = session.replayable
    if not connections:
        raise UserError(f"session {session.session_id} of {recording} has no connection to replay")
    started = now_us()

    async def go(stop: asyncio.Event) -> Any:
        plan = ReplayPlan(session, match=match, scale=scale, bind_key=bind, loop=loop)
        running = await start_replay(session, plan, host, port, injector=Injector(rules, seed) if rules else None,
                                     checker=Checker(checked) if checked is not None else None)
        if rules:
            announce_injection(rules, seed, "text")
        frames = sum(len(c.frames) for c in connections)
        err.print(f"replaying session {session.session_id}"
                  + (f" ({shown(session.label)})" if session.label else "")
                  + f" of {shown(recording)}: {len(connections)} connection(s), {frames:,} frames, on "
                  f"[bold]{shown(running.url)}[/] (timing {timing}, match {match}); Ctrl-C stops", highlight=False)
        if not quiet:
            from wsproxy.cli.render import divergence_text
            running.server.listeners.append(lambda d: err.print(divergence_text(d), soft_wrap=True))
        try:
            await stop.wait()
        finally:
            await running.stop()
        return running.server

    server = run_until_signal(go)
    where = save_divergences(recording, session.session_id, started, server.divergences, report)
    counters = server.counters
    unbound = [cid for cid, state in server.plan.slots.items() if not state["bound"]]
    by_kind: dict[str, int] = {}
    for divergence in server.divergences:
        by_kind[divergence.kind] = by_kind.get(divergence.kind, 0) + 1
    err.print(f"replayed to {counters.clients} client(s) ({counters.refused} refused): {counters.received:,} "
              f"messages received, {counters.sent:,} sent; "
              + (f"{len(server.divergences)} divergence(s) ({', '.join(f'{k} {n}' for k, n in sorted(by_kind.items()))})"
                 f" kept in {where}" if server.divergences else "no divergence")
              + (f"; recorded connection(s) never bound: {', '.join(map(str, unbound))}" if unbound else "")
              + (f"; {counters.injected:,} injected action(s)" if rules else ""),
              highlight=False)
    if fail_on_divergence and server.divergences:
        raise typer.Exit(EXIT_FOUND)
