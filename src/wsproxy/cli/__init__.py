"""The ``wsproxy`` command line: the typer app (``app``), its commands by group, one error edge.

``cli.app`` holds the app and the edge, ``cli.options`` the options several commands share; each
other module is one group of commands, registered here in the order ``--help`` lists them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from wsproxy import __version__

# imported in the order --help lists them
from wsproxy.cli import chat, files, inspect, record, replay, rerun, spec, ui  # noqa: F401 - registers the commands
from wsproxy.cli.app import app, out

__all__ = ["app", "entry"]


def _version(value: bool) -> None:
    if value:
        out.print(f"wsproxy {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """wsproxy: relay, check, record and replay WebSocket chat traffic."""


def entry() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    entry()
