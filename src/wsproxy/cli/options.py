"""Options shared by several commands, declared once: the same flag means the same everywhere.

Values are checked here too, so a bad one gives the same one-line error (exit 2) in every command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from wsproxy.core.errors import UserError

Recording = Annotated[Path, typer.Argument(
    help="A recording `wsproxy record` wrote: a DuckDB file, or a folder of segments (or a glob of them).")]
LiveRecording = Annotated[Path, typer.Argument(
    help="A recording `wsproxy record` wrote (also while it records): a DuckDB file, or a folder of segments.")]
SessionOption = Annotated[int | None, typer.Option(
    "--session", help="Session (default: the newest; `wsproxy sessions FILE` lists them).")]
ProfileOption = Annotated[Path | None, typer.Option(
    "--profile", help="A protocol profile (TOML) to check with instead of the built-in chat profile; "
                      "see docs/checks.md.")]

SpecOption = Annotated[Path | None, typer.Option(
    "--spec", metavar="FILE", help="Check every message against this AsyncAPI 3 document too (YAML or JSON; "
                                   "`wsproxy spec infer` writes one): findings spec-*, docs/spec.md.")]

NoRedactOption = Annotated[bool, typer.Option(
    "--no-redact", help="Keep Authorization/Cookie headers and token query values in the recording.")]
InsecureOption = Annotated[bool, typer.Option("--insecure", help="Do not verify the wss:// upstream's certificate.")]
CaOption = Annotated[str | None, typer.Option("--ca", help="Trust this CA file for a wss:// upstream.")]

FAIL_ON_HELP = "Exit 1 if findings of this severity (or worse) were seen: error, warning or none."
FailOnOption = Annotated[str, typer.Option("--fail-on", help=FAIL_ON_HELP)]

SqlTimeoutOption = Annotated[float, typer.Option(
    "--sql-timeout", metavar="SECONDS", help="Stop a SQL statement that runs longer than this (default 10).")]

TABLE_FORMATS = ("table", "csv", "json", "markdown")
TableFormat = Annotated[str, typer.Option("--format", help="table (default), csv, json or markdown.")]
REPORT_FORMATS = ("text", "json")
ReportFormat = Annotated[str, typer.Option("--format", help="text or json.")]


def choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``; else the one-line error every command gives."""
    if value not in allowed:
        raise UserError(f"{option} must be {', '.join(allowed[:-1])} or {allowed[-1]}, not {value!r}")
    return value


def fail_on(value: str) -> str:
    from wsproxy.core.profile import FAIL_ON_LEVELS
    return choice("--fail-on", value, FAIL_ON_LEVELS)


def profile(path: Path | None, spec: Path | None = None) -> Any:
    """The profile of ``--profile`` (the built-in chat profile without one), with the AsyncAPI document
    of ``--spec`` compiled into it; ProfileError and SpecError are UserErrors."""
    from dataclasses import replace

    from wsproxy.core.profile import CHAT_PROFILE, load_profile
    chosen = CHAT_PROFILE if path is None else load_profile(path)
    if spec is None:
        return chosen
    from wsproxy.inspect.spec import load_contract
    return replace(chosen, name=f"{chosen.name} + {spec.name}", spec=load_contract(spec))


def positive(option: str, value: float) -> float:
    """``value`` if it is more than 0; else the one-line error every command gives."""
    if not value > 0:
        raise UserError(f"{option} must be more than 0, not {value:g}")
    return value
