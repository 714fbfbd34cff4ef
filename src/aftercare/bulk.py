"""Bulk writes for imports and plans: tens of thousands of rows per second inside the caller's transaction.

`insert_rows` converts each value with its column type's own bind processor (what an ORM or Core insert
would send), once per distinct value because bulk rows repeat the same timestamps, enums and JSON
documents, and streams the rows to the driver in slices: COPY (text format) on PostgreSQL, through a
writer thread so the rows are built while the server stores the previous ones; `executemany` on SQLite;
Core executemany elsewhere. `allocate_ids` hands out primary keys up front, so related rows (patients,
then their procedures) are written the same way, without a RETURNING round trip.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from itertools import islice
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import JSON, Table, func, insert, inspect, select, text
from sqlalchemy.engine import Connection, Dialect
from sqlmodel import Session

SLICE = 2000  # rows converted and sent at a time
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_Row = Mapping[str, Any]


def table_of(model: type[Any] | Table) -> Table:
    """The Table of a SQLModel class (or the Table itself)."""
    return model if isinstance(model, Table) else cast(Table, inspect(model).local_table)


def _copy_text(value: Any) -> str:
    """A driver value as a field of PostgreSQL's COPY text format."""
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


class _Column:
    """One column's values, converted once per distinct value (memo kept across slices)."""

    def __init__(self, table: Table, name: str, dialect: Dialect, *, copy_text: bool) -> None:
        column = table.c[name]
        self.get = itemgetter(name)
        processor: Callable[[Any], Any] | None = column.type._cached_bind_processor(dialect)
        convert: Callable[[Any], Any] | None = processor
        if copy_text and isinstance(column.type, JSON):
            convert = lambda value: json.dumps(value).translate(_COPY_ESCAPES)  # noqa: E731
        elif copy_text:
            convert = _copy_text if processor is None else lambda value: _copy_text(processor(value))
        self.convert = convert
        self.memo: dict[Any, Any] = {None: r"\N" if copy_text else None}

    def values(self, rows: Sequence[_Row]) -> list[Any]:
        raw = list(map(self.get, rows))
        if self.convert is None:
            return raw
        memo = self.memo
        try:
            keys: list[Any] = raw
            for value in dict.fromkeys(raw):
                if value not in memo:
                    memo[value] = self.convert(value)
        except TypeError:  # unhashable: JSON documents, keyed on their repr (same repr, same JSON)
            keys = [value if value is None else (type(value), repr(value)) for value in raw]
            for key, value in zip(keys, raw, strict=True):
                if key not in memo:
                    memo[key] = self.convert(value)
        return list(map(memo.__getitem__, keys))


def _slices(first: list[_Row], rest: Iterator[_Row]) -> Iterator[list[_Row]]:
    batch = first
    while batch:
        yield batch
        batch = list(islice(rest, SLICE))


def insert_rows(session: Session, model: type[Any] | Table, rows: Iterable[_Row]) -> int:
    """INSERT every row (all rows carry the same keys) in the session's transaction. Returns the row count.

    `rows` may be a generator: it is consumed a slice at a time. While it runs on PostgreSQL a COPY is
    open on the session's connection, so it must not query the database.
    """
    iterator = iter(rows)
    first = list(islice(iterator, SLICE))
    if not first:
        return 0
    table = table_of(model)
    columns = list(first[0])
    unknown = [name for name in columns if name not in table.c]
    if unknown:
        raise KeyError(f"{table.name} has no column(s) {', '.join(unknown)}")
    connection = session.connection()
    slices = _slices(first, iterator)
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        return _copy(connection, table, columns, slices)
    if connection.dialect.name == "sqlite":
        return _executemany(connection, table, columns, slices)
    count = 0
    for batch in slices:
        connection.execute(insert(table), batch)
        count += len(batch)
    return count


def _executemany(connection: Connection, table: Table, columns: list[str], slices: Iterator[list[_Row]]) -> int:
    converters = [_Column(table, name, connection.dialect, copy_text=False) for name in columns]
    names = ", ".join(f'"{name}"' for name in columns)
    statement = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" for _ in columns)})'
    cursor: Any = cast(Any, connection.connection.dbapi_connection).cursor()
    count = 0
    try:
        for batch in slices:
            cursor.executemany(statement, list(zip(*(c.values(batch) for c in converters), strict=True)))
            count += len(batch)
    finally:
        cursor.close()
    return count


def _copy(connection: Connection, table: Table, columns: list[str], slices: Iterator[list[_Row]]) -> int:
    from psycopg.copy import QueuedLibpqWriter

    converters = [_Column(table, name, connection.dialect, copy_text=True) for name in columns]
    names = ", ".join(f'"{name}"' for name in columns)
    raw: Any = connection.connection.dbapi_connection
    count = 0
    with raw.cursor() as cursor:
        with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN', writer=QueuedLibpqWriter(cursor)) as copy:
            for batch in slices:
                fields = [c.values(batch) for c in converters]
                copy.write("\n".join(map("\t".join, zip(*fields, strict=True))) + "\n")
                count += len(batch)
    return count


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
