"""The layout's rules (docs/architecture.md), checked on the source itself: a pure core, no import
cycles, modules a reader can take in, and no finding code the rule table does not know."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from wsproxy.core.profile import RULES, RULES_BY_CODE

PACKAGE = Path(__file__).parent.parent / "src" / "wsproxy"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (both are dependencies)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from wsproxy.core import payloads`` imports the module wsproxy.core.payloads
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & set(MODULES)
            found.update(submodules or {node.module})
    return found


def test_the_core_imports_only_the_standard_library_msgspec_and_itself() -> None:
    allowed_outside = set(sys.stdlib_module_names) | {"msgspec", "__future__"}
    offenders = []
    for name, path in MODULES.items():
        if not name.startswith("wsproxy.core"):
            continue
        for imported in imports(path):
            top = imported.split(".")[0]
            if imported.startswith("wsproxy.core") or (top != "wsproxy" and top in allowed_outside):
                continue
            offenders.append(f"{name} imports {imported}")
    assert not offenders, "the core must stay pure (docs/architecture.md):\n" + "\n".join(offenders)


def test_the_core_holds_its_named_modules() -> None:
    # the pure pieces docs/architecture.md names; a move out of core/ should be a decision, not an accident
    for name in ("protocol", "payloads", "profile", "checker", "closing", "rows", "replay_plan", "replay_match",
                 "throttle", "recorded", "errors"):
        assert f"wsproxy.core.{name}" in MODULES


def test_there_is_no_import_cycle_in_the_package() -> None:
    graph = {name: {m for m in imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}
    # a package's __init__ may register its own submodules (the CLI does): an edge down, not a cycle
    for name in graph:
        graph[name] = {m for m in graph[name] if not (MODULES[name].stem == "__init__" and m.startswith(name + "."))}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target):], target] if target in path else [node, target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_is_short_enough_to_read(name: str) -> None:
    lines = MODULES[name].read_text().count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it where it has two reasons to change"


def emitted_codes() -> set[str]:
    """Every finding code the decoder, the checker and the --spec contract can emit: the string given
    to their finding builders (``_add(findings, CODE, ...)``, ``_finding(CODE, ...)``, ``finding(CODE,
    ...)``), and the values of a module's ``*_CODES`` tables of literals."""
    codes: set[str] = set()
    for module in ("protocol", "checker", "spec_contract"):
        tree = ast.parse((PACKAGE / "core" / f"{module}.py").read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id.endswith("_CODES") and isinstance(node.value, ast.Dict)):
                for value in node.value.values:
                    assert isinstance(value, ast.Constant) and isinstance(value.value, str)
                    codes.add(value.value)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            position = {"_add": 1, "_finding": 0, "finding": 0}.get(called)
            if position is None or len(node.args) <= position:
                continue
            argument = node.args[position]
            assert isinstance(argument, ast.Constant) and isinstance(argument.value, str), \
                f"{module}.py line {node.lineno}: a finding code must be a literal the rule table can be checked against"
            codes.add(argument.value)
    return codes


def test_every_finding_code_exists_in_the_rule_table() -> None:
    codes = emitted_codes()
    assert len(codes) >= 15, codes  # the scan itself works
    unknown = codes - set(RULES_BY_CODE)
    assert not unknown, f"codes the rule table does not know (a typo would turn the rule off): {unknown}"


def test_every_rule_in_the_table_is_emitted_somewhere() -> None:
    assert set(RULES_BY_CODE) - emitted_codes() == set(), "rules no code emits: dead entries in the table"
    assert len(RULES_BY_CODE) == len(RULES)  # no code twice
