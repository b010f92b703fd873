"""The errors of the handler machinery, a branch of :mod:`service.errors`.

    OmnihookError
    ├── ConfigurationError            a plugin cannot be loaded (raised by the registry)
    └── HandlerError
        ├── UnknownHandler (KeyError)     no handler of that name is registered
        ├── HandlerFailed                 a run raised: retry it (the original is ``__cause__``)
        │   └── HandlerTimedOut               a run took longer than its timeout: retry it
        │       └── HandlerThreadsBusy            ... waiting for a thread (the pool is full of
        │                                         abandoned ones): retry it later
        └── HandlerGaveUp                 the handler raised ``DoNotRetry``: do not retry

``HandlerTimedOut`` is a ``HandlerFailed`` so a caller that only knows "failed, retry" does the
right thing; ``HandlerGaveUp`` is deliberately not one, so it is never retried by accident.
"""

from __future__ import annotations

from service.errors import OmnihookError


class HandlerError(OmnihookError):
    """Base of the errors about handlers and their runs."""


class UnknownHandler(HandlerError, KeyError):
    """No handler of that name: the plugin was removed or renamed since its job was queued."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"no handler named {name!r} is registered (was its plugin removed or renamed?)"
        )

    def __str__(self) -> str:
        # KeyError's own __str__ would show the message as a quoted repr.
        return str(self.args[0])


class HandlerRunError(HandlerError):
    """A run of one handler on one event did not succeed."""

    retryable: bool = True

    def __init__(
        self,
        message: str,
        *,
        handler: str,
        event_id: str,
        event_type: str,
        reason: str | None = None,
    ) -> None:
        self.handler = handler
        self.event_id = event_id
        self.event_type = event_type
        # What went wrong, without the handler and event the message repeats: a run's
        # recorded error ("RuntimeError: the CRM is down", "timed out after 60s").
        self.reason = reason or message
        super().__init__(message)


class HandlerFailed(HandlerRunError):
    """The handler raised; ``__cause__`` is its exception. Worth retrying."""


class HandlerTimedOut(HandlerFailed):
    """The handler ran past its timeout and was abandoned. Worth retrying."""


class HandlerThreadsBusy(HandlerTimedOut):
    """A sync handler's timeout passed before a thread was free to run it: the pool was full of
    threads abandoned by earlier timeouts. It never started; worth retrying later."""


class HandlerGaveUp(HandlerRunError):
    """The handler raised ``DoNotRetry`` (its ``__cause__``): record the failure, never retry."""

    retryable = False
