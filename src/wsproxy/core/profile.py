"""The protocol profile: every rule, severity, timeout and list of known types, as data.

Nothing else in wsproxy hard-codes which event types are stateful, which payload types
exist or how severe a finding is: it asks the profile. The built-in profile is
``CHAT_PROFILE`` and follows ``protocol.md`` exactly; users load their own with
``load_profile`` (a TOML file, see docs/checks.md).

Core module: imports only the standard library and msgspec.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

from wsproxy.core import payloads
from wsproxy.core.errors import UserError

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
OFF = "off"


@dataclass(frozen=True, slots=True)
class Rule:
    """One checker rule: a stable code, its default severity and when it fires."""

    code: str
    severity: Severity
    when: str


# The table of protocol.md, in its order. Codes are an interface: never rename one.
RULES: tuple[Rule, ...] = (
    Rule("invalid-json", "error", "a text message that is not a JSON object"),
    Rule("invalid-envelope", "error", "a required field missing or of the wrong type, or an unknown `type`"),
    Rule("wrong-direction", "error", "a request sent by the server, or a response sent by the client"),
    Rule("duplicate-request-id", "error", "a request id reused on the same connection"),
    Rule("orphan-response", "error", "a response whose id matches no request on that connection"),
    Rule("duplicate-response", "error", "a second response to the same request"),
    Rule("unanswered-request", "error", "no response within the timeout or before the connection closed"),
    Rule("event-id-not-increasing", "error", "a stateful event whose id is not greater than the previous one"),
    Rule("event-id-gap", "error", "a stateful event id that skips ids (lost events)"),
    Rule("stateful-event-without-id", "error", "a stateful event with no id"),
    Rule("ephemeral-event-with-id", "warning", "an ephemeral event carrying an id"),
    Rule("subscribe-catchup-mismatch", "error", "catch-up events differ from what the subscribe response announced"),
    Rule("event-before-subscribe", "warning", "a stateful event sent to a connection that has not subscribed"),
    Rule("unknown-payload-type", "info", "a payloadType this profile does not know"),
    Rule("unknown-event-type", "info", "an eventType this profile does not know"),
    Rule("payload-schema", "error", "a known type whose payload does not match its schema"),
    Rule("timestamp-unit", "warning", "a timestamp that looks like milliseconds"),
    Rule("timestamp-backwards", "warning", "a live timestamp more than 1 s earlier than the previous one"),
    Rule("binary-message", "info", "a binary message on this JSON protocol"),
    # --spec FILE: the message against an AsyncAPI 3 document (docs/spec.md)
    Rule("spec-unknown-type", "error", "a payloadType or eventType the document does not describe"),
    Rule("spec-required", "error", "a field the document requires is missing"),
    Rule("spec-type", "error", "a value of a type the document does not allow"),
    Rule("spec-enum", "error", "a value outside the document's enum or const"),
    Rule("spec-constraint", "error", "a value outside the document's bounds, length, pattern or oneOf"),
    Rule("spec-reply", "error", "a response that matches none of its operation's reply messages"),
    Rule("spec-extra-field", "warning", "a field the document does not list"),
)
RULES_BY_CODE: dict[str, Rule] = {rule.code: rule for rule in RULES}


class SpecCheck(Protocol):
    """What the checker asks of ``--spec``'s document (``core.spec_contract.Contract``): the problems of one
    decoded message as (code, JSON pointer, words); ``answers`` is the payloadType a response answers."""

    def check_message(self, sender: str, parsed: Any, answers: str | None) -> list[tuple[str, str, str]]: ...


@dataclass(frozen=True, slots=True)
class Profile:
    """Everything the decoder and checker need to know about one JSON protocol.

    ``request_schemas`` maps a payloadType to the msgspec Struct its payload must match
    (``None``: known, any object). ``event_schemas`` maps an eventType to a Struct, or to
    a ``{"client": Struct, "server": Struct}`` pair when the payload depends on direction.
    ``response_schemas`` maps a payloadType to the Struct of its successful response.
    """

    name: str = "chat"
    response_timeout: float = 10.0
    # duplicate-request-id and duplicate-response look this many request ids back per connection:
    # remembering every id of a connection that lives for days would grow without bound.
    request_id_memory: int = 10_000
    severities: dict[str, str] = field(default_factory=lambda: {r.code: r.severity for r in RULES})
    stateful_events: frozenset[str] = frozenset({"new", "edit", "delete", "delivered", "read"})
    ephemeral_events: frozenset[str] = frozenset({"typing", "online", "offline"})
    request_schemas: dict[str, Any] = field(default_factory=lambda: dict(payloads.REQUEST_SCHEMAS))
    response_schemas: dict[str, Any] = field(default_factory=lambda: dict(payloads.RESPONSE_SCHEMAS))
    event_schemas: dict[str, Any] = field(default_factory=lambda: dict(payloads.EVENT_SCHEMAS))
    subscribe_payload_type: str = "subscribe"
    # A timestamp above this is taken for milliseconds (protocol.md: 1e11).
    millisecond_threshold: float = 1e11
    # timestamp-backwards tolerates this much (seconds) of going back.
    backwards_tolerance: float = 1.0
    # `wsproxy rerun` / `diff`: JSON paths of values the server generates, and of fields never compared.
    rerun_rebind: tuple[str, ...] = ()
    rerun_ignore: tuple[str, ...] = ()
    # --spec FILE: an AsyncAPI 3 document every message is checked against as well (core.spec_contract)
    spec: SpecCheck | None = None

    @property
    def known_payload_types(self) -> frozenset[str]:
        return frozenset(self.request_schemas)

    @property
    def known_event_types(self) -> frozenset[str]:
        return self.stateful_events | self.ephemeral_events | frozenset(self.event_schemas)

    def severity(self, code: str) -> str:
        """The configured severity of a rule, or ``"off"``."""
        return self.severities.get(code, OFF)

    def enabled(self, code: str) -> bool:
        return self.severities.get(code, OFF) != OFF


CHAT_PROFILE = Profile()

FAIL_ON_LEVELS = ("error", "warning", "none")  # what --fail-on takes


def fails(counts: dict[str, int], fail_on: str) -> bool:
    """Whether findings at or above the ``fail_on`` severity were counted ("none": never)."""
    if fail_on == "none":
        return False
    return bool(counts.get("error")) or (fail_on == "warning" and bool(counts.get("warning")))


class ProfileError(UserError, ValueError):
    """A profile file that cannot be used; the message says what to fix."""


def load_profile(path: str | Path) -> Profile:
    """Read a TOML profile (see docs/checks.md) on top of the built-in chat profile."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"profile {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"profile {path} is not valid TOML: {exc}") from None
    return profile_from_dict(data, source=str(path))


