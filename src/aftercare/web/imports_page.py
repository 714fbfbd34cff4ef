"""The CSV import page: upload, validate every row, store all or nothing, and show the report."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from aftercare.imports import COLUMNS, REQUIRED_COLUMNS, import_csv, plan_imported
from aftercare.web.csrf import check_csrf
from aftercare.web.deps import FormDep, PageWriter, RegistryDep, SessionDep, SettingsDep, actor, clinic_of
from aftercare.web.templating import render

router = APIRouter(include_in_schema=False)
MAX_BYTES = 20 * 1024 * 1024


@router.get("/import")
def import_page(request: Request, staff: PageWriter) -> Response:
    return _render(request, staff=staff, report=None, problem=None, filename=None)


def _render(request: Request, status_code: int = 200, **context: object) -> Response:
    return render(request, "import.html", status_code=status_code, columns=COLUMNS, required=REQUIRED_COLUMNS,
                  **context)


def _read_upload(upload: object) -> tuple[str | None, str | None]:
    """(text, None) or (None, what is wrong with the file)."""
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None, "Choose a CSV file to import."
    raw = upload.file.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        return None, f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB; split it and import the parts."
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        return None, f"The file is not UTF-8 text (byte {exc.start}); save it as CSV UTF-8 and try again."


@router.post("/import", dependencies=[Depends(check_csrf)])
def import_upload(
    request: Request,
    session: SessionDep,
    staff: PageWriter,
    registry: RegistryDep,
    settings: SettingsDep,
    form: FormDep,
) -> Response:
    upload = form.get("file")
    filename = upload.filename if isinstance(upload, UploadFile) else None
    text, problem = _read_upload(upload)
    if text is None:
        return _render(request, 422, staff=staff, report=None, problem=problem, filename=filename)
    report = import_csv(
        session, clinic=clinic_of(session, staff), text=text, registry=registry, settings=settings,
        actor=actor(staff),
    )
    if report.rejected:
        session.rollback()
        return _render(request, 422, staff=staff, report=report, problem=None, filename=filename)
    session.commit()
    plan_imported(report.procedure_ids_to_plan, settings)
    return _render(request, staff=staff, report=report, problem=None, filename=filename)
