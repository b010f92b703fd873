"""The shared resources of one omnihook process, opened once in the app's lifespan (or by a
standalone worker) and handed to request handlers through ``request.state``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from handlers.host import HandlerHost
from handlers.registry import HandlerRegistry
from service.apply.events import EventEmitter
from service.apply.lifecycle import FINAL, Plan
from service.clock import Clock, utcnow
from service.costs.price_table import PriceTable
from service.errors import StorageError
from service.kling.backoff import ProviderBackoff
from service.kling.client import ProviderClient
from service.receiver.cache import TokenCache
from service.receiver.load import ReceiverLoad
from service.receiver.verify import SignatureVerifier, verifier_for
from service.retry import RetrySchedule
from service.settings import Settings
from service.submit.admission.pace import AdmissionPace
from service.webhooks.gate import EndpointGate
from service.worker_health import WorkerHealth
from storage.base import Storage
from storage.records import TaskRecord, VideoRecord

Planner = Callable[[TaskRecord, list[VideoRecord]], Plan]


@dataclass
class Services:
    settings: Settings
    storage: Storage
    http: httpx.AsyncClient  # for the provider's API
    downloads: httpx.AsyncClient  # for video files: other timeouts, no auth
    kling: ProviderClient  # the OMNIHOOK_PROVIDER's API shape; named for the Kling API it fronts
    registry: HandlerRegistry
    emitter: EventEmitter
    # Where handler functions run: off this loop, which answers callbacks (handlers.host).
    handler_host: HandlerHost
    # The provider's prices (service.costs): submissions are estimated with them.
    prices: PriceTable
    clock: Clock = utcnow
    # Set whenever this process enqueues jobs, so an in-process worker wakes at once.
    jobs_ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Callbacks being received by this process: an in-process worker gives way to them.
    receiver_load: ReceiverLoad = field(default_factory=ReceiverLoad)
    # The tasks whose callback tokens the receiver has already looked up (service.receiver.cache)
    callback_tokens: TokenCache = field(default_factory=TokenCache)
    # How fast this process admits queued tasks, from the provider's answers
    # (service.submit.admission)
    admission: AdmissionPace = field(default_factory=AdmissionPace)
    # Until when this process leaves the provider's query endpoint alone (a 1302/1303 answer):
    # shared by every sync job and reconciliation pass, as the rate limit is the account's.
    provider_backoff: ProviderBackoff = field(default_factory=ProviderBackoff)
    # The health of this process's worker, registered by it; None: the process runs none.
    worker_health: WorkerHealth | None = None
    # At most OMNIHOOK_DOWNLOAD_CONCURRENCY videos are fetched at once by this process.
    download_slots: asyncio.Semaphore = field(init=False)
    # Each webhook endpoint's attempts in flight and circuit, in this process.
    endpoint_gate: EndpointGate = field(init=False)
    # The provider's signing secrets, read once (a bad one stops the process here); None:
    # OMNIHOOK_KLING_WEBHOOK_SECRET is unset and callbacks are taken unsigned.
    callback_verifier: SignatureVerifier | None = field(init=False)
    # OMNIHOOK_WEBHOOK_RETRY_SCHEDULE, parsed once rather than at every attempt.
    webhook_retry: RetrySchedule = field(init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.download_slots = asyncio.Semaphore(settings.download_concurrency)
        self.endpoint_gate = EndpointGate(timeout=settings.webhook_timeout)
        secret = settings.kling_webhook_secret
        self.callback_verifier = None if secret is None else verifier_for(secret.get_secret_value())
        self.webhook_retry = settings.webhook_retry

    async def change_task(self, task_id: str, planner: Planner, *, attempts: int = 20) -> str:
        """Read a task, plan a change, write it with compare-and-set; on a concurrent change,
        read again and plan again. Answers the plan's summary."""
        for _ in range(attempts):
            task = await self.storage.get_task(task_id)
            if task is None:
                return f"task {task_id} no longer exists"
            videos = await self.storage.list_videos(task_id)
            plan = planner(task, videos)
            if plan.change is None:
                return plan.summary
            if await self.storage.apply(plan.change):
                if plan.change.jobs:
                    self.jobs_ready.set()
                if plan.change.task.status in FINAL and task.status not in FINAL:
                    self.admission.slot_freed()  # a queued task may take its slot
                return plan.summary
        raise StorageError(f"task {task_id} kept changing; gave up after {attempts} attempts")
