"""The `procedure-aftercare` flow and `aftercare deploy-flows`, run for real against a Prefect test harness."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from aftercare_flows.plan_stragglers import plan_stragglers
from aftercare_flows.procedure_aftercare import procedure_aftercare
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlmodel import Session, col, func, select
from typer.testing import CliRunner

from aftercare import plans, procedures
from aftercare.cli import app
from aftercare.models import AuditEvent, Clinic, Patient, Procedure, ProcedureStatus, Touchpoint
from aftercare.orchestration import PLAN_DEPLOYMENT, start_plan_flow
from aftercare.planning import build_plan
from aftercare.protocols import ProtocolRegistry
from aftercare.settings import Settings
from aftercare.timeutil import utcnow
from tests.factories import make_clinic, procedure_in
from tests.prefect_fixtures import prefect_harness  # noqa: F401  (session fixture)

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]
FLOW_NAME, DEPLOYMENT_NAME = PLAN_DEPLOYMENT.split("/")


def _record(session: Session, settings: Settings, registry: ProtocolRegistry, external_id: str = "PROC-1") -> int:
    clinic = session.exec(select(Clinic)).first() or make_clinic(session)
    recorded = procedures.record(
        session,
        clinic=clinic,
        data=procedure_in(external_id=external_id),
        registry=registry,
        settings=settings,
        actor="test",
        source="test",
    )
    session.commit()
    assert recorded.procedure.id is not None
    return recorded.procedure.id


def _touchpoints(session: Session, procedure_id: int) -> list[Touchpoint]:
    session.expire_all()
    return list(
        session.exec(select(Touchpoint).where(Touchpoint.procedure_id == procedure_id).order_by(col(Touchpoint.id)))
    )


def _procedure(session: Session, procedure_id: int) -> Procedure:
    session.expire_all()
    procedure = session.get(Procedure, procedure_id)
    assert procedure is not None
    return procedure


def _prefect_run(flow_run_id: str | UUID) -> tuple[str, FlowRun]:
    """The flow name and the flow run as Prefect recorded them."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(str(flow_run_id)))
        return client.read_flow(run.flow_id).name, run


def test_the_flow_builds_the_plan_of_a_recorded_procedure_in_one_transaction(
    session: Session, settings: Settings, registry: ProtocolRegistry
) -> None:
    procedure_id = _record(session, settings, registry)
    assert _touchpoints(session, procedure_id) == []
    assert _procedure(session, procedure_id).status == ProcedureStatus.planning

    written = procedure_aftercare([procedure_id])

    procedure = _procedure(session, procedure_id)
    rows = _touchpoints(session, procedure_id)
    patient = session.get(Patient, procedure.patient_id)
    clinic = session.get(Clinic, procedure.clinic_id)
    assert patient is not None and clinic is not None
    expected = build_plan(
        registry.get(procedure.protocol_id), plans.plan_context(clinic, patient, procedure.performed_at), utcnow()
    )
    assert written == len(rows) == len(expected) > 20
    assert sorted((r.key, r.channel) for r in rows) == sorted((t.key, t.channel) for t in expected)
    assert procedure.status == ProcedureStatus.active
    # one write: every row carries the instant the plan was built, the procedure's plan_built_at
    assert {r.created_at for r in rows} == {procedure.plan_built_at}

    assert procedure.flow_run_id
    flow_name, run = _prefect_run(procedure.flow_run_id)
    assert flow_name == FLOW_NAME == "procedure-aftercare"
    assert run.name == f"plan-{procedure_id}"
    assert run.state is not None and run.state.type == StateType.COMPLETED
    assert run.parameters == {"procedure_ids": [procedure_id]}


def test_running_the_flow_twice_writes_nothing_twice(
    session: Session, settings: Settings, registry: ProtocolRegistry
) -> None:
    procedure_id = _record(session, settings, registry)
    first = procedure_aftercare([procedure_id], return_state=True)
    before = [(r.id, r.key, r.channel, r.due_at) for r in _touchpoints(session, procedure_id)]
    first_run_id = _procedure(session, procedure_id).flow_run_id

    second = procedure_aftercare([procedure_id], return_state=True)

    assert first.result() == len(before) > 0
    assert second.result() == 0
    assert [(r.id, r.key, r.channel, r.due_at) for r in _touchpoints(session, procedure_id)] == before
    # the plan stays attributed to the run that built it; the second run is recorded and completed too
    assert first_run_id == str(first.state_details.flow_run_id)
    assert _procedure(session, procedure_id).flow_run_id == first_run_id
    second_id = second.state_details.flow_run_id
    assert second_id is not None and str(second_id) != first_run_id
    _, run = _prefect_run(second_id)
    assert run.state is not None and run.state.type == StateType.COMPLETED


