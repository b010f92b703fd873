"""Costs end to end against the simulated Kling account: the estimate made before sending
matches what the provider bills, and a daily budget refuses the submission that would pass it
(402), nothing sent for it."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.fake_kling import FakeKlingConfig
from tests.e2e.conftest import PipelineFactory

pytestmark = pytest.mark.e2e

EACH = 4  # kling-v3-omni, 5 s, pro: 0.8 units a second, by the table and by the simulator


async def test_estimates_match_the_bill_and_a_budget_holds(make_pipeline: PipelineFactory) -> None:
    pipeline = await make_pipeline(FakeKlingConfig(step_seconds=0.1), budget_daily=str(3 * EACH))
    answers = await asyncio.gather(
        *(pipeline.submit(prompt=f"take {n}", external_task_id=f"c-{n}") for n in range(3))
    )
    assert [a.status_code for a in answers] == [201] * 3, [a.text for a in answers]
    refused = await pipeline.submit(prompt="one more", external_task_id="c-9")
    assert refused.status_code == 402 and refused.json()["error"] == "budget_exceeded"

    finished = await asyncio.gather(*(pipeline.wait_finished(a.json()["id"]) for a in answers))
    for task in finished:
        assert task["estimated_cost"]["amount"] == str(EACH)
        assert task["billing"]["final_unit_deduction"] == str(EACH) == task["cost"]
    costs = (await pipeline.api.get("/v1/costs")).json()
    assert costs["comparable"] and costs["currency"] == "units"
    assert (costs["total"]["estimated"], costs["total"]["billed_units"]) == (str(3 * EACH),) * 2
    [daily] = costs["budgets"]
    assert (daily["spent"], daily["percent"]) == (str(3 * EACH), 100.0)
    events = [
        e["type"]
        for a in answers
        for e in (await pipeline.api.get(f"/v1/tasks/{a.json()['id']}/events")).json()["events"]
    ]
    assert events.count("budget.threshold") == 3  # 50, 80 and 100 %, each once
    async with httpx.AsyncClient(base_url=pipeline.fake_url, trust_env=False) as fake:
        simulated = (await fake.get("/_sim/tasks")).json()["tasks"]
    assert sorted(t["external_task_id"] for t in simulated) == ["c-0", "c-1", "c-2"]
