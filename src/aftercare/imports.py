"""CSV import of procedures: every row is validated first; then all of them are stored in bulk, or none.

The file needs a header row. Columns (any order, names case-insensitive; `,` or `;` delimited, an Excel
`sep=;` first line is understood; UTF-8, a byte-order mark is fine; an empty cell means "not given"):

==================  ========  ==============================================================
column              required  meaning
==================  ========  ==============================================================
external_id         yes       the clinic's id of the procedure (re-importing it is a no-op)
mrn                           the clinic's patient id; patients match on it, else phone+last name
first_name          yes
last_name           yes
phone                         any common format, stored as E.164 (phone or email required)
email
language                      en or es (default AFTERCARE_DEFAULT_LANGUAGE)
timezone                      IANA zone, e.g. America/Toronto (default AFTERCARE_DEFAULT_TIMEZONE)
preferred_channel             sms or email (default: sms when there is a phone)
consent_sms                   yes/no, true/false, 1/0 (default no)
consent_email                 yes/no, true/false, 1/0 (default no)
protocol_id                   default msc-knee-injection
knee_side           yes       left, right or bilateral
performed_at        yes       ISO 8601 date or date-time; without an offset, the clinic's zone
physician_email               a physician of the clinic
baseline_nrs        yes       pain 0-10 before the procedure
baseline_koos_jr              KOOS JR interval score 0-100
==================  ========  ==============================================================

`import_csv` writes in the caller's transaction and never commits. The caller commits when the report
has no rejected rows, then starts the `procedure-aftercare` flow for `procedure_ids_to_plan`
(`plan_imported`).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import update
from sqlmodel import Session, col, select

from aftercare import bulk, orchestration
from aftercare.errors import InputError
from aftercare.models import (
    AuditEvent,
    Channel,
    Clinic,
    ConsentEvent,
    Language,
    Patient,
    Procedure,
    ProcedureStatus,
    ProtocolSnapshot,
    Role,
    StaffUser,
)
from aftercare.patients import check_timezone, choose_channel, normalise_phone
from aftercare.plans import ensure_snapshot
from aftercare.procedures import ProcedureIn, check_performed_at
from aftercare.protocols import Protocol, ProtocolError, ProtocolRegistry
from aftercare.protocols.loader import checksum
from aftercare.settings import Settings
from aftercare.timeutil import utcnow

REQUIRED_COLUMNS = ("external_id", "first_name", "last_name", "knee_side", "performed_at", "baseline_nrs")
PATIENT_COLUMNS = (
    "mrn", "first_name", "last_name", "phone", "email", "language", "timezone", "preferred_channel",
    "consent_sms", "consent_email",
)
PROCEDURE_COLUMNS = (
    "external_id", "protocol_id", "knee_side", "performed_at", "physician_email", "baseline_nrs", "baseline_koos_jr",
)
COLUMNS = (*PATIENT_COLUMNS, *PROCEDURE_COLUMNS)
_LOWERCASE = ("language", "preferred_channel", "knee_side", "protocol_id")
_TRUE, _FALSE = {"yes", "y", "true", "t", "1"}, {"no", "n", "false", "f", "0"}
_QUERY_CHUNK = 500  # ids per IN (...) clause: well under SQLite's bound-parameter limit
PLAN_BATCH = 1000  # procedures per procedure-aftercare flow run
SOURCE = "import"

T = TypeVar("T")


@dataclass(frozen=True)
class RowError:
    """One problem in the file: its line (the header is line 1), the column, and what is wrong."""

    line: int
    field: str
    message: str


@dataclass(frozen=True)
class AcceptedRow:
    line: int
    external_id: str
    procedure_id: int | None  # None for a new procedure in a dry run
    new: bool  # False: the same procedure is already stored (identical row, nothing written)


@dataclass
class ImportReport:
    accepted: list[AcceptedRow] = field(default_factory=list)
    rejected: list[RowError] = field(default_factory=list)
    procedure_ids_to_plan: list[int] = field(default_factory=list)
    rows_written: dict[str, int] = field(default_factory=dict)  # table -> rows inserted or updated
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.rejected

    @property
    def new(self) -> int:
        return sum(1 for a in self.accepted if a.new)


@dataclass
class _Row:
    """A row that passed every check, with its values resolved."""

    line: int
    data: ProcedureIn
    phone: str | None
    zone: str
    channel: Channel
    performed_at: datetime
    physician_id: int | None
    protocol: Protocol

    @property
    def patient_key(self) -> tuple[Any, ...]:
        """Which rows are the same patient: as `patients.find_patient` matches them."""
        if self.data.patient.mrn:
            return ("mrn", self.data.patient.mrn)
        if self.phone:
            return ("phone", self.phone, self.data.patient.last_name)
        return ("line", self.line)


def _chunks(items: Sequence[T], size: int = _QUERY_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- reading the file -------------------------------------------------------------------------------


def read_rows(text: str) -> tuple[list[tuple[int, dict[str, str]]], list[RowError]]:
    """(line, {column: cell}) for every non-blank data row, or the header's problems."""
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return [], [RowError(1, "header", "the file is empty; its first line must name the columns")]
    first_line = text.split("\n", 1)[0].rstrip("\r")
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    if first_line.lower() in ("sep=;", "sep=,"):  # Excel's delimiter hint line
        delimiter = first_line[-1]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    if first_line.lower().startswith("sep="):
        next(reader)
    header = [name.strip().lower() for name in next(reader, [])]
    problems = _header_problems(header, reader.line_num)
    if problems:
        return [], problems
    rows: list[tuple[int, dict[str, str]]] = []
    line = reader.line_num + 1
    for cells in reader:
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            problems.append(RowError(start, "row", f"{len(cells)} cells, but the header names {len(header)} columns"))
            continue
        rows.append((start, {name: cell.strip() for name, cell in zip(header, cells, strict=True) if cell.strip()}))
    return rows, problems


