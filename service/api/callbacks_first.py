"""Callbacks first: the provider's notifications skip the rest of the app's stack.

Callbacks are nearly all of the service's traffic, and what a provider's burst of them waits
for. Every layer between the server and the receiver (metrics, API access, exception
middleware, router, Starlette's request wrapper) costs a call and a wrapped ``send`` per
request: together a quarter of the receiver's own time. So this middleware, outermost of the
app's own (Starlette's error middleware still wraps it: an unexpected error is a 500, logged),
matches the callback route itself and hands the request straight to
:class:`~service.api.callbacks.CallbackReceiver`, timing it for the metrics as
:class:`~service.metrics.MetricsMiddleware` would. None of the skipped layers does anything for
a callback: API access guards ``/v1/*`` and ``/`` only, the receiver answers its errors itself.
Any other request, and a callback URL called with another method (405), take the usual way.
"""

from __future__ import annotations

import time

from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.callbacks import CallbackReceiver
from service.metrics import Metrics


class CallbacksFirst:
    def __init__(
        self, app: ASGIApp, *, route: Route, receiver: CallbackReceiver, metrics: Metrics
    ) -> None:
        self.app = app
        self._route = route  # matched exactly as the router would (root path, converters)
        self._receiver = receiver
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match, matched = self._route.matches(scope)
            if match is Match.FULL:
                scope.update(matched)
                await self._receive(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _receive(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500  # unless an answer is made: the error middleware answers 500
        try:
            response = await self._receiver.answer(scope, receive)
            status = response.status_code
            await response(scope, receive, send)
        finally:
            self._metrics.observe(self._receiver.__name__, status, time.perf_counter() - started)
