"""Register aftercare's deployments on a Prefect process work pool (`aftercare deploy-flows`).

Workers run from the app image, so each deployment points at its flow by module path
(`aftercare_flows.<module>.<flow>`): no code storage, no pull steps, the installed package is the code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.types.entrypoint import EntrypointType

WORK_POOL_TYPE = "process"


class DeployError(RuntimeError):
    """The deployments cannot be registered as asked (wrong pool type, no server...)."""


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: which flow, under which name, on which schedule."""

    flow: str  # "package.module:flow_object", importable in the worker's environment
    name: str
    description: str
    interval_seconds: int | None = None  # an interval schedule (e.g. dispatch-due every 60 s)
    concurrency_limit: int | None = None  # at most this many runs at once; a scheduled run finding it busy is dropped
    tags: tuple[str, ...] = field(default=("aftercare",))

    def concurrency(self) -> ConcurrencyLimitConfig | None:
        if self.concurrency_limit is None:
            return None
        busy = ConcurrencyLimitStrategy.CANCEL_NEW if self.interval_seconds else ConcurrencyLimitStrategy.ENQUEUE
        return ConcurrencyLimitConfig(limit=self.concurrency_limit, collision_strategy=busy)

    def load(self) -> Flow[..., object]:
        module_name, attr = self.flow.split(":", 1)
        loaded = getattr(importlib.import_module(module_name), attr)
        if not isinstance(loaded, Flow):
            raise DeployError(f"{self.flow} is not a Prefect flow")
        return loaded


# Every deployment the service needs. Later issues append theirs here, e.g.
#   DeploymentSpec(flow="aftercare_flows.dispatch_due:dispatch_due", name="dispatch-due",
#                  description="...", interval_seconds=60, concurrency_limit=1),
#   DeploymentSpec(flow="aftercare_flows.triage_response:triage_response", name="triage-response", description="..."),
DEPLOYMENTS: list[DeploymentSpec] = [
    DeploymentSpec(
        flow="aftercare_flows.procedure_aftercare:procedure_aftercare",
        name="procedure-aftercare",  # aftercare.orchestration.PLAN_DEPLOYMENT = "<flow name>/<this>"
        description="Build the care plan of newly recorded procedures (started by the app on each recording).",
    ),
    DeploymentSpec(
        flow="aftercare_flows.plan_stragglers:plan_stragglers",
        name="plan-stragglers",
        description="Every 5 minutes: re-start or build plans still missing after AFTERCARE_PLAN_GRACE_SECONDS.",
        interval_seconds=300,  # each run is a worker subprocess (~5-8 s of CPU); stragglers are rare
        concurrency_limit=1,
    ),
    DeploymentSpec(
        flow="aftercare_flows.dispatch_due:dispatch_due",
        name="dispatch-due",
        description="Every 60 s: send what is due (leased claims; more workers or runs never send twice).",
        interval_seconds=60,
        concurrency_limit=1,
    ),
    DeploymentSpec(
        flow="aftercare_flows.triage_response:triage_response",
        name="triage-response",  # aftercare.orchestration.TRIAGE_DEPLOYMENT = "<flow name>/<this>"
        description="Triage stored answers and free-text messages: flags, pages, patient texts (one run each).",
    ),
    DeploymentSpec(
        flow="aftercare_flows.surveys_tick:surveys_tick",
        name="surveys-tick",
        description="Every 60 s: first survey questions by SMS, reminders, closing survey windows (missed, tasks).",
        interval_seconds=60,
        concurrency_limit=1,
    ),
    DeploymentSpec(
        flow="aftercare_flows.flags_tick:flags_tick",
        name="flags-tick",
        description="Every 60 s: escalate unacknowledged urgent flags (backup, then admin), triage stragglers.",
        interval_seconds=60,
        concurrency_limit=1,
    ),
    DeploymentSpec(
        flow="aftercare_flows.bookings_tick:bookings_tick",
        name="bookings-tick",
        description="Every 5 minutes: expire booking offers (re-offer once, then a task), free visits of cancelled "
        "procedures.",
        interval_seconds=300,  # offers expire after hours; minutes of lateness do not matter
        concurrency_limit=1,
    ),
]


@dataclass(frozen=True)
class Deployed:
    """A deployment as registered: `flow-name/deployment-name`, its id and the entrypoint a worker imports."""

    full_name: str
    deployment_id: UUID
    entrypoint: str


def ensure_work_pool(name: str) -> bool:
    """Create the process work pool when it does not exist. Returns True when it was created."""
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            create = WorkPoolCreate(
                name=name,
                type=WORK_POOL_TYPE,
                description="aftercare flows; run workers with `prefect worker start --pool NAME --type process`",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            )
            try:
                client.create_work_pool(create)
            except ObjectAlreadyExists:  # another replica created it a moment ago
                return False
            return True
    if pool.type != WORK_POOL_TYPE:
        raise DeployError(f"work pool {name!r} has type {pool.type!r}; aftercare needs a {WORK_POOL_TYPE!r} pool")
    return False


def deploy_flows(work_pool: str, specs: list[DeploymentSpec] | None = None) -> list[Deployed]:
    """Create or update every deployment on `work_pool` (created if missing). Safe to run on every start."""
    ensure_work_pool(work_pool)
    deployed: list[Deployed] = []
    for spec in DEPLOYMENTS if specs is None else specs:
        the_flow = spec.load()
        deployment = RunnerDeployment.from_flow(
            the_flow,
            name=spec.name,
            description=spec.description,
            interval=spec.interval_seconds,
            concurrency_limit=spec.concurrency(),
            tags=list(spec.tags),
            work_pool_name=work_pool,
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        deployment_id = deployment.apply(work_pool_name=work_pool)
        assert isinstance(deployment_id, UUID)  # called from sync code, so not a coroutine
        deployed.append(Deployed(f"{the_flow.name}/{spec.name}", deployment_id, str(deployment.entrypoint)))
    return deployed
