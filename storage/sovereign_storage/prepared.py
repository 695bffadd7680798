"""Statements of the hot paths, built by Peewee once and then only executed.

Building a statement (Peewee walking its query tree into SQL) cost several times what SQLite spends
running it, on paths taken for every run and every call. A statement here is built the first time a
shape is needed, with named placeholders for its values, and kept: later uses convert their values
as the model's fields would and execute the kept SQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import peewee


@dataclass(frozen=True)
class _Placeholder:
    name: str
    # The field whose column the value goes to: its `db_value` converts the value, as Peewee would.
    convert: Callable[[Any], Any] | None


def value(name: str, field: peewee.Field[Any] | None = None) -> Any:
    """A named value of a statement; with `field`, converted by it."""
    return peewee.Value(_Placeholder(name, field.db_value if field is not None else None), converter=False)


@dataclass(frozen=True)
class Statement:
    sql: str
    # A placeholder for each named value; anything else is a constant of the statement (a LIMIT).
    parameters_: tuple[Any, ...]
    # For statements that return rows: the fields of their columns, in order.
    columns: tuple[peewee.Field[Any], ...]

    def parameters(self, values: Mapping[str, Any]) -> list[Any]:
        return [_bind(parameter, values) for parameter in self.parameters_]


def _bind(parameter: Any, values: Mapping[str, Any]) -> Any:
    if not isinstance(parameter, _Placeholder):
        return parameter
    value = values[parameter.name]
    return parameter.convert(value) if parameter.convert is not None else value


# Kept per kind of database (its SQL dialect), not per database object: the id of an object gone
# may be given to a database of another kind, which must not be handed the first one's SQL.
_STATEMENTS: dict[tuple[type[peewee.Database], Any], Statement] = {}
_GUARD = threading.Lock()


def statement(
    db: peewee.Database, key: Any, build: Callable[[], peewee.Query], columns: Sequence[peewee.Field[Any]] = ()
) -> Statement:
    """The statement for `key` on `db`, built by `build` the first time (in `db`'s dialect, whichever
    database the models are bound to meanwhile)."""
    cache_key = (type(db), key)
    found = _STATEMENTS.get(cache_key)
    if found is None:
        context: Any = db.get_sql_context()  # untyped in Peewee's stubs
        sql, parameters = context.parse(build())
        found = Statement(sql, tuple(parameters), tuple(columns))
        with _GUARD:
            _STATEMENTS[cache_key] = found
    return found


def rows(db: peewee.Database, prepared: Statement, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of a statement, each as its columns' values by column name, converted by their fields."""
    execute: Callable[..., Any] = db.execute_sql  # untyped in Peewee's stubs
    converters: list[tuple[str, Callable[[Any], Any]]] = [
        (field.column_name, field.python_value) for field in prepared.columns
    ]
    return [
        {name: convert(item) for (name, convert), item in zip(converters, row, strict=True)}
        for row in execute(prepared.sql, prepared.parameters(values)).fetchall()
    ]


def execute(db: peewee.Database, prepared: Statement, values: Mapping[str, Any]) -> int:
    """Runs a statement that returns no rows; the number of rows it changed."""
    run: Callable[..., Any] = db.execute_sql  # untyped in Peewee's stubs
    count: int = run(prepared.sql, prepared.parameters(values)).rowcount
    return count
