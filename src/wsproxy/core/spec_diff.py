"""What changed between two AsyncAPI 3 documents of the protocol (``wsproxy spec diff OLD NEW``), and
where today's traffic drifts from a document (``spec infer RECORDING --against FILE``).

Messages are matched by what their envelopes say (a request by payloadType, its reply and error reply
by role, an event by eventType and direction: ``core.spec_contract.read_catalogue``), so documents
that name or arrange their components differently still compare. Within a message the schemas are
walked together (``$ref`` expanded) and every difference is a ``ChangeKind``. Whether it is breaking
depends on the question, so each reading has its table:

- **diff** (a document changed): breaking when a client or server built on the old one may fail — a
  message or reply removed, a field newly required, a required field removed, a type or set of values
  narrowed or changed. Additions, relaxed requirements, widened types are compatible.
- **drift** (the document against the document inferred from traffic): breaking when the traffic does
  something the document does not allow — a message or field it does not list, a type or value outside
  it, a required field missing. What the document allows and the traffic never used is compatible.

Core module: standard library and ``core`` only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from wsproxy.core.json_schema import SchemaError, resolve
from wsproxy.core.spec_contract import Catalogue, SpecError

Impact = Literal["breaking", "compatible"]
Reading = Literal["diff", "drift"]
ChangeKind = Literal[
    "message-removed", "message-added", "newly-required", "added-required", "added-optional",
    "required-removed", "optional-removed", "no-longer-required", "type-narrowed", "type-widened",
    "type-changed", "type-dropped", "type-added", "values-removed", "values-added", "values-changed",
    "values-dropped", "values-limited"]
# (impact when a document changed, impact when traffic drifts from a document, the words of each)
_TABLE: dict[ChangeKind, tuple[Impact, Impact, str, str]] = {
    "message-removed": ("breaking", "compatible", "removed", "in the document, not seen in the traffic"),
    "message-added": ("compatible", "breaking", "added", "in the traffic, not in the document"),
    "newly-required": ("breaking", "compatible", "newly required", "optional in the document, in every message"),
    "added-required": ("breaking", "breaking", "added, required", "in the traffic, not in the document"),
    "added-optional": ("compatible", "breaking", "added, optional", "in the traffic, not in the document"),
    "required-removed": ("breaking", "breaking", "removed (it was required)",
                         "required by the document, never in the traffic"),
    "optional-removed": ("compatible", "compatible", "removed (it was optional)",
                         "optional in the document, never in the traffic"),
    "no-longer-required": ("compatible", "breaking", "no longer required",
                           "required by the document, missing from some messages"),
    "type-narrowed": ("breaking", "compatible", "type narrowed", "the traffic used fewer types"),
    "type-widened": ("compatible", "breaking", "type widened", "the traffic used types the document does not allow"),
    "type-changed": ("breaking", "breaking", "type changed", "the traffic used another type"),
    "type-dropped": ("compatible", "compatible", "type no longer constrained", "no value seen to tell its type"),
    "type-added": ("breaking", "compatible", "now constrained to a type", "the document allows any type"),
    "values-removed": ("breaking", "compatible", "values removed", "values the traffic never used"),
    "values-added": ("compatible", "breaking", "values added", "values outside the document's"),
    "values-changed": ("breaking", "breaking", "values changed", "values outside the document's"),
    "values-dropped": ("compatible", "compatible", "any value allowed now", "no enum inferred from the traffic"),
    "values-limited": ("breaking", "compatible", "now limited to", "the document allows any value"),
}
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

    def add(kind: ChangeKind, where: str, pointer: str, detail: str = "") -> None:
        for_diff, for_drift, diff_words, drift_words = _TABLE[kind]
        words = diff_words if reading == "diff" else drift_words
        changes.append(Change(for_diff if reading == "diff" else for_drift, kind, where, pointer,
                              f"{words}{': ' + detail if detail else ''}"))

    for key in sorted(before.keys() | after.keys()):
        kind, name = key
        where = f"{_KIND_WORDS[kind]} {name}"
        if key not in after:
            add("message-removed", where, "", before[key].name)
        elif key not in before:
            add("message-added", where, "", after[key].name)
        else:
            _Walker(old_document, new_document, lambda k, p, d="", w=where: add(k, w, p, d)).compare(
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
        for _ in range(8):
            if not isinstance(schema, dict) or "$ref" not in schema:
                return schema
            try:
                schema = resolve(self.documents[which], schema["$ref"])
            except SchemaError as exc:
                raise SpecError(str(exc)) from None
        return schema


def _type_set(schema: dict[str, Any]) -> frozenset[str] | None:
    """The types a schema allows: its ``type``, else the types of its ``const`` or ``enum`` values."""
    value = schema.get("type")
    if value is not None:
        names = set(value if isinstance(value, list) else [value])
    elif "const" in schema or isinstance(schema.get("enum"), list):
        values = [schema["const"]] if "const" in schema else schema["enum"]
        names = {_json_type(v) for v in values}
    else:
        return None
    if "number" in names:
        names.add("integer")  # integer is part of number: number -> integer narrows, the other way widens
    return frozenset(names)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {int: "integer", float: "number", str: "string", list: "array"}.get(type(value), "object")


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
