"""The directive parser, table-driven."""

from __future__ import annotations

import pytest

from service.fake_kling.scenario import Scenario, ScenarioError, parse_scenario


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["a cat on a skateboard"], Scenario()),
        (["[sim:fail]"], Scenario(fail_message="Image pixel is invalid")),
        (["x [SIM:Fail=Prompt Was Odd] y"], Scenario(fail_message="Prompt Was Odd")),
        (["[sim:reject=1301]"], Scenario(reject_code=1301)),
        (["[sim:duplicate][sim:reorder]"], Scenario(duplicate=True, reorder=True)),
        (["[sim:drop] [sim:early]"], Scenario(drop=True, early=True)),
        (["[sim:videos=4]", "[sim:delay=0.25]"], Scenario(videos=4, delay=0.25)),
        (["[sim:unsigned]"], Scenario(unsigned=True)),
        (["[sim:BadSig] [sim:early]"], Scenario(badsig=True, early=True)),
        (["[sim:images=2]"], Scenario(images=2)),
        (["[sim:images=0] [sim:videos=3]"], Scenario(videos=3)),
        (["[sim:media=cut]"], Scenario(media="cut")),
        (["[sim:media=EXPIRE]"], Scenario(media="expire")),
        (["[sim:media=slow]", "[sim:images=1]"], Scenario(media="slow", images=1)),
        ([], Scenario()),
    ],
)
def test_parse(texts: list[str], expected: Scenario) -> None:
    assert parse_scenario(texts) == expected


@pytest.mark.parametrize(
    "text",
    [
        "[sim:teleport]",
        "[sim:videos=0]",
        "[sim:videos=11]",
        "[sim:videos=two]",
        "[sim:delay=-1]",
        "[sim:reject=42]",
        "[sim:reject]",
        "[sim:drop=yes]",
        "[sim:unsigned][sim:badsig]",
        "[sim:badsig=1]",
        "[sim:images=11]",
        "[sim:images=-1]",
        "[sim:images]",
        "[sim:media=lost]",
        "[sim:media]",
    ],
)
def test_bad_directives_are_refused(text: str) -> None:
    with pytest.raises(ScenarioError):
        parse_scenario([text])


def test_flags_name_the_flag_directives_given() -> None:
    scenario = parse_scenario(["[sim:reorder][sim:unsigned][sim:videos=2][sim:fail]"])
    assert scenario.flags() == {"reorder", "unsigned"}
    assert Scenario().flags() == frozenset()


def test_asks_for_names_images_beside_the_flags() -> None:
    assert parse_scenario(["[sim:images=1][sim:early][sim:media=cut]"]).asks_for() == {
        "images",
        "early",
    }
    assert parse_scenario(["[sim:images=0]"]).asks_for() == frozenset()
