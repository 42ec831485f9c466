"""``wsproxy spec``: the protocol as an AsyncAPI 3 document — infer it from traffic, diff two."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wsproxy.cli.app import app, command, err, out
from wsproxy.cli.options import choice
from wsproxy.core.errors import EXIT_FOUND, EXIT_OK, UserError

if TYPE_CHECKING:  # every command's start-up imports this module: the spec modules load when a spec command runs
    from wsproxy.core.spec_diff import Reading

PANEL = "The protocol as a document"
REPORT = ("text", "json")

spec_app = typer.Typer(
    name="spec", no_args_is_help=True, rich_markup_mode="rich",
    help="The protocol as an AsyncAPI 3 document: infer it from recorded traffic, diff two documents. "
         "Check traffic against one with --spec FILE on record, check, replay and rerun (docs/spec.md).")
app.add_typer(spec_app, rich_help_panel=PANEL)


@command(panel=PANEL, group=spec_app)
def infer(
    recordings: Annotated[list[Path], typer.Argument(help="Recordings (DuckDB files or folders), JSONL exports "
                                                          "or HAR files; every session of each is read.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the document here (default: stdout).")] = None,
    format: Annotated[str | None, typer.Option(
        "--format", help="yaml, json or markdown (the catalogue: a table per request and event); default: by "
                         "-o's extension, else yaml. With --against: text or json, the drift report.")] = None,
    title: Annotated[str, typer.Option(help="The document's info.title.")] = "Chat protocol (inferred by wsproxy)",
    doc_version: Annotated[str, typer.Option("--doc-version", help="The document's info.version.")] = "1.0.0",
    server: Annotated[str | None, typer.Option(help="The server the document names, e.g. ws://chat.example:8765.")] = None,
    enum_limit: Annotated[int, typer.Option(
        help="A string field with at most this many distinct values becomes an enum (0: never)...")] = 8,
    enum_repeat: Annotated[float, typer.Option(
        help="...when each value was seen this many times on average (and none is a user's name).")] = 3.0,
    against: Annotated[Path | None, typer.Option(
        help="Report drift between this document and the traffic instead: breaking where the traffic does what "
             "the document does not allow, compatible where it leaves part of it unused; exit 1 on breaking.")] = None,
) -> None:
    """Infer the protocol's AsyncAPI 3.0 document from recorded traffic.

    Every observation is merged: a field present every time is required, otherwise optional; types are
    unioned; a string with few values that repeat is an enum. A send operation per request payloadType
    with its reply (the response and, apart, the error response; correlationId at the envelope's id),
    a receive operation per server event, a send operation per client event; examples from the traffic
    with secrets redacted. What AsyncAPI cannot say is in x-wsproxy-... extensions (docs/spec.md).

    Examples:

      wsproxy spec infer demo.duckdb -o chat.asyncapi.yaml

      wsproxy spec infer monday.duckdb tuesday.jsonl --format markdown -o PROTOCOL.md

      wsproxy spec infer today.duckdb --against chat.asyncapi.yaml
    """
    from wsproxy.core.schema_infer import Enums
    from wsproxy.inspect.spec import SPEC_FORMATS, render
    from wsproxy.inspect.spec import infer as run_inference

    if enum_limit < 0 or enum_repeat < 0:
        raise UserError("--enum-limit and --enum-repeat must be 0 or more")
    for path in recordings:
        if not path.exists():
            raise UserError(f"{path} does not exist: give a recording (.duckdb or its folder), a JSONL export or a HAR file")
    if against is not None:
        choice("--format", format or "text", REPORT)
    if err.is_terminal:
        with err.status("reading…") as status:
            inference = run_inference(recordings, Enums(enum_limit, enum_repeat), progress=status.update)
    else:
        inference = run_inference(recordings, Enums(enum_limit, enum_repeat))
    if not inference.messages:
        raise UserError(f"no protocol messages in {', '.join(map(str, recordings))}: nothing to infer a document from")
    document = inference.document(title, doc_version, server)
    if against is not None:
        if output is not None:
            output.write_text(render(document, _format_of(output, None)), encoding="utf-8")
        _report_changes(against, None, document, format or "text", "traffic", "drift")
        return
    chosen = _format_of(output, format)
    choice("--format", chosen, SPEC_FORMATS)
    text = render(document, chosen)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}: {len(inference.messages)} messages from {inference.texts:,} text frames"
                  + (f" ({inference.unreadable:,} not envelopes, left out)" if inference.unreadable else ""))


@command(panel=PANEL, group=spec_app)
def diff(
    old: Annotated[Path, typer.Argument(help="The document as it was (YAML or JSON).")],
    new: Annotated[Path, typer.Argument(help="The document as it is.")],
    format: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
) -> None:
    """What changed between two AsyncAPI 3 documents of the protocol, breaking or compatible.

    Messages are matched by what their envelopes say (payloadType, eventType and direction, the replies
    of a request), not by component names. Breaking: a message or reply removed, a field newly required,
    a required field removed, a type or enum narrowed or changed. Compatible: anything added as optional,
    a field no longer required, a type or enum widened. Exits 1 when a change is breaking: for CI.

    Examples:

      wsproxy spec diff docs/chat-protocol.asyncapi.yaml chat.asyncapi.yaml

      git show main:chat.asyncapi.yaml > /tmp/old.yaml && wsproxy spec diff /tmp/old.yaml chat.asyncapi.yaml --format json
    """
    choice("--format", format, REPORT)
    _report_changes(old, new, None, format, str(new), "diff")


def _report_changes(old: Path, new: Path | None, document: Any, format: str, newer: str, reading: Reading) -> None:
    """Print the changes from ``old`` to ``new`` (or to ``document``, inferred from traffic) as ``reading``
    judges them; exit 1 when one is breaking."""
    from dataclasses import asdict

    import msgspec

    from wsproxy.core.spec_contract import read_catalogue
    from wsproxy.core.spec_diff import diff as compare
    from wsproxy.inspect.spec import load_catalogue

    old_document, old_catalogue = load_catalogue(old)
    if new is not None:
        document, new_catalogue = load_catalogue(new)
    else:
        new_catalogue = read_catalogue(document, newer)
    changes = compare(old_catalogue, new_catalogue, old_document, document, reading)
    breaking = sum(change.impact == "breaking" for change in changes)
    if format == "json":
        sys.stdout.write(msgspec.json.encode({"old": str(old), "new": newer, "breaking": breaking,
                                              "compatible": len(changes) - breaking,
                                              "changes": [asdict(change) for change in changes]}).decode() + "\n")
    else:
        from rich.markup import escape
        if not changes:
            out.print(f"no changes: {newer} matches {old}" if reading == "diff" else f"no drift: the traffic matches {old}")
        for change in changes:
            colour = "red" if change.impact == "breaking" else "green"
            out.print(f"[{colour}]{change.impact:10}[/] {escape(change.message)} "
                      f"[bold]{escape(change.pointer or '/')}[/] {escape(change.words)}", soft_wrap=True)
        if changes:
            out.print(f"{breaking} breaking, {len(changes) - breaking} compatible ({old} -> {newer})")
    raise typer.Exit(EXIT_FOUND if breaking else EXIT_OK)


def _format_of(output: Path | None, format: str | None) -> str:
    if format is not None:
        return format
    suffix = output.suffix.lower() if output is not None else ""
    return {".json": "json", ".md": "markdown", ".markdown": "markdown"}.get(suffix, "yaml")
