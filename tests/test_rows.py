"""One column spec: every recorded row is a Struct whose fields are its table's columns, by name and
type, so adding a column cannot shift data into another one."""

from __future__ import annotations

import duckdb
import msgspec
import pytest

from wsproxy.core.rows import (
    ConnectionClosed,
    ConnectionOpened,
    FrameRow,
    InjectionRow,
    ViolationRow,
    columns,
    frame_row,
)
from wsproxy.store.batches import arrow_table
from wsproxy.store.schema import DDL

DUCKDB_TYPES = {"int32": {"INTEGER"}, "int64": {"BIGINT"}, "timestamp": {"TIMESTAMP WITH TIME ZONE"},
                "string": {"VARCHAR", "JSON"}, "binary": {"BLOB"}, "bool": {"BOOLEAN"}}


@pytest.fixture(scope="module")
def schema() -> dict[str, dict[str, str]]:
    con = duckdb.connect()
    con.execute(DDL)
    tables: dict[str, dict[str, str]] = {}
    for table, column, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns").fetchall():
        tables.setdefault(table, {})[column] = kind
    return tables


@pytest.mark.parametrize("row_type,table", [(FrameRow, "frame_store"), (ConnectionOpened, "connections"),
                                            (ConnectionClosed, "connections"), (ViolationRow, "violations"),
                                            (InjectionRow, "injections")])
def test_every_field_is_a_column_of_its_table_with_the_same_type(schema, row_type, table) -> None:
    spec = columns(row_type)
    assert [name for name, _ in spec] == list(row_type.__struct_fields__)
    for name, kind in spec:
        assert name in schema[table], f"{row_type.__name__}.{name} is no column of {table}"
        assert schema[table][name] in DUCKDB_TYPES[kind], (name, kind, schema[table][name])


def test_frame_store_has_no_column_the_row_does_not_fill(schema) -> None:
    assert set(schema["frame_store"]) == set(FrameRow.__struct_fields__)


def test_arrow_batches_are_built_by_field_name() -> None:
    row = frame_row(7, 3, 1_700_000_000_000_000, "client", "text", '{"a":1}', None)
    table = arrow_table([row], FrameRow)
    assert table.column_names == list(FrameRow.__struct_fields__)
    assert table.to_pylist()[0]["conn_id"] == 7 and table.to_pylist()[0]["seq"] == 3
    assert table.to_pylist()[0]["size"] == 7 and table.to_pylist()[0]["text"] == '{"a":1}'


def test_a_field_without_a_column_kind_is_refused() -> None:
    class Loose(msgspec.Struct):
        name: str
    with pytest.raises(TypeError, match="not a column type"):
        columns(Loose)