def _header_problems(header: list[str], line: int) -> list[RowError]:
    problems = []
    seen: set[str] = set()
    for name in header:
        if name not in COLUMNS:
            problems.append(RowError(line, name or "(blank)", f"unknown column (known: {', '.join(COLUMNS)})"))
        elif name in seen:
            problems.append(RowError(line, name, "column named twice"))
        seen.add(name)
    problems.extend(RowError(line, name, "required column is missing") for name in REQUIRED_COLUMNS if name not in seen)
    if "phone" not in seen and "email" not in seen:
        problems.append(RowError(line, "phone", "a phone or an email column is required"))
    return problems


def _parse_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected yes/no, true/false or 1/0, got {value!r}")


def _column(loc: tuple[int | str, ...]) -> str:
    """The CSV column of a ProcedureIn error location (patient fields are flat in the file)."""
    names = [str(part) for part in loc if part != "patient"]
    return names[0] if names else "row"


def _message(error: Any) -> str:
    if error["type"] == "string_pattern_mismatch" and error["loc"][-1] == "email":
        return f"{error['input']!r} is not an email address"
    if error["type"] == "missing":
        return "required"
    return str(error["msg"])


def _input_error_column(exc: InputError) -> str:
    return exc.field.removeprefix("patient.")


# --- validation -------------------------------------------------------------------------------------


@dataclass
class _Context:
    clinic: Clinic
    registry: ProtocolRegistry
    settings: Settings
    physicians: dict[str, StaffUser]
    now: datetime


