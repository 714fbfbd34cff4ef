"""Bulk writes for imports and plans: tens of thousands of rows per second inside the caller's transaction.

`insert_rows` converts each value with its column type's own bind processor (exactly what an ORM or Core
insert would store), then hands the rows to the driver in one go: COPY on PostgreSQL, one `executemany`
on SQLite, a Core executemany elsewhere. `allocate_ids` hands out primary keys up front so related rows
(patients, then their procedures) can be written the same way without a RETURNING round trip per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, func, insert, inspect, select, text
from sqlalchemy.engine import Connection, Dialect
from sqlmodel import Session

_Processor = Callable[[Any], Any] | None


def table_of(model: type[Any] | Table) -> Table:
    """The Table of a SQLModel class (or the Table itself)."""
    return model if isinstance(model, Table) else cast(Table, inspect(model).local_table)


def _converter(processor: _Processor) -> Callable[[Any], Any]:
    """The column's bind processor, memoised for the repeated values a bulk write is full of."""
    if processor is None:
        return lambda value: value
    memo: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        try:
            return memo[value]
        except KeyError:
            memo[value] = converted = processor(value)
            return converted
        except TypeError:  # unhashable (a JSON dict): no memo
            return processor(value)

    return convert


def _tuples(table: Table, columns: list[str], rows: Sequence[Mapping[str, Any]], dialect: Dialect) -> Iterator[tuple]:
    converters = [_converter(table.c[name].type._cached_bind_processor(dialect)) for name in columns]
    pairs = list(zip(columns, converters, strict=True))
    for row in rows:
        yield tuple(None if (value := row[name]) is None else convert(value) for name, convert in pairs)


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
        _copy(connection, table, columns, _tuples(table, columns, rows, dialect))
    elif dialect.name == "sqlite":
        placeholders = ", ".join("?" for _ in columns)
        names = ", ".join(f'"{name}"' for name in columns)
        cursor: Any = cast(Any, connection.connection.dbapi_connection).cursor()
        try:
            cursor.executemany(
                f'INSERT INTO "{table.name}" ({names}) VALUES ({placeholders})',
                _tuples(table, columns, rows, dialect),
            )
        finally:
            cursor.close()
    else:
        connection.execute(insert(table), list(rows))
    return len(rows)


def _copy(connection: Connection, table: Table, columns: list[str], rows: Iterator[tuple]) -> None:
    names = ", ".join(f'"{name}"' for name in columns)
    raw: Any = connection.connection.dbapi_connection
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


def allocate_ids(session: Session, model: type[Any] | Table, count: int) -> list[int]:
    """`count` new primary keys of `table`, reserved for this transaction.

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
