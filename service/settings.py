"""Settings, read once from ``OMNIHOOK_*`` variables and a ``.env`` file into a typed object.

Secrets are ``SecretStr``: their ``repr`` and ``str`` are masked, so a settings object can be
logged. CLI flags are passed as keyword overrides and win over the environment.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from service.costs.budgets import Budget, budgets_from, parse_per_key_budgets
from service.errors import ConfigurationError
from service.provider_slots import parse_slot_limits
from service.retry import RetrySchedule
from storage.admission import SlotLimits

ProviderKind = Literal["kling", "newapi", "apimodels"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OMNIHOOK_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = "sqlite:///omnihook.db"
    media_dir: Path = Path("media")
    public_url: str | None = None
    api_token: SecretStr | None = None
    provider: ProviderKind = "kling"
    kling_base_url: str = "https://api-singapore.klingai.com"
    kling_api_key: SecretStr | None = None
    kling_access_key: SecretStr | None = None
    kling_secret_key: SecretStr | None = None
    kling_webhook_secret: SecretStr | None = None
    handlers: str = ""
    reconcile_after: float = Field(default=300.0, gt=0)
    # A submission still pending this long after it was stored (its process died before the
    # create's outcome was recorded) is finished by a job: longer than a create may take inline
    # (4 attempts of up to 30 s, waits of up to 60 s between them), so a live create is never
    # raced by it.
    submit_resume_after: float = Field(default=600.0, gt=0)
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    handler_retry_schedule: str = "5,30,120,600,1800,3600"
    download_retry_schedule: str = "5,30,120,600,1800,3600,7200"
    allow_private_networks: bool = False
    # Not in the contract's table, but useful to tune: the worker's lease and concurrency.
    worker_concurrency: int = Field(default=8, ge=1)
    job_lease_seconds: float = Field(default=60.0, gt=0)
    handler_timeout: float = Field(default=60.0, gt=0)
    # Sync handler runs at once per process (twice as many threads at most, abandoned ones
    # included: handlers.threads).
    handler_threads: int = Field(default=8, ge=1)
    max_video_bytes: int = Field(default=2 * 1024**3, gt=0)
    # Downloads (issue 5): videos fetched at once per process, and the time one attempt may take.
    download_concurrency: int = Field(default=3, ge=1)
    download_deadline: float = Field(default=1800.0, gt=0)
    # Receiver hardening and reconciliation (issue 4): a task with no final state this many
    # seconds after submission is failed (task.timed_out); a reconciliation pass queries at most
    # reconcile_batch quiet tasks.
    task_deadline: float = Field(default=86400.0, gt=0)
    reconcile_batch: int = Field(default=50, ge=1)
    # Outgoing webhooks (issue 7): the time one delivery attempt may take (connecting, waiting
    # for the answer and reading it, together), attempts in flight per endpoint and worker
    # process (fewer while it fails), how long an endpoint may fail without one success before
    # it is disabled, and how long a replaced secret still signs after a rotation.
    webhook_timeout: float = Field(default=15.0, gt=0)
    webhook_endpoint_concurrency: int = Field(default=4, ge=1)
    webhook_disable_after: float = Field(default=5 * 86400.0, gt=0)
    webhook_secret_overlap: float = Field(default=86400.0, ge=0)
    # Slots per kind of job (issue 12, see service.worker.slot_budget): the most slots deliveries,
    # handler runs and downloads may hold, and the slots kept for the task state machine (inbox,
    # submit, sync) and for downloads whatever the others do. None: derived from
    # worker_concurrency (half of it; download_concurrency; a quarter of it; one).
    worker_slots_delivery: int | None = Field(default=None, ge=1)
    worker_slots_handler: int | None = Field(default=None, ge=1)
    worker_slots_download: int | None = Field(default=None, ge=1)
    worker_slots_tasks_reserved: int | None = Field(default=None, ge=0)
    worker_slots_download_reserved: int | None = Field(default=None, ge=0)
    # Delivery attempts still waiting for a slow endpoint's answer that give their worker slot
    # back (service.webhooks.sender), at most this many at once per worker.
    webhook_slow_attempts: int = Field(default=32, ge=0)
    # The admission queue (issue 13, service.submit.admission): tasks in flight at the provider at
    # once, "N" for the account and "MODEL=N" per model (service.provider_slots); empty: no
    # limit of ours (a task is queued only when the provider answers 1303/1302).
    provider_concurrency: str = ""
    # Costs (issue 13, see service.costs): a JSON file replacing providers' default price
    # tables, and budgets in the active table's currency; None or "": no such budget.
    price_table: Path | None = None
    budget_daily: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    budget_monthly: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    budget_per_key: str = ""

    @field_validator("public_url", "kling_base_url")
    @classmethod
    def _url_without_trailing_slash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("webhook_retry_schedule", "handler_retry_schedule", "download_retry_schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        RetrySchedule.parse(value)  # raises ValueError with the reason
        return value

    @field_validator("worker_slots_tasks_reserved", "worker_slots_download_reserved")
    @classmethod
    def _reservation_leaves_a_slot(cls, value: int | None, info: ValidationInfo) -> int | None:
        reserved = (value or 0) + (info.data.get("worker_slots_tasks_reserved") or 0)
        total = info.data.get("worker_concurrency")
        if total is not None and value and reserved >= total:
            raise ValueError(
                f"the slots reserved ({reserved}) must leave at least one of the "
                f"worker_concurrency ({total}) to the other kinds of jobs"
            )
        return value

    @field_validator("provider_concurrency")
    @classmethod
    def _valid_slot_limits(cls, value: str) -> str:
        parse_slot_limits(value)  # raises ValueError with the reason
        return value

    @property
    def provider_slots(self) -> SlotLimits:
        return parse_slot_limits(self.provider_concurrency)

    @field_validator("price_table", "budget_daily", "budget_monthly", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # OMNIHOOK_BUDGET_DAILY= (set but empty) turns the budget off rather than failing.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("budget_per_key")
    @classmethod
    def _valid_per_key_budgets(cls, value: str) -> str:
        parse_per_key_budgets(value)  # raises ValueError with the reason
        return value

    @field_validator("price_table")
    @classmethod
    def _price_table_is_a_file(cls, value: Path | None) -> Path | None:
        # Only that it is there: its content is checked where it is loaded
        # (service.costs.price_file.load_price_tables), with every bad field named.
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file")
        return value

    @property
    def budgets(self) -> tuple[Budget, ...]:
        return budgets_from(self.budget_daily, self.budget_monthly, self.budget_per_key)

    @property
    def handler_specs(self) -> list[str]:
        return [part.strip() for part in self.handlers.split(",") if part.strip()]

    @property
    def handler_retry(self) -> RetrySchedule:
        return RetrySchedule.parse(self.handler_retry_schedule)

    @property
    def download_retry(self) -> RetrySchedule:
        return RetrySchedule.parse(self.download_retry_schedule)

    @property
    def webhook_retry(self) -> RetrySchedule:
        return RetrySchedule.parse(self.webhook_retry_schedule)


class _IsolatedSettings(Settings):
    """Settings from explicit values only: no environment, no ``.env`` (the demo, tests)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def load_settings(*, isolated: bool = False, **overrides: Any) -> Settings:
    """Read the settings; overrides (CLI flags) win. ConfigurationError names each bad value.

    ``isolated``: take only the given values and defaults, ignoring the environment and .env."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return _IsolatedSettings(**given) if isolated else Settings(**given)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper()
            lines.append(f"OMNIHOOK_{name}: {error['msg']}")
        raise ConfigurationError("invalid configuration:\n  " + "\n  ".join(lines)) from None