def _validate_row(line: int, cells: dict[str, str], ctx: _Context, errors: list[RowError]) -> _Row | None:
    """The row resolved, or None with its problems appended to `errors` (all of them, not just the first)."""
    found: list[RowError] = []
    values: dict[str, Any] = {}
    for name, cell in cells.items():
        if name in ("consent_sms", "consent_email"):
            try:
                values[name] = _parse_bool(cell)
            except ValueError as exc:
                found.append(RowError(line, name, str(exc)))
        else:
            values[name] = cell.lower() if name in _LOWERCASE else cell
    patient = {name: values.pop(name) for name in PATIENT_COLUMNS if name in values}
    try:
        data = ProcedureIn.model_validate({**values, "patient": patient})
    except ValidationError as exc:
        found.extend(RowError(line, _column(e["loc"]), _message(e)) for e in exc.errors())
        errors.extend(found)
        return None
    phone: str | None = None
    zone = ctx.settings.default_timezone
    channel = Channel.sms
    performed_at = data.performed_at
    physician_id: int | None = None
    protocol: Protocol | None = None
    try:
        phone = normalise_phone(data.patient.phone, ctx.settings.default_phone_region) if data.patient.phone else None
    except InputError as exc:
        found.append(RowError(line, _input_error_column(exc), exc.message))
    try:
        zone = check_timezone(data.patient.timezone or ctx.settings.default_timezone)
    except InputError as exc:
        found.append(RowError(line, _input_error_column(exc), exc.message))
    if not data.patient.phone and not data.patient.email:
        found.append(RowError(line, "phone", "a phone number or an email address is required"))
    elif phone or not data.patient.phone:
        try:
            channel = choose_channel(data.patient.preferred_channel, phone_e164=phone, email=data.patient.email)
        except InputError as exc:
            found.append(RowError(line, _input_error_column(exc), exc.message))
    try:
        protocol = ctx.registry.get(data.protocol_id)
    except ProtocolError as exc:
        found.append(RowError(line, "protocol_id", str(exc)))
    try:
        performed_at = check_performed_at(data.performed_at, ctx.clinic, ctx.settings, ctx.now)
    except InputError as exc:
        found.append(RowError(line, exc.field, exc.message))
    if data.physician_email:
        staff = ctx.physicians.get(data.physician_email.lower())
        if staff is None or staff.role != Role.physician:
            found.append(RowError(line, "physician_email", f"no physician {data.physician_email!r} at this clinic"))
        else:
            physician_id = staff.id
    if found or protocol is None:
        errors.extend(found)
        return None
    return _Row(line, data, phone, zone, channel, performed_at, physician_id, protocol)


def _differences(row: _Row, stored: Procedure, patient_id: int | None, ctx: _Context) -> list[tuple[str, str]]:
    """(column, problem) for every way the row contradicts the stored procedure of the same external id."""
    if stored.status == ProcedureStatus.cancelled:
        return [("external_id", f"procedure {stored.external_id} was cancelled ({stored.cancel_reason})")]
    emails = {s.id: email for email, s in ctx.physicians.items()}
    pairs: dict[str, tuple[Any, Any]] = {
        "protocol_id": (stored.protocol_id, row.data.protocol_id),
        "knee_side": (stored.knee_side, row.data.knee_side),
        "performed_at": (stored.performed_at, row.performed_at),
        "physician_email": (emails.get(stored.physician_id or 0), emails.get(row.physician_id or 0)),
        "baseline_nrs": (stored.baseline_nrs, row.data.baseline_nrs),
        "baseline_koos_jr": (stored.baseline_koos_jr, row.data.baseline_koos_jr),
    }
    found = []
    # The row names another patient when it matches one (MRN, else phone + last name) or carries an MRN
    # no patient has; a row that cannot be matched (email only) is taken as the stored procedure's patient.
    if (patient_id is not None and patient_id != stored.patient_id) or (patient_id is None and row.data.patient.mrn):
        found.append(("external_id", f"{stored.external_id} is already stored for another patient "
                                     "(MRN, or phone and last name, differ)"))
    for name, (was, now) in pairs.items():
        if was != now:
            shown = was.isoformat() if isinstance(was, datetime) else (was.value if hasattr(was, "value") else was)
            found.append((name, f"{stored.external_id} is already stored with {name} {shown}; "
                                "use `aftercare procedure move`, or cancel it and record a new one"))
    return found


