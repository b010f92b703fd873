"""Each seed page's create body validates as its page shows it, under its vendor's shape."""

from __future__ import annotations

import pytest

from service.errors import InvalidRequest
from service.kling.request import parse_submission
from tests.kling.seed_examples import NOT_AN_OMNI_MODEL, SEED_EXAMPLES, SeedExample

MODEL_FIELD = {"kling": "model_name", "newapi": "model", "apimodels": "model"}


@pytest.mark.parametrize("example", SEED_EXAMPLES, ids=lambda example: example.name)
def test_each_seed_example_validates(example: SeedExample) -> None:
    request = parse_submission(example.body, provider=example.provider)
    sent = request.provider_body(model_field=MODEL_FIELD[example.provider])
    # Nothing the caller wrote is lost or changed (new-api's multi-shot aside, whose dialect
    # is sent as it was written).
    for key, value in example.body.items():
        assert sent[MODEL_FIELD[example.provider] if key in ("model", "model_name") else key] == (
            value
        ), key
    # What is paid for is explicit: model, mode, sound, and a duration unless the input
    # video or the shots decide it.
    assert {MODEL_FIELD[example.provider], "mode", "sound"} <= sent.keys()
    if "video_list" not in sent and "multi_prompt" not in sent:
        assert "duration" in sent


def test_the_seed_example_with_a_non_omni_model_is_refused_by_name() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_submission(NOT_AN_OMNI_MODEL.body, provider=NOT_AN_OMNI_MODEL.provider)
    [problem] = caught.value.problems
    assert problem.field == "model"
    assert "kling-video-o1" in problem.message and "kling-v3-omni" in problem.message
