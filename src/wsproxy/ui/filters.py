"""What the web view's filter bar asks for, as SQL over the ``frames`` view (alias ``f``). Pure:
query-string values in, a WHERE clause and its parameters out; a bad value is a ``FilterError``.

A user's own WHERE goes in as written, on lines of its own (a ``--`` comment in it ends with its
line) and in parentheses, once DuckDB's parser has found it to be one expression and nothing more
(``store.sql_guard.check_where``); the whole statement then runs as every user query does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from wsproxy.core.errors import UserError
from wsproxy.core.vocab import Sender
from wsproxy.store.sql_guard import check_where

# What the view calls a frame's type: its envelope type, or what it is when it has none.
TYPE_SQL = "coalesce(f.msg_type, CASE f.kind WHEN 'text' THEN 'invalid' ELSE f.kind END)"
TYPES = ("request", "response", "event", "invalid", "binary", "ping", "pong", "close")
DIRECTIONS = ("client", "server")
MAX_WHERE = 2000  # characters of a user's WHERE


class FilterError(UserError):
    """A filter the view cannot apply; the message says which and why."""


@dataclass(frozen=True)
class FrameFilter:
    direction: Sender | None = None  # who sent it
    type: str | None = None  # one of TYPES
    name: str | None = None  # payloadType or eventType
    finding: str | None = None  # "any", or a rule code
    text: str | None = None  # free text inside the message, case-insensitive
    where: str | None = None  # SQL over the frames view

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> FrameFilter:
        def value(key: str) -> str | None:
            text = query.get(key, "").strip()
            return text or None
        direction = value("direction")
        if direction is not None and direction not in DIRECTIONS:
            raise FilterError(f"direction {direction!r}: use client or server")
        found = cls(cast(Sender | None, direction), value("type"), value("name"), value("finding"), value("q"),
                    value("where"))
        if found.type is not None and found.type not in TYPES:
            raise FilterError(f"type {found.type!r}: use one of {', '.join(TYPES)}")
        if found.where is not None:
            if len(found.where) > MAX_WHERE:
                raise FilterError(f"the WHERE is longer than {MAX_WHERE} characters")
            check_where(found.where)
        return found

    def sql(self) -> tuple[str, list[Any]]:
        """`` AND ...`` for each filter set (empty when none), and the parameters in order."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.direction is not None:
            clauses.append("f.sender = ?")
            params.append(self.direction)
        if self.type is not None:
            clauses.append(f"{TYPE_SQL} = ?")
            params.append(self.type)
        if self.name is not None:
            clauses.append("coalesce(f.payload_type, f.event_type) = ?")
            params.append(self.name)
        if self.finding is not None:
            code = "" if self.finding == "any" else " AND v.code = ?"
            clauses.append(f"EXISTS (SELECT 1 FROM violations v WHERE v.conn_id = f.conn_id AND v.seq = f.seq{code})")
            params += [] if self.finding == "any" else [self.finding]
        if self.text is not None:
            clauses.append("contains(lower(f.text), lower(?))")
            params.append(self.text)
        if self.where is not None:
            clauses.append(f"(\n{self.where}\n)")
        return "".join(f" AND {clause}" for clause in clauses), params
