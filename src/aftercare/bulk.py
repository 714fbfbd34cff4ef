"""Bulk writes for imports and plans: tens of thousands of rows per second inside the caller's transaction.

`insert_rows` converts each value with its column type's own bind processor (what an ORM or Core insert
would send), memoised because bulk rows repeat the same timestamps, enums and JSON documents, then hands
all rows to the driver at once: COPY (text format) on PostgreSQL, one `executemany` on SQLite, a Core
executemany elsewhere. `allocate_ids` hands out primary keys up front, so related rows (patients, then
their procedures) are written the same way, without a RETURNING round trip.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import JSON, Table, func, insert, inspect, select, text
from sqlalchemy.engine import Connection, Dialect
from sqlmodel import Session

_Processor = Callable[[Any], Any] | None
_COPY_LINES = 2000  # rows per COPY write
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def table_of(model: type[Any] | Table) -> Table:
    """The Table of a SQLModel class (or the Table itself)."""
    return model if isinstance(model, Table) else cast(Table, inspect(model).local_table)


def _memoised(values: list[Any], convert: Callable[[Any], Any]) -> list[Any]:
    """`convert` applied to every non-None value; each distinct value is converted once (bulk rows repeat
    the same timestamps, enums and JSON documents), and the mapping back runs at C speed."""
    try:
        keys = values
        first = dict.fromkeys(values)
        for value in first:
            first[value] = value
    except TypeError:  # unhashable: JSON documents, keyed on their repr (same repr, same JSON)
        keys = list(map(repr, values))
        first = dict(zip(keys, values, strict=True))
    converted = {key: None if value is None else convert(value) for key, value in first.items()}
    return list(map(converted.__getitem__, keys))


def _columns(table: Table, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    columns = list(rows[0])
    unknown = [name for name in columns if name not in table.c]
    if unknown:
        raise KeyError(f"{table.name} has no column(s) {', '.join(unknown)}")
    return columns


def insert_rows(session: Session, model: type[Any] | Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """INSERT every row (all rows carry the same keys) in the session's transaction. Returns the row count."""
    if not rows:
        return 0
    table = table_of(model)
    columns = _columns(table, rows)
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        _copy(connection, table, columns, rows)
    elif dialect.name == "sqlite":
        _executemany(connection, table, columns, rows)
    else:
        connection.execute(insert(table), list(rows))
    return len(rows)


def _executemany(connection: Connection, table: Table, columns: list[str], rows: Sequence[Mapping[str, Any]]) -> None:
    dialect = connection.dialect
    by_column = []
    for name in columns:
        processor: _Processor = table.c[name].type._cached_bind_processor(dialect)
        values = list(map(itemgetter(name), rows))
        by_column.append(values if processor is None else _memoised(values, processor))
    names = ", ".join(f'"{name}"' for name in columns)
    cursor: Any = cast(Any, connection.connection.dbapi_connection).cursor()
    try:
        cursor.executemany(
            f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" for _ in columns)})',
            list(zip(*by_column, strict=True)),
        )
    finally:
        cursor.close()


def _copy_text(value: Any) -> str:
    """A driver value as a field of PostgreSQL's COPY text format."""
    if value is None:
        return r"\N"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


def _copy_column(values: list[Any], column: Any, dialect: Dialect) -> list[str]:
    if isinstance(column.type, JSON):
        texts = _memoised(values, lambda v: json.dumps(v).translate(_COPY_ESCAPES))
    else:
        processor: _Processor = column.type._cached_bind_processor(dialect)
        texts = _memoised(values, _copy_text if processor is None else lambda v: _copy_text(processor(v)))
    return [r"\N" if t is None else t for t in texts]


def _copy(connection: Connection, table: Table, columns: list[str], rows: Sequence[Mapping[str, Any]]) -> None:
    fields = [_copy_column(list(map(itemgetter(name), rows)), table.c[name], connection.dialect) for name in columns]
    lines = ["\t".join(parts) for parts in zip(*fields, strict=True)]
    names = ", ".join(f'"{name}"' for name in columns)
    raw: Any = connection.connection.dbapi_connection
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for start in range(0, len(lines), _COPY_LINES):
            copy.write("\n".join(lines[start : start + _COPY_LINES]) + "\n")


def allocate_ids(session: Session, model: type[Any] | Table, count: int) -> list[int]:
    """`count` new primary keys of the table, reserved for this transaction.

    PostgreSQL: from the column's sequence. SQLite: above the current maximum, after taking the write
    lock (a no-op UPDATE), so no other connection can insert until this transaction ends.
    """
    if count <= 0:
        return []
    table = table_of(model)
    connection = session.connection()
    pk = table.primary_key.columns.values()[0]
    if connection.dialect.name == "postgresql":
        query = text("SELECT nextval(pg_get_serial_sequence(:table, :column)) FROM generate_series(1, :n)")
        return list(connection.execute(query, {"table": table.name, "column": pk.name, "n": count}).scalars())
    if connection.dialect.name == "sqlite":
        connection.execute(text(f'UPDATE "{table.name}" SET "{pk.name}" = "{pk.name}" WHERE 0'))
        top = connection.execute(select(func.max(pk))).scalar() or 0
        return list(range(top + 1, top + 1 + count))
    raise NotImplementedError(f"allocate_ids is not implemented for {connection.dialect.name}")