def _stored_procedures(session: Session, clinic_id: int, external_ids: list[str]) -> dict[str, Procedure]:
    found: dict[str, Procedure] = {}
    for chunk in _chunks(external_ids):
        query = select(Procedure).where(Procedure.clinic_id == clinic_id, col(Procedure.external_id).in_(chunk))
        found.update((p.external_id, p) for p in session.exec(query))
    return found


def _stored_patients(session: Session, clinic_id: int, rows: list[_Row]) -> dict[tuple[Any, ...], Patient]:
    """The stored patient each patient key matches (as `patients.find_patient`)."""
    mrns = sorted({r.data.patient.mrn for r in rows if r.data.patient.mrn})
    phones = sorted({r.phone for r in rows if r.phone and not r.data.patient.mrn})
    found: dict[tuple[Any, ...], Patient] = {}
    for chunk in _chunks(mrns):
        query = select(Patient).where(Patient.clinic_id == clinic_id, col(Patient.mrn).in_(chunk))
        found.update((("mrn", p.mrn), p) for p in session.exec(query))
    for chunk in _chunks(phones):
        query = select(Patient).where(
            Patient.clinic_id == clinic_id, col(Patient.phone_e164).in_(chunk), col(Patient.mrn).is_(None)
        ).order_by(col(Patient.id))
        for p in session.exec(query):
            found.setdefault(("phone", p.phone_e164, p.last_name), p)
    return found


def _snapshot_problems(session: Session, rows: list[_Row]) -> list[RowError]:
    """A protocol file edited without a new version cannot be used (see plans.ensure_snapshot)."""
    first_line: dict[str, int] = {}
    protocols: dict[str, Protocol] = {}
    for row in rows:
        first_line.setdefault(row.protocol.id, row.line)
        protocols[row.protocol.id] = row.protocol
    problems = []
    for protocol_id, protocol in protocols.items():
        stored = session.exec(
            select(ProtocolSnapshot).where(
                ProtocolSnapshot.protocol_id == protocol_id, ProtocolSnapshot.version == protocol.version
            )
        ).first()
        if stored is not None and stored.checksum != checksum(protocol.model_dump(mode="json")):
            problems.append(
                RowError(first_line[protocol_id], "protocol_id",
                         f"protocol {protocol_id} version {protocol.version} was edited without a new version number")
            )
    return problems


# --- the import -------------------------------------------------------------------------------------


def import_csv(
    session: Session,
    *,
    clinic: Clinic,
    text: str,
    registry: ProtocolRegistry,
    settings: Settings,
    actor: str,
    dry_run: bool = False,
) -> ImportReport:
    """Validate every row, then store patients, consents, procedures and audit events in bulk.

    If any row is rejected nothing is written and the report lists every problem. Identical
    re-imports are no-ops. The caller commits, then plans `procedure_ids_to_plan` (see `plan_imported`).
    """
    assert clinic.id is not None
    started = time.perf_counter()
    report = ImportReport(dry_run=dry_run)
    lines, report.rejected = read_rows(text)
    staff = session.exec(select(StaffUser).where(StaffUser.clinic_id == clinic.id))
    ctx = _Context(clinic, registry, settings, {s.email.lower(): s for s in staff}, utcnow())
    valid: list[_Row] = []
    first_seen: dict[str, int] = {}
    for line, cells in lines:
        external_id = cells.get("external_id", "")
        if external_id in first_seen:
            report.rejected.append(
                RowError(line, "external_id", f"{external_id!r} is duplicated in this file (first on line "
                                              f"{first_seen[external_id]})")
            )
        elif external_id:
            first_seen[external_id] = line
        row = _validate_row(line, cells, ctx, report.rejected)
        if row is not None:
            valid.append(row)
    stored = _stored_procedures(session, clinic.id, [r.data.external_id for r in valid])
    patients = _stored_patients(session, clinic.id, valid)
    fresh: list[_Row] = []
    for row in valid:
        existing = stored.get(row.data.external_id)
        if existing is None:
            fresh.append(row)
            continue
        match = patients.get(row.patient_key)
        for name, problem in _differences(row, existing, match.id if match else None, ctx):
            report.rejected.append(RowError(row.line, name, problem))
        report.accepted.append(AcceptedRow(row.line, row.data.external_id, existing.id, new=False))
        if existing.status == ProcedureStatus.planning and existing.id is not None:
            report.procedure_ids_to_plan.append(existing.id)
    report.rejected.extend(_snapshot_problems(session, fresh))
    report.timings["validate"] = time.perf_counter() - started
    if report.rejected:
        report.rejected.sort(key=lambda e: (e.line, e.field))
        report.accepted, report.procedure_ids_to_plan = [], []
        return report
    if dry_run:
        report.accepted.extend(AcceptedRow(r.line, r.data.external_id, None, new=True) for r in fresh)
        report.accepted.sort(key=lambda a: a.line)
        return report
    started = time.perf_counter()
    _Writer(session, clinic, settings, actor, report).write(fresh, patients)
    report.timings["insert"] = time.perf_counter() - started
    report.accepted.sort(key=lambda a: a.line)
    return report


