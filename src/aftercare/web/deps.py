"""Typed FastAPI dependencies: database session, settings, protocol registry and the signed-in staff user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session
from starlette.datastructures import FormData

from aftercare.models import Clinic, Role, StaffUser
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings
from aftercare.web.auth import AuthFailed, staff_for_session, staff_for_token

WRITE_ROLES = (Role.coordinator, Role.admin)


class LoginRequired(Exception):
    """A page needs a signed-in staff user; the app redirects to /login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


async def get_form(request: Request) -> FormData:
    """The posted form (parsed once per request; routes stay sync so DB work runs in the thread pool)."""
    return await request.form()


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_registry(request: Request) -> ProtocolRegistry:
    registry: ProtocolRegistry = request.app.state.registry
    return registry


FormDep = Annotated[FormData, Depends(get_form)]
IdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="a record id")]
SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RegistryDep = Annotated[ProtocolRegistry, Depends(get_registry)]

_bearer = HTTPBearer(auto_error=False, description="an API token: `Authorization: Bearer ac_...`")


def api_staff(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> StaffUser:
    """The staff user behind the bearer token, or 401 with the reason."""
    try:
        if credentials is None:
            raise AuthFailed("missing bearer token: send `Authorization: Bearer ac_...`")
        return staff_for_token(session, credentials.credentials)
    except AuthFailed as exc:
        raise HTTPException(401, detail=exc.message, headers={"WWW-Authenticate": "Bearer"}) from None


def _writer(staff: StaffUser) -> StaffUser:
    if staff.role not in WRITE_ROLES:
        raise HTTPException(403, detail=f"a {staff.role.value} cannot change procedures; ask a coordinator")
    return staff


def api_writer(staff: Annotated[StaffUser, Depends(api_staff)]) -> StaffUser:
    return _writer(staff)


def page_staff(request: Request, session: SessionDep) -> StaffUser:
    """The staff user of the login session, or a redirect to /login."""
    staff = staff_for_session(session, request.session.get("staff_id"))
    if staff is None:
        request.session.pop("staff_id", None)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target if request.method == "GET" else "/")
    return staff


def page_writer(staff: Annotated[StaffUser, Depends(page_staff)]) -> StaffUser:
    return _writer(staff)


CurrentStaff = Annotated[StaffUser, Depends(api_staff)]
CurrentWriter = Annotated[StaffUser, Depends(api_writer)]
PageStaff = Annotated[StaffUser, Depends(page_staff)]
PageWriter = Annotated[StaffUser, Depends(page_writer)]


def clinic_of(session: Session, staff: StaffUser) -> Clinic:
    clinic = session.get(Clinic, staff.clinic_id)
    assert clinic is not None  # foreign key
    return clinic


def actor(staff: StaffUser) -> str:
    return f"staff:{staff.id}"
