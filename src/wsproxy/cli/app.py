"""The typer app, its consoles, and the one edge where errors become exit codes.

Every command is registered with ``command()``: a ``UserError`` raised anywhere below it (a bad
option, an unreadable recording, a profile that does not load, a port in use) becomes one
``Error: ...`` line on stderr and its exit code; Ctrl-C exits 130. Nothing else prints errors.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from wsproxy.core.errors import EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_USAGE, UserError

app = typer.Typer(
    name="wsproxy",
    help="A protocol-aware man-in-the-middle WebSocket proxy and recorder for the JSON chat protocol.\n\n"
         "Quick start:  wsproxy demo\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    rich_markup_mode="rich",  # so "[" in a help text is written "\\[" (tests/test_docs.py renders every one)
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True)
out = Console()


def command(name: str | None = None, *, panel: str,
            group: typer.Typer | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a command (of ``group``, a command group such as ``spec``, or of the app) behind the
    error edge, listed under ``panel`` in ``--help``; its help ends with the exit codes."""
    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except UserError as exc:
                raise fail(str(exc), exc.code) from None
            except OSError as exc:
                raise fail(os_error(exc)) from None
            except BaseException as exc:
                if _unreadable(exc):
                    from wsproxy.store.files import damaged
                    raise fail(str(damaged("the recording", exc))) from None
                if not _interrupted(exc):
                    raise  # the command's own exit, or a bug (its traceback is for us)
                err.print("[dim]interrupted[/]")
                raise typer.Exit(EXIT_INTERRUPTED) from None
        # cleandoc first: the exit codes' line has no indentation, and would keep the docstring's in the help
        guarded.__doc__ = reflowed(inspect.cleandoc(function.__doc__ or "")) + "\n\n" + EXIT_CODES_HELP
        return (group or app).command(name, rich_help_panel=panel)(guarded)
    return register


def reflowed(doc: str) -> str:
    """A docstring's prose paragraphs as one line each, for rich to wrap at the terminal's width (it keeps
    every newline, so the docstring's own breaks came out as ragged half-lines); indented lines (the
    examples) and lists keep theirs."""
    paragraphs = doc.split("\n\n")
    return "\n\n".join(
        paragraph if any(line.startswith((" ", "-", "*")) for line in paragraph.splitlines())
        else " ".join(line.strip() for line in paragraph.splitlines())
        for paragraph in paragraphs)


def _unreadable(exc: BaseException) -> bool:
    """DuckDB could not read a file through (it was cut short or damaged): found in the middle of a
    command's reading, past the checks made when the file was opened (``store.files.damaged``)."""
    duckdb = sys.modules.get("duckdb")
    return duckdb is not None and isinstance(exc, (duckdb.IOException, duckdb.SerializationException,
                                                   duckdb.InternalException, duckdb.FatalException))


def _interrupted(exc: BaseException) -> bool:
    """Ctrl-C: KeyboardInterrupt, or what DuckDB turns it into during a query (RuntimeError "Query
    interrupted" in 2.x, InterruptException in 1.x)."""
    return (isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "InterruptException"
            or (type(exc) is RuntimeError and str(exc).startswith("Query interrupted")))


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def shown(value: Any) -> str:
    """A user's value (a path, a label, a URL, a rule) for a line printed with markup: control characters
    escaped, and brackets shown rather than read as markup ("runs/[b]/today.duckdb" stays whole)."""
    return escape(safe(str(value)))


def safe(text: str) -> str:
    """Captured text made harmless for a terminal: control characters become escapes.

    (Rich markup is never interpreted because callers build ``Text`` objects, not markup.)"""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``Error: message`` (one line) and return the Exit to raise."""
    from rich.text import Text
    # the message is plain text: "[x]" in a path or a SQL error is not rich markup
    err.print(Text.assemble(("Error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    return typer.Exit(code)


def address_in_use(exc: OSError) -> bool:
    return exc.errno in (98, 48)  # EADDRINUSE on Linux / macOS


def os_error(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    if address_in_use(exc):
        return f"address already in use ({text}): choose another HOST:PORT, or stop what listens there"
    return f"{text}" + (f": {exc.filename}" if exc.filename else "")


LOOPS = ("asyncio", "uvloop", "auto")


def loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``--event-loop`` asks for: uvloop when installed ("auto"), or the standard one."""
    if loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if loop == "uvloop":
            raise UserError("--event-loop uvloop: uvloop is not installed (pip install uvloop), or use "
                            "--event-loop asyncio") from None
        return None
    return uvloop.new_event_loop


def run_async(main: Callable[[], Coroutine[Any, Any, Any]], loop: str = "asyncio") -> Any:
    """Run a coroutine on the ``loop`` of ``loop_factory``; Ctrl-C cancels it (the edge reports it)."""
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(main())


def run_until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, Any]], loop: str = "asyncio") -> Any:
    """Run ``main(stop)``; SIGINT and SIGTERM set ``stop`` so it can shut down cleanly.

    Handlers are installed explicitly: a process started in the background by a
    non-interactive shell inherits an ignored SIGINT, and services get SIGTERM.
    """
    async def wrapper() -> Any:
        stop = asyncio.Event()
        running = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            running.add_signal_handler(sig, stop.set)
        try:
            return await main(stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                running.remove_signal_handler(sig)
    return run_async(wrapper, loop)
