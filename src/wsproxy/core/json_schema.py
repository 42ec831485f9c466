"""JSON Schema compiled once into plain Python checks, for messages on the hot path.

``compile_schema(schema, document)`` turns a schema (draft 2020-12 / AsyncAPI's Schema Object, the
keywords traffic can break) into a function ``check(value, pointer, problems)`` that appends a
``Problem`` for every failure, each with the JSON pointer of what failed and the schema's words.
Compiling walks the schema once (``$ref`` into the same document resolved then, cycles included), so
checking a message is a few calls per field: no schema is interpreted per message.

Understood: ``$ref``, ``type``, ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties``, ``items``, ``minItems``/``maxItems``, ``minLength``/``maxLength``,
``minimum``/``maximum`` (and exclusive), ``multipleOf``, ``pattern``, ``allOf``/``anyOf``/``oneOf``,
``not``, boolean schemas. Other keywords (``format``, ``description``…) are ignored. A field that an
object's ``properties`` do not list is an ``extra`` problem unless ``additionalProperties`` allows it
(the chat protocol keeps unknown fields: a spec's severities make them a warning).

Core module: standard library only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

ProblemKind = Literal["required", "type", "enum", "extra", "constraint"]
Check = Callable[[Any, str, list["Problem"]], None]


@dataclass(frozen=True, slots=True)
class Problem:
    kind: ProblemKind
    pointer: str  # RFC 6901, from the checked value's root ("" is the root)
    words: str


class SchemaError(ValueError):
    """The document's schema cannot be used (a ``$ref`` to nowhere, a bad pattern…)."""


_TYPES: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: v is True or v is False,
    "integer": lambda v: (type(v) is int) or (type(v) is float and v.is_integer()),
    "number": lambda v: type(v) is int or type(v) is float,
    "string": lambda v: type(v) is str,
    "array": lambda v: type(v) is list,
    "object": lambda v: type(v) is dict,
}


def compile_schema(schema: Any, document: Any = None) -> Check:
    """The check of ``schema``; ``$ref``s resolve in ``document`` (default: the schema itself)."""
    return _Compiler(document if document is not None else schema).compile(schema)


def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded JSON value, as written (``1.0`` is a number; ``True`` is no
    integer)."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "boolean"
    return {int: "integer", float: "number", str: "string", list: "array"}.get(type(value), "object")


def describe(value: Any) -> str:
    """A value as the words of a problem: its JSON type and, when short, the value."""
    kind = json_type(value)
    text = json.dumps(value, ensure_ascii=False)
    return kind if kind in ("object", "array") or len(text) > 40 else f"{kind} {text}"


def follow(document: Any, node: Any, hops: int = 8) -> Any:
    """``node`` with its ``$ref`` followed, and the next one's, at most ``hops`` times (a ``$ref`` that
    names itself ends there instead of looping)."""
    for _ in range(hops):
        if not isinstance(node, dict) or "$ref" not in node:
            return node
        node = resolve(document, node["$ref"])
    return node


def resolve(document: Any, ref: str) -> Any:
    """The part of ``document`` a local ``$ref`` (``#/components/…``) names."""
    if not ref.startswith("#"):
        raise SchemaError(f"$ref {ref!r} points outside the document: only local references (#/...) are read")
    node = document
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise SchemaError(f"$ref {ref!r} names nothing in the document")
    return node


