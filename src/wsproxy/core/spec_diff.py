"""What changed between two AsyncAPI 3 documents of the protocol (``wsproxy spec diff OLD NEW``), and
where today's traffic drifts from a document (``spec infer RECORDING --against FILE``).

Messages are matched by what their envelopes say (a request by payloadType, its reply and error reply
by role, an event by eventType and direction: ``core.spec_contract.read_catalogue``), so documents
that name or arrange their components differently still compare. Within a message the schemas are
walked together (``$ref`` expanded) and every difference is a ``ChangeKind``. Whether it is breaking
depends on the question, so each reading has its table:

- **diff** (a document changed): breaking when a client or server built on the old one may fail. On
  what the server reads (requests, client events) narrowing breaks the clients that send it: a message
  removed, a field newly required, a type or set of values narrowed. On what the client reads (replies,
  server events) widening breaks the clients that read it: a field no longer required or removed, a
  type or set of values widened. A type changed breaks either way; anything else is compatible.
- **drift** (the document against the document inferred from traffic): breaking when the traffic does
  something the document does not allow — a message or field it does not list, a type or value outside
  it, a required field missing. What the document allows and the traffic never used is compatible.

Core module: standard library and ``core`` only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from wsproxy.core.json_schema import SchemaError, follow, json_type
from wsproxy.core.spec_contract import Catalogue, SpecError

Impact = Literal["breaking", "compatible"]
Reading = Literal["diff", "drift"]
ChangeKind = Literal[
    "message-removed", "message-added", "newly-required", "added-required", "added-optional",
    "required-removed", "optional-removed", "no-longer-required", "type-narrowed", "type-widened",
    "type-changed", "type-dropped", "type-added", "values-removed", "values-added", "values-changed",
    "values-dropped", "values-limited"]
_B: Impact = "breaking"
_C: Impact = "compatible"
# Per kind: the impact when a document changed, on a message the server reads (a request, a client
# event: narrowing breaks the clients that send it) and on one the client reads (a reply, a server
# event: widening breaks the clients that read it); the impact when traffic drifts from a document;
# then the words of a change and of a drift.
_TABLE: dict[ChangeKind, tuple[Impact, Impact, Impact, str, str]] = {
    "message-removed": (_B, _B, _C, "removed", "in the document, not seen in the traffic"),
    "message-added": (_C, _C, _B, "added", "in the traffic, not in the document"),
    "newly-required": (_B, _C, _C, "newly required", "optional in the document, in every message"),
    "added-required": (_B, _C, _B, "added, required", "in the traffic, not in the document"),
    "added-optional": (_C, _C, _B, "added, optional", "in the traffic, not in the document"),
    "required-removed": (_C, _B, _B, "removed (it was required)", "required by the document, never in the traffic"),
    "optional-removed": (_C, _C, _C, "removed (it was optional)", "optional in the document, never in the traffic"),
    "no-longer-required": (_C, _B, _B, "no longer required", "required by the document, missing from some messages"),
    "type-narrowed": (_B, _C, _C, "type narrowed", "the traffic used fewer types"),
    "type-widened": (_C, _B, _B, "type widened", "the traffic used types the document does not allow"),
    "type-changed": (_B, _B, _B, "type changed", "the traffic used another type"),
    "type-dropped": (_C, _B, _C, "type no longer constrained", "no value seen to tell its type"),
    "type-added": (_B, _C, _C, "now constrained to a type", "the document allows any type"),
    "values-removed": (_B, _C, _C, "values removed", "values the traffic never used"),
    "values-added": (_C, _B, _B, "values added", "values outside the document's"),
    "values-changed": (_B, _B, _B, "values changed", "values outside the document's"),
    "values-dropped": (_C, _B, _C, "any value allowed now", "no enum inferred from the traffic"),
    "values-limited": (_B, _C, _C, "now limited to", "the document allows any value"),
}
_SERVER_READS = {"request", "client-event"}
_KIND_WORDS = {"request": "request", "reply": "reply", "event": "server event", "client-event": "client event"}


@dataclass(frozen=True, slots=True)
class Change:
    impact: Impact
    kind: ChangeKind
    message: str  # e.g. "request new", "reply new error", "server event typing"
    pointer: str  # into the envelope ("" for the whole message)
    words: str


def diff(old: Catalogue, new: Catalogue, old_document: Any, new_document: Any, reading: Reading = "diff") -> list[Change]:
    """Every difference from ``old`` to ``new`` as ``reading`` judges it, breaking ones first (for drift,
    ``old`` is the document and ``new`` the one inferred from the traffic)."""
    changes: list[Change] = []
    before, after = old.messages(), new.messages()

    def add(kind: ChangeKind, message_kind: str, where: str, pointer: str, detail: str = "") -> None:
        server_reads, client_reads, drift, diff_words, drift_words = _TABLE[kind]
        if reading == "drift":
            impact, words = drift, drift_words
        else:
            impact, words = (server_reads if message_kind in _SERVER_READS else client_reads), diff_words
        changes.append(Change(impact, kind, where, pointer, f"{words}{': ' + detail if detail else ''}"))

    for key in sorted(before.keys() | after.keys()):
        kind, name = key
        where = f"{_KIND_WORDS[kind]} {name}"
        if key not in after:
            add("message-removed", kind, where, "", before[key].name)
        elif key not in before:
            add("message-added", kind, where, "", after[key].name)
        else:
            _Walker(old_document, new_document, lambda k, p, d="", w=where, m=kind: add(k, m, w, p, d)).compare(
                before[key].schema, after[key].schema, "", 0)
    changes.sort(key=lambda change: (change.impact != "breaking", change.message, change.pointer))
    return changes


class _Walker:
    def __init__(self, old_document: Any, new_document: Any, add: Any) -> None:
        self.documents = (old_document, new_document)
        self.add = add

    def compare(self, old: Any, new: Any, pointer: str, depth: int) -> None:
        old, new = self._expand(old, 0), self._expand(new, 1)
        if depth > 32 or not isinstance(old, dict) or not isinstance(new, dict):
            return  # a recursive schema: compared down to a sensible depth
        self._types(old, new, pointer)
        self._values(old, new, pointer)
        old_properties = {k: self._expand(v, 0) for k, v in (old.get("properties") or {}).items()}
        new_properties = {k: self._expand(v, 1) for k, v in (new.get("properties") or {}).items()}
        old_required, new_required = set(old.get("required") or []), set(new.get("required") or [])
        for name in sorted(old_properties.keys() | new_properties.keys() | old_required | new_required):
            at = f"{pointer}/{name}"
            in_old = name in old_properties or name in old_required  # a required name needs no schema
            in_new = name in new_properties or name in new_required
            if in_old and not in_new:
                self.add("required-removed" if name in old_required else "optional-removed", at)
            elif in_new and not in_old:
                self.add("added-required" if name in new_required else "added-optional", at)
            else:
                if name in new_required and name not in old_required:
                    self.add("newly-required", at)
                elif name in old_required and name not in new_required:
                    self.add("no-longer-required", at)
                self.compare(old_properties.get(name), new_properties.get(name), at, depth + 1)
        old_items, new_items = self._expand(old.get("items"), 0), self._expand(new.get("items"), 1)
        if isinstance(old_items, dict) and isinstance(new_items, dict):
            self.compare(old_items, new_items, f"{pointer}/items", depth + 1)

    def _types(self, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
        before, after = _type_set(old), _type_set(new)
        if before == after:
            return
        if after is None:
            assert before is not None
            self.add("type-dropped", pointer, _words(before))
        elif before is None:
            self.add("type-added", pointer, _words(after))
        elif after < before:
            self.add("type-narrowed", pointer, f"{_words(before)} -> {_words(after)}")
        elif before < after:
            self.add("type-widened", pointer, f"{_words(before)} -> {_words(after)}")
        else:
            self.add("type-changed", pointer, f"{_words(before)} -> {_words(after)}")

    def _values(self, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
        before, after = _allowed(old), _allowed(new)
        if before == after:
            return
        if after is None:
            self.add("values-dropped", pointer)
        elif before is None:
            self.add("values-limited", pointer, _list(after))
        elif after < before:
            self.add("values-removed", pointer, _list(before - after))
        elif before < after:
            self.add("values-added", pointer, _list(after - before))
        else:
            self.add("values-changed", pointer, f"{_list(before)} -> {_list(after)}")

    def _expand(self, schema: Any, which: int) -> Any:
        try:
            return follow(self.documents[which], schema)
        except SchemaError as exc:
            raise SpecError(str(exc)) from None


def _type_set(schema: dict[str, Any]) -> frozenset[str] | None:
    """The types a schema allows: its ``type``, else the types of its ``const`` or ``enum`` values."""
    value = schema.get("type")
    if value is not None:
        names = set(value if isinstance(value, list) else [value])
    elif "const" in schema or isinstance(schema.get("enum"), list):
        values = [schema["const"]] if "const" in schema else schema["enum"]
        names = {json_type(v) for v in values}
    else:
        return None
    if "number" in names:
        names.add("integer")  # integer is part of number: number -> integer narrows, the other way widens
    return frozenset(names)


def _words(types: frozenset[str]) -> str:
    shown = sorted(types - {"integer"} if "number" in types else types)
    return " | ".join(shown)


def _allowed(schema: dict[str, Any]) -> frozenset[str] | None:
    if "const" in schema:
        return frozenset([json.dumps(schema["const"], sort_keys=True)])
    if isinstance(schema.get("enum"), list):
        return frozenset(json.dumps(v, sort_keys=True) for v in schema["enum"])
    return None


def _list(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))
