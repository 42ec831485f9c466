"""The docs stay true: every rule is documented with its severity, the profile example loads,
every command has help with examples."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wsproxy.cli import app
from wsproxy.core.profile import RULES, profile_from_dict

DOCS = Path(__file__).parent.parent / "docs"


def test_every_rule_is_documented_with_its_default_severity() -> None:
    text = (DOCS / "checks.md").read_text()
    headings = re.findall(r"^### (.+)$", text, re.M)
    documented = {}
    for heading in headings:
        codes = re.findall(r"`([a-z-]+)`", heading)
        severity = heading.rsplit("—", 1)[-1].strip()
        documented.update(dict.fromkeys(codes, severity))
    assert documented == {rule.code: rule.severity for rule in RULES}


def test_the_complete_profile_example_loads_and_uses_every_key() -> None:
    import tomllib
    text = (DOCS / "checks.md").read_text()
    example = re.search(r"## Protocol profiles.*?```toml\n(.*?)```", text, re.S).group(1)
    data = tomllib.loads(example)
    profile = profile_from_dict(data)
    assert profile.name == "chat-staging" and profile.response_timeout == 5.0 and profile.request_id_memory == 50_000
    assert set(data) == {"name", "response_timeout", "request_id_memory", "severities", "events", "payload_types",
                         "event_types", "timestamps", "rerun"}
    assert profile.rerun_rebind == ("payload.reactionId",) and profile.rerun_ignore == ("payload.serverTime",)


@pytest.mark.parametrize("command", ["record", "check", "demo", "chat-server", "chat-client"])
def test_every_command_has_help_with_examples(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Examples" in result.output and f"wsproxy {command}" in result.output


def test_the_replay_docs_show_the_example_test_exactly() -> None:
    example = (DOCS / "examples" / "test_chat_client.py").read_text()
    assert "```python\n" + example + "```" in (DOCS / "replay.md").read_text()


@pytest.mark.parametrize("command", ["replay", "export", "rerun", "diff", "ui"])
def test_new_commands_have_help_with_examples(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Examples" in result.output and f"wsproxy {command}" in result.output


def cookbook() -> list[str]:
    text = (DOCS / "sql.md").read_text().split("## Cookbook", 1)[1]
    return re.findall(r"```sql\n(.*?)```", text, re.S)


def test_the_cookbook_has_at_least_ten_queries() -> None:
    assert len(cookbook()) >= 10


@pytest.mark.parametrize("index", range(13))
def test_every_cookbook_query_runs_on_a_real_recording(index: int) -> None:
    from wsproxy.store.query import run_query
    queries = cookbook()
    if index >= len(queries):
        pytest.skip("fewer queries")
    recording = Path(__file__).parent.parent / "fixtures" / "schema-v2-demo-faults.duckdb"
    result = run_query(recording, queries[index])
    assert result.columns
    expectations = {5: 1, 7: 3}  # the fixture has one event-id gap and three kinds of findings
    if index in expectations:
        assert len(result.rows) == expectations[index]


def test_sql_docs_list_every_column_of_every_table_and_view() -> None:
    from wsproxy.store.query import run_query
    text = (DOCS / "sql.md").read_text()
    recording = Path(__file__).parent.parent / "fixtures" / "schema-v2-demo-faults.duckdb"
    for name in ("sessions", "connections", "frames", "violations", "messages", "exchanges", "events"):
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
        for column in run_query(recording, f"SELECT * FROM {name} LIMIT 0").columns:
            assert column in row, (name, column)
    # and what a recording of the current schema has (written by this wsproxy, with --inject's columns)
    import duckdb

    from wsproxy.store.files import open_for_writing
    current = Path(tempfile.mkdtemp()) / "current.duckdb"  # a new, empty recording
    open_for_writing(current).close()
    with duckdb.connect(str(current), read_only=True) as con:
        tables = {"sessions", "connections", "frames", "violations", "injections", "messages", "exchanges", "events"}
        for name in tables:
            row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
            for column in [d[0] for d in con.execute(f"SELECT * FROM {name} LIMIT 0").description]:
                assert column in row, (name, column)


def _commands() -> list[str]:
    import typer.main
    group = typer.main.get_command(app)
    return sorted(group.commands)  # type: ignore[attr-defined]


def _flat(text: str) -> str:
    """Words only: the box drawing, the wrapping and the indentation of a rendered help gone."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.mark.parametrize("command", _commands())
def test_every_help_text_renders_word_for_word(command: str) -> None:
    """Each option's help and the command's docstring appear in --help exactly as written: no markup
    eats "[[inject]]" or "[rerun]", no docstring indentation leaks into the text."""
    import inspect as pyinspect

    import typer.main
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    shown = _flat(result.output)
    for parameter in click_command.params:
        help_text = getattr(parameter, "help", None)
        if help_text and not getattr(parameter, "hidden", False):  # a hidden option is not in --help at all
            assert _flat(help_text.replace("\\[", "[")) in shown, (parameter.name, help_text)
    for paragraph in pyinspect.cleandoc(click_command.help or "").split("\n\n"):
        assert _flat(paragraph) in shown, paragraph
    written = {line.strip() for line in pyinspect.cleandoc(click_command.help or "").splitlines()}
    for line in result.output.split("Usage:", 1)[1].split("╭", 1)[0].splitlines():
        if re.search(r"\S {3,}\S", line.strip()):  # "record every     frame": the docstring's indentation leaked
            assert line.strip() in written, line