class _Compiler:
    def __init__(self, document: Any) -> None:
        self.document = document
        self.refs: dict[tuple[str, frozenset[str]], list[Check]] = {}  # each ref compiled once; a cell, for cycles

    def compile(self, schema: Any, siblings: frozenset[str] = frozenset()) -> Check:
        """The check of ``schema``; ``siblings``: field names that other parts of an ``allOf`` list, which
        are no extra fields here."""
        if schema is True or schema == {}:
            return _anything
        if schema is False:
            return lambda value, pointer, out: out.append(Problem("constraint", pointer, "nothing is allowed here"))
        if not isinstance(schema, dict):
            raise SchemaError(f"a schema must be an object or a boolean, not {describe(schema)}")
        checks = [check for check in self._keywords(schema, siblings) if check is not _anything]
        if not checks:
            return _anything
        if len(checks) == 1:
            return checks[0]

        def all_of(value: Any, pointer: str, out: list[Problem]) -> None:
            for check in checks:
                check(value, pointer, out)
        return all_of

    def _keywords(self, schema: dict[str, Any], siblings: frozenset[str]) -> list[Check]:
        checks: list[Check] = []
        if "$ref" in schema:
            checks.append(self._ref(schema["$ref"], siblings))
        types = schema.get("type")
        object_like = types == "object" or "properties" in schema or "required" in schema
        if types is not None:
            checks.append(_type_check(types if isinstance(types, list) else [types]))
        if "const" in schema:
            checks.append(_enum_check([schema["const"]], f"must be {json.dumps(schema['const'])}"))
        if "enum" in schema:
            checks.append(_enum_check(list(schema["enum"]), f"must be one of {json.dumps(schema['enum'])}"))
        if object_like or "additionalProperties" in schema:
            checks.append(self._object(schema, siblings))
        if isinstance(schema.get("items"), (dict, bool)) or "minItems" in schema or "maxItems" in schema:
            checks.append(self._array(schema))
        checks.extend(_bounds(schema))
        for keyword in ("allOf", "anyOf", "oneOf"):
            if keyword in schema:
                checks.append(self._combined(keyword, schema[keyword], siblings | self._listed(schema)))
        if "not" in schema:
            negated = self.compile(schema["not"])

            def not_(value: Any, pointer: str, out: list[Problem]) -> None:
                trial: list[Problem] = []
                negated(value, pointer, trial)
                if not trial:
                    out.append(Problem("constraint", pointer, "matches a schema it must not (not)"))
            checks.append(not_)
        return checks

    def _ref(self, ref: str, siblings: frozenset[str]) -> Check:
        cell = self.refs.get((ref, siblings))
        if cell is None:
            cell = self.refs[(ref, siblings)] = []
            cell.append(self.compile(resolve(self.document, ref), siblings))
        return lambda value, pointer, out: cell[0](value, pointer, out)

    def _listed(self, schema: dict[str, Any]) -> frozenset[str]:
        """The field names a schema and the parts of its ``allOf`` list (through ``$ref``)."""
        names: set[str] = set()
        for part in [schema, *(schema.get("allOf") or [])]:
            part = follow(self.document, part)
            if isinstance(part, dict):
                names.update(part.get("properties") or {})
        return frozenset(names)

    def _object(self, schema: dict[str, Any], siblings: frozenset[str]) -> Check:
        properties = {name: self.compile(sub) for name, sub in (schema.get("properties") or {}).items()}
        required = list(schema.get("required") or [])
        extra = schema.get("additionalProperties")
        if extra is None or extra is False:
            allow_extra: Check | None = None
        elif extra is True:
            allow_extra = _anything
        else:
            allow_extra = self.compile(extra)
        listed = "properties" in schema or extra is False

        def check_object(value: Any, pointer: str, out: list[Problem]) -> None:
            if type(value) is not dict:
                return  # ``type`` says what it should be
            for name in required:
                if name not in value:
                    out.append(Problem("required", f"{pointer}/{_escape(name)}", f"{name!r} is required"))
            for name, item in value.items():
                check = properties.get(name)
                if check is not None:
                    if check is not _anything:
                        check(item, f"{pointer}/{_escape(name)}", out)
                elif allow_extra is not None:
                    allow_extra(item, f"{pointer}/{_escape(name)}", out)
                elif listed and name not in siblings:
                    out.append(Problem("extra", f"{pointer}/{_escape(name)}",
                                       f"{name!r} is not in the document's properties"))
        return check_object

    def _array(self, schema: dict[str, Any]) -> Check:
        items = self.compile(schema["items"]) if isinstance(schema.get("items"), (dict, bool)) else _anything
        least, most = schema.get("minItems"), schema.get("maxItems")

        def check_array(value: Any, pointer: str, out: list[Problem]) -> None:
            if type(value) is not list:
                return
            if least is not None and len(value) < least:
                out.append(Problem("constraint", pointer, f"has {len(value)} items, at least {least} required (minItems)"))
            if most is not None and len(value) > most:
                out.append(Problem("constraint", pointer, f"has {len(value)} items, at most {most} allowed (maxItems)"))
            if items is not _anything:
                for index, item in enumerate(value):
                    items(item, f"{pointer}/{index}", out)
        return check_array

    def _combined(self, keyword: str, schemas: Any, siblings: frozenset[str]) -> Check:
        if not isinstance(schemas, list) or not schemas:
            raise SchemaError(f"{keyword} must be a non-empty list of schemas")
        # the parts of an allOf describe one object together: a field one lists is no extra in another
        branches = [self.compile(sub, siblings if keyword == "allOf" else frozenset()) for sub in schemas]
        if keyword == "allOf":
            def all_of(value: Any, pointer: str, out: list[Problem]) -> None:
                for branch in branches:
                    branch(value, pointer, out)
            return all_of

        def any_of(value: Any, pointer: str, out: list[Problem]) -> None:
            trials = []
            for branch in branches:
                trial: list[Problem] = []
                branch(value, pointer, trial)
                if not trial and keyword == "anyOf":
                    return  # one fits: enough
                trials.append(trial)
            fits = sum(1 for trial in trials if not trial)
            if fits > 1:
                out.append(Problem("constraint", pointer, f"matches {fits} of the oneOf schemas, exactly one allowed"))
            elif not fits:
                closest = min(trials, key=lambda trial: (sum(p.kind != "extra" for p in trial), len(trial)))
                if all(problem.kind == "extra" for problem in closest):
                    out.extend(closest)  # it fits but for fields the document does not list
                else:
                    first = next(problem for problem in closest if problem.kind != "extra")
                    out.append(Problem("constraint", first.pointer,
                                       f"matches none of the {keyword} schemas (the closest: {first.words})"))
        return any_of


