"""Deliberate misbehaviour of the reference chat server (``--faults``).

A fault list is ``name[:rate]`` items separated by commas: ``drop-response`` fires once,
at the first opportunity; ``skip-event-id:0.2`` fires at each opportunity with that
probability (seeded, so a run can be repeated); ``name:always`` fires every time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from wsproxy.core.errors import UserError
from wsproxy.core.inject import probability

# Each fault and the misbehaviour it produces; the checker rule it should trigger follows.
FAULTS: dict[str, str] = {
    "drop-response": "a request (other than subscribe) gets no response (unanswered-request)",
    "duplicate-response": "a response is sent twice (duplicate-response)",
    "orphan-response": "an extra response with an id no request used (orphan-response)",
    "skip-event-id": "a stored event id skips one, so the stream has a hole (event-id-gap)",
    "repeat-event-id": "a stateful event reuses the previous id (event-id-not-increasing)",
    "missing-event-id": "a stateful event is sent without an id (stateful-event-without-id)",
    "short-catchup": "catch-up sends one event fewer than announced (subscribe-catchup-mismatch)",
    "ms-timestamps": "a message carries its timestamp in milliseconds (timestamp-unit)",
    "invalid-json": "an extra text frame that is not JSON (invalid-json)",
    "binary": "an extra binary frame (binary-message)",
}


class FaultSpecError(UserError, ValueError):
    """A ``--faults`` list that cannot be read."""


@dataclass
class Faults:
    """Decides, opportunity by opportunity, whether a fault fires."""

    rates: dict[str, float | None] = field(default_factory=dict)  # None: once
    seed: int = 0
    fired: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    @classmethod
    def parse(cls, spec: str | None, seed: int = 0) -> Faults:
        rates: dict[str, float | None] = {}
        for item in filter(None, (part.strip() for part in (spec or "").split(","))):
            name, _, rate_text = item.partition(":")
            if name not in FAULTS:
                raise FaultSpecError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
            rates[name] = _parse_rate(name, rate_text) if rate_text else None
        return cls(rates, seed)

    def fire(self, name: str) -> bool:
        """Whether ``name`` misbehaves at this opportunity (and count it if so)."""
        if name not in self.rates:
            return False
        rate = self.rates[name]
        hit = name not in self.fired if rate is None else rate >= 1.0 or self._random.random() < rate
        if hit:
            self.fired[name] = self.fired.get(name, 0) + 1
        return hit


def _parse_rate(name: str, text: str) -> float | None:
    if text == "always":
        return 1.0
    if text == "once":
        return None  # once
    rate = probability(text)
    if rate is None:
        raise FaultSpecError(f"rate of {name} must be 'once', 'always' or a number in (0, 1], not {text!r}")
    return rate