def test_inline_mode_runs_the_flow_from_start_plan_flow(
    session: Session, settings: Settings, registry: ProtocolRegistry
) -> None:
    first = _record(session, settings, registry, "PROC-A")
    second = _record(session, settings, registry, "PROC-B")
    inline = settings.model_copy(update={"flow_mode": "inline"})

    start_plan_flow([first, second], inline, wait=True)

    for procedure_id in (first, second):
        procedure = _procedure(session, procedure_id)
        assert procedure.status == ProcedureStatus.active
        assert len(_touchpoints(session, procedure_id)) > 20
        assert procedure.flow_run_id
        flow_name, run = _prefect_run(procedure.flow_run_id)
        assert flow_name == "procedure-aftercare"
        assert run.state is not None and run.state.type == StateType.COMPLETED
    # one flow run built both plans
    assert _procedure(session, first).flow_run_id == _procedure(session, second).flow_run_id


def _deploy(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["deploy-flows", *args])
    return result.exit_code, result.output


def test_deploy_flows_registers_the_plan_deployment_on_a_process_pool_idempotently() -> None:
    code, output = _deploy()
    assert code == 0, output
    assert "deployed procedure-aftercare/procedure-aftercare" in output
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool("aftercare")
        deployment = client.read_deployment_by_name(PLAN_DEPLOYMENT)

    code, output = _deploy()
    assert code == 0, output
    with get_client(sync_client=True) as client:
        again = client.read_deployment_by_name(PLAN_DEPLOYMENT)
        same_name = client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[DEPLOYMENT_NAME]))
        )
        pools = [p.name for p in client.read_work_pools()]

    assert pool.type == "process"
    assert pools.count("aftercare") == 1
    assert deployment.work_pool_name == "aftercare"
    assert deployment.entrypoint == "aftercare_flows.procedure_aftercare.procedure_aftercare"
    assert deployment.pull_steps == []
    assert again.id == deployment.id and len(same_name) == 1

    with get_client(sync_client=True) as client:
        stragglers = client.read_deployment_by_name("plan-stragglers/plan-stragglers")
    assert stragglers.entrypoint == "aftercare_flows.plan_stragglers.plan_stragglers"
    [schedule] = stragglers.schedules
    assert schedule.schedule.interval.total_seconds() == 300  # type: ignore[union-attr]
    assert stragglers.global_concurrency_limit is not None and stragglers.global_concurrency_limit.limit == 1
    assert stragglers.concurrency_options is not None
    assert stragglers.concurrency_options.collision_strategy == "CANCEL_NEW"


def test_deploy_flows_to_another_pool_and_a_clear_error_without_a_server() -> None:
    code, output = _deploy("--work-pool", "aftercare-canary")
    assert code == 0, output
    with get_client(sync_client=True) as client:
        assert client.read_work_pool("aftercare-canary").type == "process"

    with temporary_settings({PREFECT_API_URL: None}):
        code, output = _deploy()
    assert code == 2
    assert "PREFECT_API_URL: not set" in output
    assert "Traceback" not in output


def _plan_runs(procedure_id: int) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(PLAN_DEPLOYMENT)
        return [
            r
            for r in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]))
            )
            if r.parameters == {"procedure_ids": [procedure_id]}
        ]


def test_deployment_mode_asks_prefect_for_one_run_per_recording(
    session: Session, settings: Settings, registry: ProtocolRegistry
) -> None:
    """Without a worker in the harness the run stays Scheduled; the production topology test runs it."""
    code, output = _deploy()
    assert code == 0, output
    procedure_id = _record(session, settings, registry)
    with get_client(sync_client=True) as client:  # the harness outlives the databases: forget older ids
        for run in _plan_runs(procedure_id):
            client.delete_flow_run(run.id)
    deployed = settings.model_copy(update={"flow_mode": "deployment"})

    start_plan_flow([procedure_id], deployed)
    start_plan_flow([procedure_id], deployed)  # a retry: same idempotency key, same run

    runs = _plan_runs(procedure_id)
    assert len(runs) == 1
    assert runs[0].idempotency_key == f"plan:{procedure_id}"
    assert runs[0].state is not None and runs[0].state.type == StateType.SCHEDULED
    # the plan is not built in the app's process: it waits for a worker
    assert _procedure(session, procedure_id).status == ProcedureStatus.planning
    assert session.exec(select(func.count()).select_from(Touchpoint)).one() == 0


def test_plan_stragglers_flow_builds_plans_prefect_never_built(
    session: Session, settings: Settings, registry: ProtocolRegistry
) -> None:
    forgotten = _record(session, settings, registry, "PROC-OLD")
    fresh = _record(session, settings, registry, "PROC-NEW")
    row = _procedure(session, forgotten)
    row.created_at = utcnow() - timedelta(hours=1)
    session.add(row)
    session.commit()

    state = plan_stragglers(return_state=True)

    assert state.is_completed() and state.result() > 20
    assert _procedure(session, forgotten).status == ProcedureStatus.active
    assert _procedure(session, fresh).status == ProcedureStatus.planning  # still within its grace period
    actions = session.exec(select(AuditEvent.action).where(AuditEvent.entity_id == forgotten)).all()
    assert "plan.built_without_prefect" in actions
