"""``wsproxy spec``: AsyncAPI 3 documents read, inferred from recordings and written out.

The pure parts live in ``core`` (``spec_infer``, ``spec_contract``, ``spec_diff``, ``json_schema``);
this module reads recordings (DuckDB files and folders, JSONL, HAR) and documents (YAML or JSON), and
writes documents as YAML, JSON or the Markdown catalogue.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from wsproxy.core.errors import first_line
from wsproxy.core.json_schema import follow
from wsproxy.core.schema_infer import Enums
from wsproxy.core.spec_contract import Catalogue, Contract, SpecError, read_catalogue
from wsproxy.core.spec_infer import Inference
from wsproxy.store.read import observations
from wsproxy.store.recording import open_recording

SpecFormat = str  # yaml, json or markdown
SPEC_FORMATS = ("yaml", "json", "markdown")


def infer(paths: list[Path], enums: Enums, progress: Callable[[str], None] | None = None) -> Inference:
    """Every session of each recording into one inference: DuckDB files and folders streamed (a day's
    capture need not fit in memory), JSONL and HAR read whole."""
    from wsproxy.replay.source import load_recording, source_kind
    inference = Inference(enums)
    for path in paths:
        if progress is not None:
            progress(f"reading {path.name}…")
        if not (path.exists() and source_kind(path) == "duckdb"):
            inference.add(load_recording(path))
            continue
        con = open_recording(path)
        try:
            for (session_id,) in con.execute("SELECT session_id FROM sessions ORDER BY session_id").fetchall():
                _stream(con, session_id, inference)
                if progress is not None:
                    progress(f"reading {path.name}: session {session_id}, {inference.texts:,} messages")
        finally:
            con.close()
    return inference


def _stream(con: Any, session_id: int, inference: Inference) -> None:
    for conn_id, path, query in con.execute(
            "SELECT conn_id, path, query FROM connections WHERE session_id = ? AND coalesce(status, 101) = 101 "
            "ORDER BY opened_at, conn_id", [session_id]).fetchall():
        inference.connection((session_id, conn_id), path or "/", query or "")
    for _rank, conn_id, _ts, _seq, sender, kind, text, _data in observations(con, session_id):
        if kind == "text" and text is not None:
            inference.message((session_id, conn_id), sender, text)


def load_document(path: Path) -> Any:
    """An AsyncAPI document from a YAML or JSON file (JSON is YAML too)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}; give an AsyncAPI 3 document (YAML or JSON)") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path} is not a text file; give an AsyncAPI 3 document (YAML or JSON)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path} is neither YAML nor JSON: {first_line(exc)}") from None


def load_catalogue(path: Path) -> tuple[Any, Catalogue]:
    document = load_document(path)
    return document, read_catalogue(document, str(path))


def load_contract(path: Path) -> Contract:
    """``--spec FILE``: the document compiled for checking."""
    return Contract(load_document(path), str(path))


class _Plain(yaml.SafeDumper):
    """YAML without anchors and aliases: a document people read and diff."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(document: dict[str, Any], format: SpecFormat) -> str:
    if format == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if format == "markdown":
        return markdown(document)
    return yaml.dump(document, Dumper=_Plain, sort_keys=False, allow_unicode=True, width=120)


# --- the Markdown catalogue ---

def markdown(document: dict[str, Any]) -> str:
    """A table per request (its reply and errors beside it) and per event: field, type, required,
    example — the catalogue protocol.md points to, from what the server really speaks."""
    catalogue = read_catalogue(document)
    info = document.get("info") or {}
    lines = [f"# {info.get('title', 'Protocol')} {info.get('version', '')}".rstrip(), ""]
    if info.get("description"):
        lines += [str(info["description"]), ""]
    for path, channel in (document.get("channels") or {}).items():
        query = (((channel.get("bindings") or {}).get("ws") or {}).get("query") or {})
        params = ", ".join(f"`{name}`" + (" (required)" if name in (query.get("required") or []) else "")
                           for name in (query.get("properties") or {}))
        lines.append(f"Channel `{channel.get('address', path)}`" + (f", query parameters {params}" if params else "") + ".")
    lines += ["", "## Requests", ""]
    examples = _examples(document)
    for payload_type in sorted(catalogue.requests):
        request = catalogue.requests[payload_type]
        lines += [f"### `{payload_type}`", "", f"Request ({request.name}):", ""]
        lines += _table(document, request.schema, examples.get(request.name))
        for reply in catalogue.replies.get(payload_type, []):
            lines += ["", f"Reply ({reply.name}):", ""]
            lines += _table(document, reply.schema, examples.get(reply.name))
        lines.append("")
    for title, events in (("Server events", catalogue.server_events), ("Client events", catalogue.client_events)):
        if not events:
            continue
        lines += [f"## {title}", ""]
        for event_type in sorted(events):
            event = events[event_type]
            lines += [f"### `{event_type}`", "", f"{event.name}:", ""]
            lines += _table(document, event.schema, examples.get(event.name))
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _examples(document: dict[str, Any]) -> dict[str, Any]:
    result = {}
    for key, message in ((document.get("components") or {}).get("messages") or {}).items():
        listed = message.get("examples") if isinstance(message, dict) else None
        if listed and isinstance(listed[0], dict) and "payload" in listed[0]:
            result[message.get("name") or key] = listed[0]["payload"]
    return result


def _table(document: Any, schema: Any, example: Any) -> list[str]:
    rows = ["| field | type | required | example |", "| --- | --- | --- | --- |"]
    for field, kind, required, value in _fields(document, schema, example, "", True):
        rows.append(f"| `{field}` | {kind} | {'yes' if required else 'no'} | {value} |")
    return rows


def _fields(document: Any, schema: Any, example: Any, prefix: str, required: bool,
            depth: int = 0) -> Iterator[tuple[str, str, bool, str]]:
    schema = follow(document, schema)
    if not isinstance(schema, dict) or depth > 8:
        return
    properties = schema.get("properties") or {}
    needed = set(schema.get("required") or [])
    for name, sub in properties.items():
        sub = follow(document, sub)
        field = f"{prefix}{name}"
        value = example.get(name) if isinstance(example, dict) else None
        yield field, _kind(sub), name in needed and required, _cell(value)
        if isinstance(sub, dict) and sub.get("properties"):
            yield from _fields(document, sub, value, f"{field}.", name in needed and required, depth + 1)
        items = sub.get("items") if isinstance(sub, dict) else None
        if isinstance(items, dict):
            first = value[0] if isinstance(value, list) and value else None
            yield from _fields(document, items, first, f"{field}[].", False, depth + 1)


def _kind(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "any"
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    kinds = schema.get("type")
    text = " \\| ".join(kinds) if isinstance(kinds, list) else str(kinds or "any")
    if isinstance(schema.get("enum"), list):
        text += ": " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    return text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > 40:
        text = text[:37] + "…"
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"
