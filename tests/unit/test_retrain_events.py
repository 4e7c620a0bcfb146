"""Which plant and line an event asks the retraining job for, and the job's configuration from its environment."""

from __future__ import annotations

import pytest

from plantwatch.adapters.aws_retrain import RetrainSettings
from plantwatch.services.retraining import RetrainTarget, event_target
from tests.helpers import drift_event

BASE = {
    "PLANTWATCH_ARCHIVE_BUCKET": "archive",
    "PLANTWATCH_REGISTRY_BUCKET": "models",
    "PLANTWATCH_ARTIFACT_BUCKET": "artifacts",
    "PLANTWATCH_THING_GROUP_ARN_TEMPLATE": "arn:aws:iot:eu-west-1:123456789012:thinggroup/pw-{plant}-{line}",
    "PLANTWATCH_LINES": "line-1, line-2",
    "PLANTWATCH_PLANTS": "plant-a,plant-b",
}


def test_the_stream_processors_drift_event_names_its_plant_and_line() -> None:
    event = drift_event("plant-b", "line-2")
    assert event_target(event) == RetrainTarget(plant="plant-b", line="line-2")


def test_a_scheduled_event_names_no_plant_and_a_replayed_one_does() -> None:
    assert event_target({"source": "aws.events", "time": "2026-11-27T00:00:00Z", "detail": {}}) is None
    assert event_target({"source": "plantwatch.retrain", "plant": "plant-c"}) == RetrainTarget(plant="plant-c")
    assert event_target({"plant": "plant-c", "line": "line-9"}) == RetrainTarget(plant="plant-c", line="line-9")


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ({"source": "plantwatch.drift", "line": "line-1"}, "valid plant"),  # would retrain some default plant
        ({"source": "plantwatch.drift", "plant": "plant-a"}, "valid line"),  # would retrain every line
        ({"source": "plantwatch.drift", "plant": "plant a; drop", "line": "line-1"}, "valid plant"),
        ({"plant": "../plant-a"}, "valid plant"),
        ({"plant": "plant-a", "line": ""}, "valid line"),
        ({"plant": "plant-a\n"}, "valid plant"),
        ({"line": "line-1"}, "name its plant"),
    ],
)
def test_an_event_that_names_no_valid_target_is_refused(event: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        event_target(event)


def test_settings_read_the_configured_plants_lines_and_failure_queue() -> None:
    settings = RetrainSettings.from_env({**BASE, "PLANTWATCH_FAILURE_QUEUE_URL": "https://sqs.example/q"})
    assert settings.plants == ["plant-a", "plant-b"]
    assert settings.lines == ["line-1", "line-2"]
    # every configured plant has a group per line; a plant outside the list has none
    assert (settings.lines_of("plant-b"), settings.lines_of("plant-c")) == (["line-1", "line-2"], [])
    assert (
        settings.thing_group_arn("plant-b", "line-1")
        == "arn:aws:iot:eu-west-1:123456789012:thinggroup/pw-plant-b-line-1"
    )
    assert settings.failure_queue_url == "https://sqs.example/q"
    assert RetrainSettings.from_env(BASE).failure_queue_url == ""


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"PLANTWATCH_PLANTS": None}, "plants"),  # no quiet default plant
        ({"PLANTWATCH_PLANTS": " , "}, "plants"),
        ({"PLANTWATCH_PLANTS": "plant-a,plant b"}, "plants"),
        ({"PLANTWATCH_LINES": None}, "lines"),  # no unchecked deployment targets
        ({"PLANTWATCH_LINES": "line-1,line/2"}, "lines"),
        # one group per line name across plants would send a plant's model to another plant's gateways
        ({"PLANTWATCH_THING_GROUP_ARN_TEMPLATE": "arn:aws:iot:eu-west-1:1:thinggroup/pw-{line}"}, "plant"),
        ({"PLANTWATCH_THING_GROUP_ARN_TEMPLATE": "arn:aws:iot:eu-west-1:1:thinggroup/pw-{plant}-{line}-{x}"}, "plant"),
        # a line's group runs one model: several asset classes' models would replace each other on every run
        ({"PLANTWATCH_TRAIN": '{"scope": "asset_class"}'}, "scope"),
    ],
)
def test_settings_without_valid_plants_or_lines_are_refused(change: dict[str, str | None], named: str) -> None:
    env = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(ValueError, match=named):
        RetrainSettings.from_env(env)
