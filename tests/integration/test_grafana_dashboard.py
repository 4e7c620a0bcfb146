"""The Grafana dashboard for Amazon Managed Grafana's Timestream data source: every query filters on the chosen
plant and the time range, is one statement, and (macros expanded as the plugin does) answers on the fake."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.api_data import filled_store
from tests.conftest import REPO
from tests.fakes.timestream_query import FakeTimestreamQuery
from tests.helpers import NOW_MS

DASHBOARD = json.loads((REPO / "cloud/grafana/plantwatch-lines.json").read_text())
DB, TABLE = "smart_manufacturing_iot_analytics_platform_sensor_database", "sensor_readings"


def expand(sql: str, plant: str = "plant-a", lines: tuple[str, ...] = ("line-1", "line-2")) -> str:
    """Macros and variables as the plugin and Grafana replace them."""
    sql = sql.replace("$__database", f'"{DB}"').replace("$__table", f'"{TABLE}"')
    sql = sql.replace(
        "$__timeFilter", f"time BETWEEN from_milliseconds({NOW_MS - 3_600_000}) AND from_milliseconds({NOW_MS})"
    )
    sql = sql.replace("$__interval_ms", "60000").replace("${plant}", plant)
    return sql.replace("${line:singlequote}", ", ".join(f"'{line}'" for line in lines))


def targets() -> list[dict[str, Any]]:
    return [t for panel in DASHBOARD["panels"] for t in panel["targets"]]


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> FakeTimestreamQuery:
    fake = FakeTimestreamQuery(DB, TABLE)
    fake.load(filled_store(Path(tmp_path_factory.mktemp("grafana")) / "db.duckdb"))
    return fake


def test_every_panel_query_is_plant_and_time_filtered() -> None:
    assert len(targets()) >= 7
    for target in targets():
        assert target["datasource"]["type"] == "grafana-timestream-datasource"
        assert "plant = '${plant}'" in target["rawQuery"] and "$__timeFilter" in target["rawQuery"]
        FakeTimestreamQuery.check(expand(target["rawQuery"]))


def test_every_panel_query_answers_with_the_plants_data(fake: FakeTimestreamQuery) -> None:
    for target in targets():
        page = fake.query(QueryString=expand(target["rawQuery"]))
        assert page["Rows"], target["rawQuery"]
        text = json.dumps(page)
        assert "plant-b" not in text
    series = fake.query(QueryString=expand(DASHBOARD["panels"][3]["targets"][0]["rawQuery"]))
    assert len(series["Rows"]) == 4  # the temperature sensors of plant-a: two lines x two assets
    assert re.search(r"plant-a\.line-1\.press-1\.temperature", json.dumps(series))
