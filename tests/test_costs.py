"""Costs before and after, through the service: every task carries its estimate; a budget
refuses a submission that would pass it (402) before anything is sent, queued tasks counted;
thresholds are announced once; what the provider billed is kept; ``GET /v1/costs`` and the
budgets' windows add it all up."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.registry import HandlerRegistry
from service.app import create_app
from service.bootstrap import open_services
from service.errors import BudgetExceeded, PriceUnknown
from service.kling.request import parse_submission
from service.kling.state import ProviderStatus, ProviderTaskState
from service.loopback import serve_on_loopback
from service.services import Services
from service.settings import load_settings
from service.submit.submission import accept, submit
from storage.memory.backend import MemoryStorage
from storage.records import TaskRecord
from tests.e2e.conftest import free_port

# kling-v3-omni, 5 s, pro (Kling's default mode), no sound: 5 x 0.8 = 4 units by the default table
BODY = {"model_name": "kling-v3-omni", "prompt": "a kite", "duration": "5", "aspect_ratio": "16:9"}
EACH = 4


@dataclass
class Provider:
    creates: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.creates.append(body)
        info = {"external_task_id": body["external_task_id"]}
        data = {"task_id": f"k{len(self.creates)}", "task_status": "submitted", "task_info": info}
        return httpx.Response(200, json={"code": 0, "message": "SUCCEED", "data": data})


World = tuple[Services, Provider]
MakeWorld = Callable[..., Awaitable[World]]


@pytest.fixture
async def make_world(tmp_path: Path) -> AsyncIterator[MakeWorld]:
    opened: list[Any] = []

    async def make(**overrides: Any) -> World:
        provider = Provider()
        settings = load_settings(
            isolated=True,
            database_url="memory://",
            media_dir=tmp_path / "media",
            kling_api_key="k",
            public_url="http://omnihook.test",
            kling_base_url="https://kling.test",
            **overrides,
        )
        context = open_services(
            settings,
            storage=MemoryStorage(),
            registry=HandlerRegistry(),
            transport=httpx.MockTransport(provider.handle),
        )
        opened.append(context)
        return await context.__aenter__(), provider

    yield make
    for context in reversed(opened):
        await context.__aexit__(None, None, None)


async def submit_one(services: Services, name: str, **fields: Any) -> TaskRecord:
    body = {**BODY, "external_task_id": name, **fields}
    return await submit(services, parse_submission(body, provider="kling"))


async def thresholds(services: Services, task_id: str) -> list[tuple[str, int]]:
    return [
        (e.data["budget"]["window"], e.data["budget"]["level"])
        for e in await services.storage.list_events(task_id)
        if e.type == "budget.threshold"
    ]


async def test_every_task_carries_its_estimate(make_world: MakeWorld) -> None:
    services, _ = await make_world()
    task = await submit_one(services, "a")
    assert task.estimate is not None
    assert (task.estimate["amount"], task.estimate["currency"]) == (str(EACH), "units")
    assert task.estimate["basis"]["mode"] == "pro"  # the default that applied, said


async def test_a_budget_refuses_past_its_limit_before_anything_is_sent(
    make_world: MakeWorld,
) -> None:
    services, provider = await make_world(budget_daily=str(2.5 * EACH))
    first = await submit_one(services, "a")
    second = await submit_one(services, "b")
    with pytest.raises(BudgetExceeded) as refused:
        await submit_one(services, "c")

    assert [c["external_task_id"] for c in provider.creates] == ["a", "b"]  # c never sent
    assert await services.storage.get_task("c") is None  # ...nor kept
    assert refused.value.as_dict()["spent"] == str(2 * EACH)
    assert refused.value.budget == "daily"
    window = refused.value.window
    assert await thresholds(services, first.id) == []  # 40 %
    assert await thresholds(services, second.id) == [(window, 50), (window, 80)]


async def test_queued_tasks_count_against_a_budget(make_world: MakeWorld) -> None:
    services, provider = await make_world(budget_daily=str(2 * EACH), provider_concurrency="1")
    await submit_one(services, "a")
    waiting = await submit_one(services, "b")
    assert waiting.status == "queued"
    with pytest.raises(BudgetExceeded):
        await submit_one(services, "c")
    assert len(provider.creates) == 1


async def test_per_key_budgets_count_each_value_apart(make_world: MakeWorld) -> None:
    services, _ = await make_world(budget_per_key=f"owner={1.5 * EACH}/day")
    await submit_one(services, "a1", metadata={"owner": "alice"})
    with pytest.raises(BudgetExceeded) as refused:
        await submit_one(services, "a2", metadata={"owner": "alice"})
    assert refused.value.budget == "owner/daily"
    await submit_one(services, "b1", metadata={"owner": "bob"})
    await submit_one(services, "n1")  # not under the budget
    await submit_one(services, "n2")


async def test_a_budget_cannot_judge_an_unpriceable_request(make_world: MakeWorld) -> None:
    services, provider = await make_world(budget_monthly="1000")
    with pytest.raises(PriceUnknown, match="4k"):
        await submit_one(services, "a", mode="4k")
    assert provider.creates == []
    unbounded, _ = await make_world()
    task = await submit_one(unbounded, "b", mode="4k")  # no budget: sent, no estimate
    assert task.estimate is None and task.status == "submitted"


async def test_what_the_provider_billed_is_kept_and_counts(make_world: MakeWorld) -> None:
    services, _ = await make_world(budget_daily=str(2 * EACH))
    first = await submit_one(services, "a")
    billed = ProviderTaskState(
        task_id="k1",
        status=ProviderStatus.FAILED,
        cost="1.5",
        balance_deduction="0.21",
        billing=({"type": "video", "amount": "1.5"},),
    )
    await accept(services, first.id, billed)
    kept = await services.storage.get_task(first.id)
    assert kept is not None and kept.cost == "1.5"
    assert kept.billing == {
        "final_unit_deduction": "1.5",
        "final_balance_deduction": "0.21",
        "billing": [{"type": "video", "amount": "1.5"}],
    }
    # billed 1.5 units instead of the estimated 4 (Kling bills in the table's units): room
    await submit_one(services, "b")
    with pytest.raises(BudgetExceeded):
        await submit_one(services, "c")


async def test_the_api_answers_402_and_sums_costs(tmp_path: Path) -> None:
    provider = Provider()
    port = free_port()
    settings = load_settings(
        isolated=True,
        database_url="memory://",
        media_dir=tmp_path / "media",
        kling_api_key="k",
        public_url=f"http://127.0.0.1:{port}",
        kling_base_url="https://kling.test",
        budget_daily=str(3 * EACH),
        budget_per_key=f"owner={10 * EACH}/month",
    )
    app = create_app(
        settings, storage=MemoryStorage(), transport=httpx.MockTransport(provider.handle)
    )
    async with serve_on_loopback(app, port=port) as url, httpx.AsyncClient(base_url=url) as api:
        for n, (owner, model) in enumerate(
            [("ann", "kling-v3-omni"), ("bob", "kling-v3-omni"), ("ann", "kling-video-o1")]
        ):
            body = {**BODY, "model_name": model, "metadata": {"owner": owner}}
            answer = await api.post("/v1/tasks", json={**body, "external_task_id": f"t{n}"})
            assert answer.status_code == 201, answer.text
            assert answer.json()["estimated_cost"]["currency"] == "units"
        refused = await api.post("/v1/tasks", json={**BODY, "external_task_id": "t9"})
        assert refused.status_code == 402
        assert refused.json()["error"] == "budget_exceeded"
        assert refused.json()["limit"] == str(3 * EACH)

        by_model = (await api.get("/v1/costs", params={"by": "model"})).json()
        assert [(g["key"], g["tasks"]) for g in by_model["groups"]] == [
            ("kling-v3-omni", 2),
            ("kling-video-o1", 1),
        ]
        total = by_model["total"]
        assert (total["tasks"], total["unpriced_tasks"]) == (3, 0)
        assert total["estimated"] == str(3 * EACH)  # o1 at pro, 5 s: the same 4 units
        by_owner = (await api.get("/v1/costs", params={"by": "metadata.owner"})).json()
        assert [(g["key"], g["tasks"]) for g in by_owner["groups"]] == [("ann", 2), ("bob", 1)]
        budgets = {(b["budget"], b["scope"]): b["spent"] for b in by_model["budgets"]}
        assert budgets == {
            ("daily", None): str(3 * EACH),
            ("owner/monthly", "ann"): str(2 * EACH),
            ("owner/monthly", "bob"): str(EACH),
        }
        bad = await api.get("/v1/costs", params={"by": "colour"})
        assert bad.status_code == 400

        metrics = (await api.get("/metrics")).text
        for line in (
            f'omnihook_cost_estimated{{currency="units",period="day"}} {3 * EACH}.0',
            f'omnihook_cost_spent{{currency="units",period="month"}} {3 * EACH}.0',
            f'omnihook_budget_limit{{currency="units",period="day"}} {3 * EACH}.0',
            'omnihook_tasks_in_flight{model="*"} 3.0',
            "omnihook_tasks_queued 0.0",
        ):
            assert line in metrics.splitlines(), line
