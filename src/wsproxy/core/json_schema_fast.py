"""A msgspec type that accepts only JSON a schema accepts: the fast path of ``--spec``.

Most messages are fine, and msgspec decodes and validates a message against a Struct in C, in about a
microsecond, where the checks of ``core.json_schema`` take several in Python. So each message schema is
also turned into msgspec types: a message they decode is valid, with nothing to report; one they refuse
goes to ``json_schema``'s checks, which are the authority and say what failed where. The types may be
stricter than the schema (a refusal only costs the slow path) but never looser; a schema they cannot
express soundly (``oneOf``, recursion, ``additionalProperties`` with a schema, a ``const`` that is not a
string or an integer…) gets no fast path.

Core module: standard library, msgspec and ``core`` only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

import msgspec

from wsproxy.core.json_schema import SchemaError, resolve

_names = itertools.count()
_BOUNDS = {"minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt", "exclusiveMaximum": "lt", "multipleOf": "multiple_of"}
_WORDS = {"description", "title", "examples", "example", "default", "format", "deprecated", "readOnly", "writeOnly",
          "$comment", "externalDocs", "discriminator"}  # they constrain nothing (json_schema ignores them too)
_UNDERSTOOD = {"type", "properties", "required", "additionalProperties", "items", "enum", "const", "minLength",
               "maxLength", "pattern", "minItems", "maxItems", "$ref", *_BOUNDS, *_WORDS}


class _Unsound(Exception):
    """This schema has no msgspec type that is never looser than it."""


def fast_decoder(schema: Any, document: Any) -> Callable[[str | bytes], Any] | None:
    """``decode(raw)`` that succeeds only for JSON valid against ``schema`` (None: no fast path)."""
    try:
        return msgspec.json.Decoder(_type(schema, document, 0)).decode
    except (_Unsound, SchemaError, TypeError, ValueError):  # TypeError: a union msgspec cannot decode
        return None


def _type(schema: Any, document: Any, depth: int) -> Any:
    if depth > 16:
        raise _Unsound  # a recursive $ref
    if schema is True or schema == {}:
        return Any
    if not isinstance(schema, dict) or set(schema) - _UNDERSTOOD:
        raise _Unsound
    if "$ref" in schema:
        if len(schema) > 1:
            raise _Unsound  # $ref beside other keywords: both apply
        return _type(resolve(document, schema["$ref"]), document, depth + 1)
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else list(schema["enum"])
        kinds = schema.get("type")
        allowed = set(kinds if isinstance(kinds, list) else [kinds] if kinds else ["string", "integer"])
        if (not values or set(schema) - _WORDS - {"type", "const", "enum"}
                or not all((type(v) is str and "string" in allowed) or
                           (type(v) is int and allowed & {"integer", "number"}) for v in values)):
            raise _Unsound  # a value its type or another keyword refuses: a Literal would be looser
        return Literal[tuple(values)]
    kinds = schema.get("type")
    if kinds is None:
        raise _Unsound  # any type, yet with other keywords to hold
    options = [_one(kind, schema, document, depth) for kind in (kinds if isinstance(kinds, list) else [kinds])]
    return options[0] if len(options) == 1 else Union[tuple(options)]  # noqa: UP007 - a runtime union


def _one(kind: str, schema: dict[str, Any], document: Any, depth: int) -> Any:
    if kind == "null":
        return None
    if kind == "boolean":
        return bool
    if kind in ("integer", "number"):
        meta = {_BOUNDS[key]: schema[key] for key in _BOUNDS if key in schema}
        base = int if kind == "integer" else float
        return Annotated[base, msgspec.Meta(**meta)] if meta else base
    if kind == "string":
        meta = {name: schema[key] for key, name in (("minLength", "min_length"), ("maxLength", "max_length"),
                                                    ("pattern", "pattern")) if key in schema}
        return Annotated[str, msgspec.Meta(**meta)] if meta else str
    if kind == "array":
        items = _type(schema["items"], document, depth + 1) if "items" in schema else Any
        meta = {name: schema[key] for key, name in (("minItems", "min_length"), ("maxItems", "max_length"))
                if key in schema}
        return Annotated[list[items], msgspec.Meta(**meta)] if meta else list[items]  # type: ignore[valid-type]
    if kind == "object":
        return _object(schema, document, depth)
    raise _Unsound


def _object(schema: dict[str, Any], document: Any, depth: int) -> Any:
    properties = schema.get("properties") or {}
    required = list(schema.get("required") or [])
    extra = schema.get("additionalProperties")
    if "properties" not in schema and extra is not False:
        if required or extra not in (None, True):
            raise _Unsound
        return dict[str, Any]  # no listed fields: anything goes (json_schema reports no extra field either)
    if extra not in (None, False):
        raise _Unsound  # extra fields allowed, or checked against a schema: not a Struct
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    for index, name in enumerate(dict.fromkeys([*properties, *required])):
        field_type = _type(properties[name], document, depth + 1) if name in properties else Any
        rename[f"f{index}"] = name
        if name in required:
            fields.append((f"f{index}", field_type))
        else:  # absent is fine; null only where the schema allows it
            fields.append((f"f{index}", Union[field_type, msgspec.UnsetType], msgspec.UNSET))  # noqa: UP007
    # unknown fields refused: the slow path says which (spec-extra-field)
    return msgspec.defstruct(f"Spec{next(_names)}", fields, rename=rename, kw_only=True,
                             forbid_unknown_fields=True, gc=False)
