"""Fuzz: no body, header or token makes the receiver answer 5xx, and a refused request stores
nothing. What it does store, the inbox then processes without an error."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.receiver_support import (
    SECRET,
    Receiver,
    kling_task,
    open_receiver,
    run_due_jobs,
    signed_headers,
)

TOKEN = "tok-" + "f" * 40

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
status_words = st.sampled_from(
    ["submitted", "processing", "succeed", "succeeded", "failed", "SUCCESS", "completed", "x", ""]
)
task_like = st.fixed_dictionaries(
    {},
    optional={
        "task_id": st.sampled_from(["kt-1", "kt-2", ""]) | json_scalars,
        "task_status": status_words | json_scalars,
        "id": st.sampled_from(["kt-1", "1234567890"]) | json_scalars,
        "status": status_words,
        "outputs": st.just([]) | json_values,
        "task_info": st.fixed_dictionaries({"external_task_id": st.text(max_size=8)}),
        "task_result": st.fixed_dictionaries(
            {"videos": st.lists(st.fixed_dictionaries({"url": json_scalars}), max_size=2)}
        ),
        "taskId": json_scalars,
        "state": status_words,
        "resultUrls": json_values,
        "data": json_values,
        "code": json_scalars,
    },
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    task_like.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda inner, wrap: json.dumps({"code": 0, "data": inner} if wrap else inner).encode(),
        task_like,
        st.booleans(),
    ),
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
headers = st.dictionaries(
    st.sampled_from(
        ["content-type", "content-length", "webhook-id", "webhook-timestamp", "webhook-signature"]
    ),
    header_text | st.integers(0, 10**40).map(str) | st.integers(1, 6000).map(lambda n: "9" * n),
    max_size=4,
)
tokens = st.just(TOKEN) | st.text(max_size=30).filter(lambda t: t not in ("", ".", ".."))


class World:
    """A receiver kept open across examples, on a loop of its own."""

    def __init__(self, runner: asyncio.Runner, receiver: Receiver) -> None:
        self.runner = runner
        self.receiver = receiver

    def exchange(self, token: str, body: bytes, sent: dict[str, str]) -> None:
        self.runner.run(self._exchange(token, body, sent))

    async def _exchange(self, token: str, body: bytes, sent: dict[str, str]) -> None:
        storage = self.receiver.services.storage
        task_id = self.task_id
        before = len(await storage.list_notifications(task_id))
        answer = await self.receiver.client.post(
            f"/callbacks/kling/{quote(token, safe='')}", content=body, headers=sent
        )
        assert answer.status_code < 500, answer.text
        stored = len(await storage.list_notifications(task_id)) - before
        assert stored == (1 if answer.status_code == 200 and token == TOKEN else 0)
        await run_due_jobs(self.receiver.services)  # the inbox copes with whatever was stored

    task_id = ""


def _world(secret: str | None) -> Iterator[World]:
    with asyncio.Runner() as runner, tempfile.TemporaryDirectory() as tmp:
        opened: AbstractAsyncContextManager[Receiver] = open_receiver(Path(tmp), secret=secret)
        receiver = runner.run(opened.__aenter__())
        try:
            world = World(runner, receiver)
            task = runner.run(receiver.add_task(TOKEN, external_task_id="job-1"))
            receiver.provider.tasks["kt-1"] = kling_task("kt-1", "processing")
            world.task_id = task.id
            yield world
        finally:
            runner.run(opened.__aexit__(None, None, None))


@pytest.fixture(scope="module")
def unsigned() -> Iterator[World]:
    yield from _world(None)


@pytest.fixture(scope="module")
def signed() -> Iterator[World]:
    yield from _world(SECRET)


FUZZ = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(token=tokens, body=bodies, sent=headers)
def test_no_request_makes_the_receiver_fail(
    unsigned: World, token: str, body: bytes, sent: dict[str, str]
) -> None:
    unsigned.exchange(token, body, sent)


@FUZZ
@given(token=tokens, body=bodies, sent=headers, sign=st.booleans())
def test_no_request_makes_the_signing_receiver_fail(
    signed: World, token: str, body: bytes, sent: dict[str, str], sign: bool
) -> None:
    extra: dict[str, Any] = {}
    if sign:
        try:
            extra = signed_headers(body)
        except UnicodeDecodeError:  # the library signs text: such a body cannot be signed
            extra = {}
    signed.exchange(token, body, {**sent, **extra})
