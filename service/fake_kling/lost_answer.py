"""``[sim:lose_answer]``: a create that lands at the provider but whose answer never arrives.

The status line and headers of the answer go out, announcing a body that is never sent, and
the app returns: the server closes the connection, so the client sees the exchange break off
mid-answer (an ``httpx.RemoteProtocolError``), the way a reset after sending looks. The task
was created before, so it runs and calls back as usual. (uvicorn logs "ASGI callable returned
without completing response" for each: that is the drop, as intended.)
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .store import SimTask


class DroppedAnswer(Response):
    """An answer whose body is announced and never sent."""

    def __init__(self) -> None:
        super().__init__(status_code=200, media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Content-Length promises a body; returning without it leaves the server no choice but
        # to close the connection (an incomplete answer cannot be finished).
        headers = [(b"content-type", b"application/json"), (b"content-length", b"64")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})


def answer_of(task: SimTask, answer: Response) -> Response:
    """``answer``, or its dropped version when the task's scenario asks for it."""
    return DroppedAnswer() if task.scenario.lose_answer else answer