class _Writer:
    """The bulk write of validated rows: a handful of multi-row INSERT/UPDATE statements."""

    def __init__(self, session: Session, clinic: Clinic, settings: Settings, actor: str, report: ImportReport) -> None:
        self.session, self.clinic, self.settings, self.actor, self.report = session, clinic, settings, actor, report
        self.now = utcnow()
        self.audit: list[dict[str, Any]] = []

    def write(self, rows: list[_Row], stored_patients: dict[tuple[Any, ...], Patient]) -> None:
        unchanged = len(self.report.accepted)
        snapshots = {}
        for protocol in {r.protocol.id: r.protocol for r in rows}.values():
            snapshots[protocol.id] = ensure_snapshot(self.session, protocol)
        patient_ids = self._patients(rows, stored_patients)
        self._procedures(rows, patient_ids, {k: s.version for k, s in snapshots.items()})
        self.audit.append(
            self._audit_row("procedures.imported", "clinic", self.clinic.id, new=len(rows), unchanged=unchanged)
        )
        self._insert(AuditEvent, self.audit, "audit_event")

    def _insert(self, model: type[Any], rows: list[dict[str, Any]], table: str) -> None:
        bulk.insert_rows(self.session, model, rows)
        self.report.rows_written[table] = self.report.rows_written.get(table, 0) + len(rows)

    def _audit_row(self, action: str, entity_type: str, entity_id: int | None, **detail: Any) -> dict[str, Any]:
        return {"at": self.now, "actor": self.actor, "action": action, "entity_type": entity_type,
                "entity_id": entity_id, "detail": detail}

    def _patients(self, rows: list[_Row], stored: dict[tuple[Any, ...], Patient]) -> dict[tuple[Any, ...], int]:
        """Insert new patients, update known ones; then append the consents granted. Key -> patient id."""
        by_key: dict[tuple[Any, ...], list[_Row]] = {}
        for row in rows:
            by_key.setdefault(row.patient_key, []).append(row)
        new_keys = [k for k in by_key if k not in stored]
        ids: dict[tuple[Any, ...], int] = {k: p.id for k, p in stored.items() if p.id is not None}
        new_ids = bulk.allocate_ids(self.session, Patient, len(new_keys))
        inserts = [{"id": i, **self._patient_values(by_key[k], None)} for k, i in zip(new_keys, new_ids, strict=True)]
        bulk.insert_rows(self.session, Patient, inserts)
        ids.update(zip(new_keys, new_ids, strict=True))
        updates = []
        for key in by_key:
            if key in stored:
                values = self._patient_values(by_key[key], stored[key])
                if any(getattr(stored[key], name) != value for name, value in values.items() if name != "updated_at"):
                    updates.append({"id": ids[key], **values})
        if updates:
            self.session.execute(update(Patient), updates)
        self.report.rows_written["patient"] = len(inserts) + len(updates)
        self._consents(by_key, ids, [ids[k] for k in by_key if k in stored])
        return ids

    def _patient_values(self, rows: list[_Row], patient: Patient | None) -> dict[str, Any]:
        """What `patients.upsert_patient` would leave after recording these rows in order."""
        last = rows[-1]
        language = patient.language if patient else Language(self.settings.default_language)
        for row in rows:
            language = row.data.patient.language or language
        values: dict[str, Any] = {
            "clinic_id": self.clinic.id,
            "mrn": last.data.patient.mrn,
            "first_name": last.data.patient.first_name,
            "last_name": last.data.patient.last_name,
            "phone_e164": last.phone,
            "email": last.data.patient.email,
            "language": language,
            "timezone": last.zone,
            "preferred_channel": last.channel,
            "updated_at": self.now,
        }
        if patient is None:
            values["created_at"] = self.now
        return values

    def _consents(
        self, by_key: dict[tuple[Any, ...], list[_Row]], ids: dict[tuple[Any, ...], int], known: list[int]
    ) -> None:
        state = self._consent_state(known)
        events = []
        for key, rows in by_key.items():
            patient_id = ids[key]
            last = rows[-1]
            wanted = {
                Channel.sms: any(r.data.patient.consent_sms for r in rows) and bool(last.phone),
                Channel.email: any(r.data.patient.consent_email for r in rows) and bool(last.data.patient.email),
            }
            for channel, granted in wanted.items():
                if granted and not state.get((patient_id, channel), False):
                    events.append({"patient_id": patient_id, "channel": channel, "granted": True, "source": SOURCE,
                                   "note": None, "recorded_by": self.actor, "recorded_at": self.now})
                    self.audit.append(self._audit_row("consent.granted", "patient", patient_id,
                                                      channel=channel.value, source=SOURCE))
        self._insert(ConsentEvent, events, "consent_event")

    def _consent_state(self, patient_ids: list[int]) -> dict[tuple[int, Channel], bool]:
        state: dict[tuple[int, Channel], bool] = {}
        for chunk in _chunks(sorted(patient_ids)):
            query = (
                select(ConsentEvent)
                .where(col(ConsentEvent.patient_id).in_(chunk))
                .order_by(col(ConsentEvent.recorded_at), col(ConsentEvent.id))
            )
            for event in self.session.exec(query):
                state[(event.patient_id, event.channel)] = event.granted
        return state

    def _procedures(self, rows: list[_Row], patient_ids: dict[tuple[Any, ...], int], versions: dict[str, str]) -> None:
        new_ids = bulk.allocate_ids(self.session, Procedure, len(rows))
        values = [
            {
                "id": procedure_id,
                "clinic_id": self.clinic.id,
                "patient_id": patient_ids[row.patient_key],
                "external_id": row.data.external_id,
                "protocol_id": row.protocol.id,
                "protocol_version": versions[row.protocol.id],
                "knee_side": row.data.knee_side,
                "performed_at": row.performed_at,
                "physician_id": row.physician_id,
                "baseline_nrs": row.data.baseline_nrs,
                "baseline_koos_jr": row.data.baseline_koos_jr,
                "status": ProcedureStatus.planning,
                "created_at": self.now,
                "updated_at": self.now,
            }
            for row, procedure_id in zip(rows, new_ids, strict=True)
        ]
        self.report.rows_written["procedure"] = bulk.insert_rows(self.session, Procedure, values)
        for row, procedure_id in zip(rows, new_ids, strict=True):
            self.report.accepted.append(AcceptedRow(row.line, row.data.external_id, procedure_id, new=True))
            self.audit.append(
                self._audit_row("procedure.recorded", "procedure", procedure_id, source=SOURCE,
                                protocol=f"{row.protocol.id}@{versions[row.protocol.id]}")
            )
        self.report.procedure_ids_to_plan.extend(new_ids)


def plan_imported(procedure_ids: Sequence[int], settings: Settings, *, wait: bool = False) -> None:
    """After commit: start `procedure-aftercare` for the imported procedures, PLAN_BATCH per flow run."""
    for chunk in _chunks(list(procedure_ids), PLAN_BATCH):
        orchestration.start_plan_flow(chunk, settings, wait=wait)
