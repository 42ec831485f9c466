"""Fault injection rules (`--inject RULE`, `--inject-file FILE.toml`): what they say, and which fire.

A rule is an action and selectors, space-separated: ``drop response type=new once``,
``delay=400ms event type=typing``, ``close=4001 to-client after=3``. ``parse_rule`` reads one (a word
that does not parse is refused with what is allowed there); ``Injector`` is told of every message and
answers with the rules that fire on it. Carrying an action out is the relay's job.

Core module: standard library only.
"""

from __future__ import annotations

import random
import re
import tomllib
from dataclasses import dataclass, field, replace

from wsproxy.core.errors import UserError
from wsproxy.core.vocab import InjectAction, MessageType, Sender

ACTIONS = ("drop", "duplicate", "delay=DURATION", "corrupt", "reorder", "close=CODE", "pause=DURATION")
SELECTORS = ("to-client", "to-server", "request", "response", "event", "type=NAME", "conn=KEY:VALUE", "once",
             "nth=N", "after=N", "rate=P")
DIRECTIONS = {"to-client": "server", "to-server": "client"}  # the sender of what travels that way
ENVELOPES = ("request", "response", "event")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)$")
MAX_DELAY_SECONDS = 3600.0


class RuleError(UserError, ValueError):
    """An --inject rule (or --inject-file) that cannot be used; the message names the wrong word."""


@dataclass(frozen=True, slots=True)
class Rule:
    text: str
    action: InjectAction
    seconds: float | None = None  # delay, pause
    code: int | None = None  # close
    sender: Sender | None = None  # whose messages (None: what the envelope implies)
    envelope: MessageType | None = None
    type: str | None = None  # payloadType or eventType (a response: its request's payloadType)
    conn: tuple[str, str] | None = None  # a query or header value of the connection
    once: bool = False
    nth: int | None = None
    after: int | None = None
    rate: float | None = None

    @property
    def direction(self) -> str | None:
        """The sender whose messages it selects: given, or implied by the envelope."""
        if self.sender is not None:
            return self.sender
        return {"request": "client", "response": "server", "event": "server"}.get(self.envelope or "")


def parse_duration(text: str, word: str) -> float:
    match = _DURATION.match(text)
    if not match:
        raise RuleError(f"{word}: a duration is a number with ms or s, e.g. 300ms or 2s")
    seconds = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
    if seconds > MAX_DELAY_SECONDS:
        raise RuleError(f"{word}: at most {MAX_DELAY_SECONDS:.0f}s")
    return seconds


