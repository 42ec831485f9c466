"""JSON Schema from observed JSON values, merged over every observation (never guessed from one).

Feed a ``Shape`` every value seen at one place (``shape.add(value)``), then ask for its schema:
required = present in every object observed, optional otherwise; types unioned (``null`` too);
``integer`` while only whole numbers came, ``number`` once a fraction did; nested objects and the
items of every array merged across all elements; a string whose few values repeat becomes an
``enum`` (``Enums`` says how few and how often). What JSON Schema cannot say from traffic (formats,
bounds) is left out rather than guessed.

Core module: standard library and ``core`` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wsproxy.core.json_schema import json_type

JsonType = str  # one of JSON Schema's type names: null boolean integer number string array object
_ORDER = ("object", "array", "string", "integer", "number", "boolean", "null")


@dataclass(frozen=True, slots=True)
class Enums:
    """When a string field is an enum: at most ``limit`` distinct values (0: never), each value seen
    ``repeat`` times on average, and none of the values in ``not_values`` (names that are data, such as
    the users of a channel's ``?user=``: a chat among three users is not a three-value enum)."""

    limit: int = 8
    repeat: float = 3.0
    not_values: frozenset[str] = frozenset()


DEFAULT_ENUMS = Enums()


@dataclass(slots=True)
class Shape:
    """Everything seen at one place of a document (a payload, a field, an array's items)."""

    seen: int = 0
    types: dict[JsonType, int] = field(default_factory=dict)
    strings: dict[str, int] | None = field(default_factory=dict)  # None: too many distinct values to keep
    objects: int = 0
    properties: dict[str, Shape] = field(default_factory=dict)
    items: Shape | None = None

    def add(self, value: Any, enum_memory: int = 64) -> None:
        self.seen += 1
        kind = json_type(value)
        self.types[kind] = self.types.get(kind, 0) + 1
        if kind == "object":
            self.objects += 1
            for key, item in value.items():
                child = self.properties.get(key)
                if child is None:
                    child = self.properties[key] = Shape()
                child.add(item, enum_memory)
        elif kind == "array":
            if self.items is None:
                self.items = Shape()
            for item in value:
                self.items.add(item, enum_memory)
        elif kind == "string" and self.strings is not None:
            self.strings[value] = self.strings.get(value, 0) + 1
            if len(self.strings) > enum_memory:
                self.strings = None

    def schema(self, enums: Enums = DEFAULT_ENUMS) -> dict[str, Any]:
        """The JSON Schema of everything seen here (``{}``, anything, when nothing was)."""
        kinds = [kind for kind in _ORDER if kind in self.types]
        if "integer" in kinds and "number" in kinds:
            kinds.remove("integer")  # 1 and 1.5 were both seen: a number
        if not kinds:
            return {}
        result: dict[str, Any] = {"type": kinds[0] if len(kinds) == 1 else kinds}
        if "object" in kinds:
            result["properties"] = {name: child.schema(enums) for name, child in sorted(self.properties.items())}
            required = sorted(name for name, child in self.properties.items() if child.seen == self.objects)
            if required:
                result["required"] = required
        if "array" in kinds and self.items is not None and self.items.seen:
            result["items"] = self.items.schema(enums)
        if kinds == ["string"] or kinds == ["string", "null"]:
            values = self.enum(enums)
            if values is not None:
                result["enum"] = values + ([None] if "null" in kinds else [])
        return result

    def enum(self, enums: Enums) -> list[str] | None:
        strings = self.strings
        if not strings or enums.limit <= 0 or len(strings) > enums.limit:
            return None
        if sum(strings.values()) < enums.repeat * len(strings) or not enums.not_values.isdisjoint(strings):
            return None
        return sorted(strings)