def _anything(value: Any, pointer: str, out: list[Problem]) -> None:
    return None


def _type_check(types: list[str]) -> Check:
    for name in types:
        if name not in _TYPES:
            raise SchemaError(f"unknown type {name!r}: one of {', '.join(_TYPES)}")
    tests = [_TYPES[name] for name in types]
    wanted = " or ".join(types)
    if len(tests) == 1:
        test = tests[0]

        def one_type(value: Any, pointer: str, out: list[Problem]) -> None:
            if not test(value):
                out.append(Problem("type", pointer, f"expected {wanted}, got {describe(value)}"))
        return one_type

    def types_check(value: Any, pointer: str, out: list[Problem]) -> None:
        for test in tests:
            if test(value):
                return
        out.append(Problem("type", pointer, f"expected {wanted}, got {describe(value)}"))
    return types_check


def _enum_check(values: list[Any], words: str) -> Check:
    hashable = all(isinstance(v, (str, int, float, bool)) or v is None for v in values)
    allowed = {(type(v) is bool, v) for v in values} if hashable else None

    def enum(value: Any, pointer: str, out: list[Problem]) -> None:
        if allowed is not None and (value is None or isinstance(value, (str, int, float, bool))):
            if (type(value) is bool, value) in allowed:  # True is not 1 here, 1.0 is 1 (as JSON Schema says)
                return
        elif any(value == v for v in values):
            return
        out.append(Problem("enum", pointer, f"{describe(value)} {words}"))
    return enum


def _bounds(schema: dict[str, Any]) -> list[Check]:
    checks: list[Check] = []
    numeric = [(key, schema[key]) for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                                              "multipleOf") if isinstance(schema.get(key), (int, float))]
    if numeric:
        def numbers(value: Any, pointer: str, out: list[Problem]) -> None:
            if type(value) not in (int, float):
                return
            for key, bound in numeric:
                broken = {"minimum": value < bound, "maximum": value > bound, "exclusiveMinimum": value <= bound,
                          "exclusiveMaximum": value >= bound,
                          "multipleOf": bound != 0 and (value / bound) % 1 != 0}[key]
                if broken:
                    out.append(Problem("constraint", pointer, f"{describe(value)} breaks {key} {bound}"))
        checks.append(numbers)
    shortest, longest, pattern = schema.get("minLength"), schema.get("maxLength"), schema.get("pattern")
    if shortest is not None or longest is not None or pattern is not None:
        try:
            compiled = re.compile(pattern) if isinstance(pattern, str) else None
        except re.error as exc:
            raise SchemaError(f"pattern {pattern!r} is not a regular expression: {exc}") from None

        def strings(value: Any, pointer: str, out: list[Problem]) -> None:
            if type(value) is not str:
                return
            if shortest is not None and len(value) < shortest:
                out.append(Problem("constraint", pointer, f"{describe(value)} is shorter than minLength {shortest}"))
            if longest is not None and len(value) > longest:
                out.append(Problem("constraint", pointer, f"{describe(value)} is longer than maxLength {longest}"))
            if compiled is not None and compiled.search(value) is None:
                out.append(Problem("constraint", pointer, f"{describe(value)} does not match pattern {pattern!r}"))
        checks.append(strings)
    return checks


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")
