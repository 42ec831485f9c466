"""Errors a user can fix, and the exit codes every command shares.

A ``UserError`` (and every error of ours that derives from it: a bad option, an unreadable file, a
profile that does not load) becomes one ``Error: ...`` line at the CLI's edge. Core module:
standard library only.
"""

EXIT_OK = 0
EXIT_FOUND = 1  # the command ran and found problems: findings, divergences, differences
EXIT_USAGE = 2  # it could not run: bad usage, unreadable input, a port in use, a failed recording
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it

EXIT_CODES_HELP = ("Exit status: 0 ok; 1 findings, divergences or differences; 2 bad usage, unreadable input "
                   "or the command could not run; 130 interrupted.")


class UserError(Exception):
    """What went wrong and what to do, in one line; exits with ``code`` (2 unless said otherwise)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (DuckDB's run to several, with advice we do not need)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