def probability(text: str) -> float | None:
    """A number in (0, 1] (a rate that can fire), else None. Also read by the chat server's --faults."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0.0 < value <= 1.0 else None


def _integer(text: str, word: str, low: int, high: int | None = None) -> int:
    if not text.isdigit() or int(text) < low or (high is not None and int(text) > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise RuleError(f"{word}: the value must be a whole number {bound}")
    return int(text)


def parse_rule(text: str) -> Rule:
    """One rule from its text; ``RuleError`` names the first word that is wrong and what is allowed."""
    words = text.split()
    if not words:
        raise RuleError("an empty --inject rule: write an action and selectors, e.g. 'drop response type=new once'")
    fields: dict = {}
    action = None
    for word in words:
        name, eq, value = word.partition("=")
        where = f"in {text!r}: {word!r}"
        this = _action(name, eq, value, where)
        if this is None:
            _selector(fields, name, eq, value, word, where)
        elif action is not None:
            raise RuleError(f"{where} is a second action; a rule has one of: {', '.join(ACTIONS)}")
        else:
            action = this
    if action is None:
        raise RuleError(f"in {text!r}: no action; start with one of: {', '.join(ACTIONS)}")
    rule = Rule(" ".join(words), **action, **fields)
    if (rule.envelope == "request" and rule.sender == "server") or (rule.envelope in ("response", "event") \
            and rule.sender == "client"):
        raise RuleError(f"in {text!r}: a {rule.envelope} never goes {'to-client' if rule.sender == 'server' else 'to-server'}")
    if sum(x is not None and x is not False for x in (rule.once or None, rule.nth, rule.rate)) > 1:
        raise RuleError(f"in {text!r}: once, nth= and rate= each say when; use one")
    return rule


def _action(name: str, eq: str, value: str, where: str) -> dict | None:
    """The action a word names (with its value), or None when it is not one."""
    if name in ("drop", "duplicate", "corrupt", "reorder") and not eq:
        return {"action": name}
    if name in ("delay", "pause") and eq:
        return {"action": name, "seconds": parse_duration(value, where)}
    if name == "close" and eq:
        return {"action": "close", "code": _close_code(value, where)}
    return None


def _close_code(value: str, word: str) -> int:
    code = _integer(value, word, 1000, 4999)
    if code in (1004, 1005, 1006, 1015) or (1012 <= code <= 2999 and code not in (1012, 1013, 1014)):
        raise RuleError(f"{word}: {code} cannot be sent in a close frame; use 1000-1003, 1007-1014 or 3000-4999")
    return code


def _selector(fields: dict, name: str, eq: str, value: str, word: str, where: str) -> None:
    def once_only(key: str) -> None:
        if key in fields:
            raise RuleError(f"{where} repeats {key}")

    if not eq and name in DIRECTIONS:
        once_only("sender")
        fields["sender"] = DIRECTIONS[name]
    elif not eq and name in ENVELOPES:
        once_only("envelope")
        fields["envelope"] = name
    elif not eq and name == "once":
        fields["once"] = True
    elif eq and name == "type" and value:
        once_only("type")
        fields["type"] = value
    elif eq and name == "conn":
        key, colon, wanted = value.partition(":")
        if not colon or not key:
            raise RuleError(f"{where}: write conn=KEY:VALUE, a query or header value, e.g. conn=user:User2")
        once_only("conn")
        fields["conn"] = (key.lower(), wanted)
    elif eq and name in ("nth", "after"):
        once_only(name)
        fields[name] = _integer(value, where, 1 if name == "nth" else 0)
    elif eq and name == "rate":
        rate = probability(value)
        if rate is None:
            raise RuleError(f"{where}: rate=P takes a probability, 0 < P <= 1 (e.g. rate=0.1)")
        fields["rate"] = rate
    else:
        raise RuleError(f"{where} is not an action or a selector; actions: {', '.join(ACTIONS)}; "
                        f"selectors: {', '.join(SELECTORS)}")


def parse_breakpoint(text: str) -> Rule:
    """An ``--intercept`` rule: the selectors of ``--inject`` and no action (what they select is held),
    e.g. ``to-server type=new``, ``response conn=user:User2 once``; ``any`` holds every data message."""
    words = [word for word in text.split() if word != "any"]
    for word in words:
        name, eq, value = word.partition("=")
        if _action(name, eq, value, word) is not None:
            raise RuleError(f"in {text!r}: {word!r} is an action; a breakpoint holds what it selects and takes "
                            f"selectors only: {', '.join(SELECTORS)} (or any)")
    if not words and text.split() != ["any"]:
        raise RuleError("an empty --intercept rule: write selectors, e.g. 'to-server type=new', or 'any'")
    as_rule = " ".join(["drop", *words])
    try:
        rule = parse_rule(as_rule)
    except RuleError as exc:  # said of the breakpoint as the user wrote it
        said = str(exc).replace(repr(as_rule), repr(text)).replace("is not an action or a selector", "is not a selector")
        raise RuleError(re.sub(r"actions: [^;]*; ", "", said)) from None
    return replace(rule, action="intercept", text=" ".join(words) or "any")


# The keys of an [[inject]] table in --inject-file, in the order their words are written.
FILE_KEYS = ("action", "direction", "envelope", "type", "conn", "once", "nth", "after", "rate")


def rules_from_toml(text: str, source: str = "inject file") -> list[Rule]:
    """``[[inject]]`` tables (``rule = "..."``, or the words as keys) from a TOML document."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{source} is not valid TOML: {exc}") from None
    unknown = set(data) - {"inject"}
    if unknown or not isinstance(data.get("inject", []), list):
        raise RuleError(f"{source}: write [[inject]] tables; not {', '.join(sorted(unknown)) or 'inject = ...'}")
    rules = []
    for index, table in enumerate(data.get("inject", []), 1):
        where = f"{source}: [[inject]] #{index}"
        if not isinstance(table, dict):
            raise RuleError(f"{where} must be a table")
        if "rule" in table:
            if set(table) != {"rule"} or not isinstance(table["rule"], str):
                raise RuleError(f"{where}: rule = \"...\" alone, or the words as keys ({', '.join(FILE_KEYS)})")
            rules.append(parse_rule(table["rule"]))
            continue
        extra = set(table) - set(FILE_KEYS)
        if extra:
            raise RuleError(f"{where}: unknown key(s) {', '.join(sorted(extra))}; allowed: rule, {', '.join(FILE_KEYS)}")
        words = []
        for key in FILE_KEYS:
            if key not in table:
                continue
            value = table[key]
            if key in ("action", "direction", "envelope"):
                words.append(str(value))
            elif key == "once":
                words += ["once"] if value is True else []
            else:
                words.append(f"{key}={value}")
        rules.append(parse_rule(" ".join(words)))
    return rules


