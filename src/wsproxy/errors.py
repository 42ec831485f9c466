"""Errors a user can fix: the CLI prints them as one ``Error: ...`` line."""


class UserError(Exception):
    """What went wrong and what to do, in one line; exit code 1 (or ``code``)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (DuckDB's run to several, with advice we do not need)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
