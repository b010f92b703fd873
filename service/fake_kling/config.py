"""Settings of the simulated provider, fixed when the app is built."""

from __future__ import annotations

from dataclasses import dataclass

#: API shapes the simulator can speak (kling-api.md §6); each is a module of
#: :mod:`service.fake_kling.profiles`.
KNOWN_PROFILES = ("kling", "newapi", "apimodels")


def _mask(value: str | None) -> str:
    return "None" if value is None else "'***'"


@dataclass(frozen=True)
class FakeKlingConfig:
    """How the simulated Kling authenticates, paces tasks and signs callbacks.

    With no credentials at all, any bearer token is accepted (an ``Authorization`` header is
    still required). ``api_key`` and the ``access_key``/``secret_key`` pair may both be set;
    either then authenticates. Secrets never appear in ``repr``.

    ``own_task_ids`` (``newapi`` only) makes the gateway hand out its own task ids instead of
    Kling's. ``callback_retry_window`` and ``callback_retry_delay`` bound the retries of a
    profile that retries callbacks until answered 200 (``apimodels``: up to 30 minutes).
    """

    api_key: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    webhook_secret: str | None = None
    step_seconds: float = 1.0
    max_concurrent: int | None = None
    profile: str = "kling"
    callback_timeout: float = 5.0
    own_task_ids: bool = False
    callback_retry_window: float = 1800.0
    callback_retry_delay: float = 1.0

    def __post_init__(self) -> None:
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("access_key and secret_key must be given together")
        if self.step_seconds < 0:
            raise ValueError("step_seconds must be >= 0")
        if self.max_concurrent is not None and self.max_concurrent < 0:
            raise ValueError("max_concurrent must be >= 0")
        if self.callback_timeout <= 0:
            raise ValueError("callback_timeout must be > 0")
        if self.profile not in KNOWN_PROFILES:
            raise ValueError(
                f"unknown profile {self.profile!r}; choose one of {', '.join(KNOWN_PROFILES)}"
            )
        if self.webhook_secret is not None and not self.webhook_secret.startswith("whsec_"):
            raise ValueError("webhook_secret must start with 'whsec_'")
        if self.webhook_secret is not None and self.profile == "apimodels":
            raise ValueError("the apimodels profile never signs its callbacks: drop webhook_secret")
        if self.own_task_ids and self.profile != "newapi":
            raise ValueError(
                "own_task_ids is for the newapi profile (apimodels always has its own)"
            )
        if self.callback_retry_window < 0 or self.callback_retry_delay <= 0:
            raise ValueError("callback_retry_window must be >= 0 and callback_retry_delay > 0")

    @property
    def open_access(self) -> bool:
        """True when no credentials are configured, so any bearer token is accepted."""
        return self.api_key is None and self.secret_key is None

    def __repr__(self) -> str:
        return (
            "FakeKlingConfig("
            f"api_key={_mask(self.api_key)}, access_key={_mask(self.access_key)}, "
            f"secret_key={_mask(self.secret_key)}, webhook_secret={_mask(self.webhook_secret)}, "
            f"step_seconds={self.step_seconds!r}, max_concurrent={self.max_concurrent!r}, "
            f"profile={self.profile!r}, callback_timeout={self.callback_timeout!r}, "
            f"own_task_ids={self.own_task_ids!r}, "
            f"callback_retry_window={self.callback_retry_window!r}, "
            f"callback_retry_delay={self.callback_retry_delay!r})"
        )
