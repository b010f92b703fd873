"""``[sim:lose_answer]`` and ``[sim:lookup=...]`` on a real loopback server, in each profile:
the create lands and runs while its answer breaks off; lookups by external id find it only in
the forms the scenario allows."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.fake_kling import FakeKlingConfig, create_fake_kling_app
from service.loopback import serve_on_loopback

from .helpers import AUTH, CREATE, body

APIMODELS_CREATE = "/api/v1/video/generations"


def create_body(profile: str, prompt: str) -> dict[str, object]:
    fields = body(prompt, external_task_id="ext-lost")
    if profile != "kling":
        fields["model"] = fields.pop("model_name")
    return fields


@pytest.mark.parametrize("profile", ["kling", "newapi", "apimodels"])
async def test_a_lost_answer_breaks_off_but_the_task_runs(profile: str) -> None:
    app = create_fake_kling_app(FakeKlingConfig(step_seconds=0.02, profile=profile))
    path = APIMODELS_CREATE if profile == "apimodels" else CREATE
    async with (
        serve_on_loopback(app) as base_url,
        httpx.AsyncClient(base_url=base_url, headers=AUTH, timeout=10) as client,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(path, json=create_body(profile, "a cat [sim:lose_answer]"))
        async with asyncio.timeout(10):
            while True:
                tasks = (await client.get("/_sim/tasks")).json()["tasks"]
                if tasks and tasks[0]["task_status"] == "succeed":
                    break
                await asyncio.sleep(0.05)
        assert len(tasks) == 1 and tasks[0]["external_task_id"] == "ext-lost"
        # Sent again, it is refused: the external id is taken by the task that exists.
        again = await client.post(path, json=create_body(profile, "a cat [sim:lose_answer]"))
        assert again.status_code == 400 and "already exists" in again.text
        assert len((await client.get("/_sim/tasks")).json()["tasks"]) == 1


@pytest.mark.parametrize(
    ("form", "path_finds", "query_finds", "list_names_it"),
    [
        ("path", True, True, True),
        ("query", False, True, True),
        ("list", False, False, True),
        ("none", False, False, False),
    ],
)
async def test_lookup_forms_by_external_id(
    form: str, path_finds: bool, query_finds: bool, list_names_it: bool
) -> None:
    app = create_fake_kling_app(FakeKlingConfig(step_seconds=0.02))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://sim", headers=AUTH) as client,
    ):
        created = await client.post(CREATE, json=create_body("kling", f"x [sim:lookup={form}]"))
        task_id = created.json()["data"]["task_id"]
        by_path = await client.get(f"{CREATE}/ext-lost")
        assert (by_path.status_code == 200) is path_finds
        if not path_finds:
            assert by_path.json()["code"] == 1203
        assert (await client.get(f"{CREATE}/{task_id}")).status_code == 200  # its own id: always
        by_query = await client.get(CREATE, params={"external_task_id": "ext-lost"})
        assert (by_query.status_code == 200) is query_finds
        if query_finds:
            assert by_query.json()["data"]["task_id"] == task_id
        listed = (await client.get(CREATE, params={"pageSize": "10"})).json()["data"]
        assert [item["task_id"] for item in listed] == [task_id]
        assert (listed[0]["task_info"] == {"external_task_id": "ext-lost"}) is list_names_it


async def test_a_bad_lookup_form_is_refused() -> None:
    app = create_fake_kling_app(FakeKlingConfig(step_seconds=0.02))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://sim", headers=AUTH) as client,
    ):
        refused = await client.post(CREATE, json=body("x [sim:lookup=sideways]"))
        assert refused.status_code == 400 and refused.json()["code"] == 1201