def profile_from_dict(data: dict[str, Any], source: str = "profile") -> Profile:
    """Apply the keys of a profile document to the built-in chat profile."""
    base = CHAT_PROFILE
    known_keys = {"name", "response_timeout", "request_id_memory", "severities", "events", "payload_types",
                  "event_types", "timestamps", "rerun"}
    unknown = set(data) - known_keys
    if unknown:
        raise ProfileError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}; "
                           f"allowed: {', '.join(sorted(known_keys))}")
    changes: dict[str, Any] = {}
    if "name" in data:
        changes["name"] = _expect(data["name"], str, f"{source}: name")
    if "response_timeout" in data:
        timeout = data["response_timeout"]
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ProfileError(f"{source}: response_timeout must be a positive number of seconds")
        changes["response_timeout"] = float(timeout)
    if "request_id_memory" in data:
        memory = data["request_id_memory"]
        if not isinstance(memory, int) or isinstance(memory, bool) or memory <= 0:
            raise ProfileError(f"{source}: request_id_memory must be a positive number of request ids")
        changes["request_id_memory"] = memory
    severities = dict(base.severities)
    for code, value in _expect(data.get("severities", {}), dict, f"{source}: [severities]").items():
        if code not in RULES_BY_CODE:
            raise ProfileError(f"{source}: [severities] names unknown rule {code!r}")
        if value not in (*SEVERITIES, OFF):
            raise ProfileError(f"{source}: severity of {code} must be one of error, warning, info, off")
        severities[code] = value
    changes["severities"] = severities
    events = _expect(data.get("events", {}), dict, f"{source}: [events]")
    for key, attr in (("stateful", "stateful_events"), ("ephemeral", "ephemeral_events")):
        if key in events:
            changes[attr] = frozenset(_string_list(events[key], f"{source}: events.{key}"))
    types = _expect(data.get("payload_types", {}), dict, f"{source}: [payload_types]")
    requests = dict(base.request_schemas)
    for name in _string_list(types.get("add", []), f"{source}: payload_types.add"):
        requests.setdefault(name, None)
    for name in _string_list(types.get("remove", []), f"{source}: payload_types.remove"):
        requests.pop(name, None)
    changes["request_schemas"] = requests
    event_types = _expect(data.get("event_types", {}), dict, f"{source}: [event_types]")
    schemas = dict(base.event_schemas)
    for name in _string_list(event_types.get("add", []), f"{source}: event_types.add"):
        schemas.setdefault(name, None)
    for name in _string_list(event_types.get("remove", []), f"{source}: event_types.remove"):
        schemas.pop(name, None)
    changes["event_schemas"] = schemas
    stamps = _expect(data.get("timestamps", {}), dict, f"{source}: [timestamps]")
    if "millisecond_threshold" in stamps:
        changes["millisecond_threshold"] = float(stamps["millisecond_threshold"])
    if "backwards_tolerance" in stamps:
        changes["backwards_tolerance"] = float(stamps["backwards_tolerance"])
    rerun = _expect(data.get("rerun", {}), dict, f"{source}: [rerun]")
    unknown_rerun = set(rerun) - {"rebind", "ignore"}
    if unknown_rerun:
        raise ProfileError(f"{source}: [rerun] has unknown key(s) {', '.join(sorted(unknown_rerun))}; allowed: ignore, rebind")
    changes["rerun_rebind"] = tuple(_string_list(rerun.get("rebind", []), f"{source}: rerun.rebind"))
    changes["rerun_ignore"] = tuple(_string_list(rerun.get("ignore", []), f"{source}: rerun.ignore"))
    profile = replace(base, **changes)
    overlap = profile.stateful_events & profile.ephemeral_events
    if overlap:
        raise ProfileError(f"{source}: event type(s) {', '.join(sorted(overlap))} cannot be both stateful and ephemeral")
    return profile


def _expect(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind):
        raise ProfileError(f"{where} must be a {'table' if kind is dict else kind.__name__}")
    return value


def _string_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ProfileError(f"{where} must be a list of strings")
    return value