def corrupted(data: str | bytes) -> str:
    """What ``corrupt`` sends instead: text that is not JSON (the first half of the message, marked)."""
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    return text[:max(1, len(text) // 2)] + " <corrupted by wsproxy --inject>"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What carrying out a rule on one message means, for whichever shell sends it (the relay, the replay)."""

    sends: tuple = ()  # what goes out now, in order (after ``pause``): the message, twice, or its corruption
    pause: float = 0.0  # pause=: seconds this direction waits first
    later: float | None = None  # delay=: the message goes out after this many seconds
    hold: bool = False  # reorder: the message waits for the next one in its direction
    close: int | None = None  # close=: both legs close with this code instead
    delivered: int = 1  # how often the other side gets the message itself (0: dropped or replaced)
    detail: str | None = None  # for the ``injections`` row


def outcome(rule: Rule | None, data: str | bytes) -> Outcome:
    """What ``rule`` (None: no rule fired) does to the message ``data``."""
    if rule is None:
        return Outcome((data,))
    action = rule.action
    if action == "drop":
        return Outcome(delivered=0)
    if action == "duplicate":
        return Outcome((data, data), delivered=2)
    if action == "corrupt":
        sent = corrupted(data)
        return Outcome((sent,), delivered=0, detail=sent if len(sent) <= 200 else sent[:199] + "…")
    if action in ("delay", "pause"):
        seconds = rule.seconds
        assert seconds is not None  # parse_rule gives delay= and pause= their seconds
        if action == "delay":
            return Outcome(later=seconds, detail=f"{seconds * 1000:g} ms")
        return Outcome((data,), pause=seconds, detail=f"held {seconds * 1000:g} ms")
    if action == "reorder":
        return Outcome(hold=True, detail="sent after the next message in this direction")
    return Outcome(close=rule.code, delivered=0, detail=f"closed both legs with {rule.code}")  # close


@dataclass(frozen=True, slots=True)
class Seen:
    """A data frame as the injector judges it."""

    conn_id: int
    sender: Sender
    envelope: MessageType | None  # None: not a JSON envelope (invalid, binary)
    type: str | None  # payloadType / eventType
    request_id: str | None = None


@dataclass
class Injector:
    rules: list[Rule]
    seed: int = 0
    _matched: list[int] = field(default_factory=list)  # per rule: messages it selected so far
    _counts: dict[tuple[int, str], int] = field(default_factory=dict)  # (conn, sender) -> messages so far
    _asked: dict[int, dict[str, str]] = field(default_factory=dict)  # conn -> request id -> payloadType
    _values: dict[int, dict[str, str]] = field(default_factory=dict)  # conn -> query and header values

    def __post_init__(self) -> None:
        self._matched = [0] * len(self.rules)
        self._random = random.Random(self.seed)

    def opened(self, conn_id: int, values: dict[str, str]) -> None:
        """A connection opened; ``values`` are its query parameters and headers (names lower-cased)."""
        self._values[conn_id] = {k.lower(): v for k, v in values.items()}

    def value(self, conn_id: int, name: str) -> str | None:
        """A query or header value of the connection (names are case-insensitive)."""
        return self._values.get(conn_id, {}).get(name.lower())

    def closed(self, conn_id: int) -> None:
        self._values.pop(conn_id, None)
        self._asked.pop(conn_id, None)
        self._counts.pop((conn_id, "client"), None)
        self._counts.pop((conn_id, "server"), None)

    def asked(self, conn_id: int, request_id: str, payload_type: str) -> None:
        """A request went by (``fire`` notes those itself): its response is selected by ``type=payload_type``."""
        self._asked.setdefault(conn_id, {})[request_id] = payload_type

    def fire(self, seen: Seen) -> list[Rule]:
        """The rules that fire on this message, in the order given (the relay carries out the first)."""
        key = (seen.conn_id, seen.sender)
        count = self._counts[key] = self._counts.get(key, 0) + 1
        type_name = seen.type
        if seen.envelope == "request" and seen.request_id is not None and seen.type is not None:
            self.asked(seen.conn_id, seen.request_id, seen.type)
        elif seen.envelope == "response" and seen.request_id is not None:
            type_name = self._asked.get(seen.conn_id, {}).pop(seen.request_id, None)
        fired = []
        for index, rule in enumerate(self.rules):
            if not self._selects(rule, seen, type_name, count):
                continue
            self._matched[index] += 1
            nth = self._matched[index]
            if (rule.once and nth != 1) or (rule.nth is not None and nth != rule.nth):
                continue
            if rule.rate is not None and self._random.random() >= rule.rate:
                continue
            fired.append(rule)
        return fired

    def _selects(self, rule: Rule, seen: Seen, type_name: str | None, count: int) -> bool:
        direction = rule.direction
        if direction is not None and seen.sender != direction:
            return False
        if rule.envelope is not None and seen.envelope != rule.envelope:
            return False
        if rule.type is not None and type_name != rule.type:
            return False
        if rule.conn is not None and self._values.get(seen.conn_id, {}).get(rule.conn[0]) != rule.conn[1]:
            return False
        return rule.after is None or count > rule.after
