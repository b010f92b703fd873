"""Every seed page's create body, as its page shows it, runs to ``succeeded`` through omnihook
against the simulator speaking its vendor's shape; what was bought is in the stored request
and is what the simulated provider read."""

from __future__ import annotations

import asyncio

import pytest

from service.fake_kling import FakeKlingConfig
from tests.e2e.conftest import PipelineFactory
from tests.kling.seed_examples import NOT_AN_OMNI_MODEL, SEED_EXAMPLES

pytestmark = pytest.mark.e2e

PROVIDERS = sorted({example.provider for example in SEED_EXAMPLES})
MODEL_FIELD = {"kling": "model_name", "newapi": "model", "apimodels": "model"}
DEFAULT_MODE = {"kling": "pro", "newapi": "std", "apimodels": "std"}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_each_seed_example_runs_to_succeeded(
    make_pipeline: PipelineFactory, provider: str
) -> None:
    pipeline = await make_pipeline(FakeKlingConfig(step_seconds=0.1, profile=provider))
    examples = [example for example in SEED_EXAMPLES if example.provider == provider]
    answers = [await pipeline.api.post("/v1/tasks", json=example.body) for example in examples]
    for example, answer in zip(examples, answers, strict=True):
        assert answer.status_code == 201, (example.name, answer.text)
    tasks = await asyncio.gather(
        *(pipeline.wait_finished(answer.json()["id"]) for answer in answers)
    )
    for example, task in zip(examples, tasks, strict=True):
        assert task["status"] == "succeeded", example.name
        stored = task["request"]
        assert stored["mode"] == example.body.get("mode", DEFAULT_MODE[provider]), example.name
        assert stored["sound"] == example.body.get("sound", "off"), example.name
        assert MODEL_FIELD[provider] in stored, example.name
        simulated = await pipeline.simulated(task)
        assert simulated["model_name"] == stored[MODEL_FIELD[provider]], example.name
        assert simulated["mode"] == stored["mode"], example.name
        if "duration" in stored:
            assert simulated["duration"] == stored["duration"], example.name
        if "multi_prompt" in stored:
            shots = sum(int(shot["duration"]) for shot in stored["multi_prompt"])
            assert simulated["duration"] == str(shots), example.name


async def test_the_non_omni_model_of_a_seed_example_is_refused_before_sending(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(FakeKlingConfig(step_seconds=0.1, profile="newapi"))
    answer = await pipeline.api.post("/v1/tasks", json=NOT_AN_OMNI_MODEL.body)
    assert answer.status_code == 422, answer.text
    assert "model" in answer.text
    assert (await pipeline.api.get("/v1/tasks")).json()["tasks"] == []
