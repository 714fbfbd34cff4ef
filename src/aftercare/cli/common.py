"""What the command groups share: one error format (`error: <field>: <problem>` on stderr, exit 2, no
traceback), the protocol registry, and the option names fields are reported under."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from aftercare.errors import ConflictError, InputError, NotFoundError
from aftercare.protocols import ProtocolError, ProtocolRegistry
from aftercare.settings import Settings

USAGE_ERROR = 2
ACTOR = "cli"


def fail(field: str, problem: str, code: int = USAGE_ERROR) -> NoReturn:
    typer.echo(f"error: {field}: {problem}", err=True)
    raise typer.Exit(code)


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "input"


@contextmanager
def errors(options: Mapping[str, str] | None = None, *, conflict: str = "conflict") -> Iterator[None]:
    """Turn service errors into `error: <option>: <problem>` and exit 2 (nothing has been stored).

    `options` maps service field names (e.g. patient.phone) to the option the user typed (--phone);
    `conflict` names what a ConflictError is about.
    """
    names = options or {}
    try:
        yield
    except InputError as exc:
        fail(names.get(exc.field, exc.field), exc.message)
    except ConflictError as exc:
        fail(conflict, str(exc))
    except NotFoundError as exc:
        fail("id", str(exc))
    except ValidationError as exc:
        for error in exc.errors()[:-1]:
            typer.echo(f"error: {names.get(_loc(error['loc']), _loc(error['loc']))}: {error['msg']}", err=True)
        last = exc.errors()[-1]
        fail(names.get(_loc(last["loc"]), _loc(last["loc"])), last["msg"])
    except ProtocolError as exc:
        fail("protocol", str(exc))
    except IntegrityError as exc:  # another writer stored the same thing in the meantime
        problem = str(exc.orig or exc).splitlines()[0]
        fail(conflict, f"conflicts with data stored meanwhile ({problem}); nothing was stored, run it again")
    except (OperationalError, ProgrammingError) as exc:
        problem = str(exc.orig or exc).splitlines()[0]
        fail("database", f"{problem} (is it reachable, and migrated with `aftercare db upgrade`?)")


def registry(settings: Settings) -> ProtocolRegistry:
    with errors():
        return ProtocolRegistry.from_dir(settings.config_dir / "protocols")
