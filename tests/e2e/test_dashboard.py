"""The dashboard in headless Chromium (Debian's, driven by Playwright): it loads with a token, every line's three
charts draw data with anomaly markers, an alert is acknowledged, the console stays clean; a screenshot is kept."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from plantwatch.adapters.duckdb_alerts import DuckDBAlerts
from plantwatch.adapters.duckdb_drift import DuckDBDrift
from plantwatch.adapters.duckdb_queries import DuckDBQueries
from plantwatch.adapters.duckdb_store import DuckDBStore
from plantwatch.api.app import create_app
from plantwatch.api.auth import LocalTokens, create_token
from plantwatch.contract.batch import ModelRef
from plantwatch.contract.summaries import ScoreSummaryMessage
from plantwatch.services.drift_reports import DriftConfig
from tests.api_data import KEY, alert_ref, alerts, batches
from tests.conftest import REPO, free_port, require_binary, require_module, wait_for

#: ids of the API test data's alerts, as gateways make them
A0 = alert_ref("plant-a", 0)

pytestmark = pytest.mark.e2e
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, DuckDBStore]]:
    """The API and dashboard on uvicorn over readings that end now (the charts show the last 15 minutes)."""
    store = DuckDBStore(Path(tmp_path_factory.mktemp("dashboard")) / "db.duckdb")
    store.write(batches(end_ms=int(time.time() * 1000), span_ms=1800_000))
    store.record_alerts(alerts())
    drift = DuckDBDrift(store)
    for summary in summaries(int(time.time() * 1000)):
        drift.record_summary(summary)
    app = create_app(
        DuckDBQueries(store),
        alerts=DuckDBAlerts(store),
        auth=LocalTokens(KEY),
        drift=drift,
        drift_config=DriftConfig(window=2, min_scores=100),
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=15, what="uvicorn")
    yield f"http://127.0.0.1:{port}", store
    server.should_exit = True
    thread.join(timeout=10)


def summaries(end_ms: int) -> list[ScoreSummaryMessage]:
    """Two minutes of score summaries per plant-a line: line-1 scores like its training, line-2 does not."""
    reference = [0.0] * 7 + [0.05, 0.56, 0.33, 0.05, 0.01] + [0.0] * 8
    out = []
    for line, version, counts in (
        ("line-1", "1", [int(1000 * q) for q in reference]),
        ("line-2", "2", [0] * 15 + [1000] + [0] * 4),
    ):
        for k in (2, 1):
            start = end_ms - k * 60_000
            out.append(
                ScoreSummaryMessage(
                    gateway_id=f"gw-plant-a-{line}",
                    plant="plant-a",
                    line=line,
                    model=ModelRef(name="original-thresholds", version=version),
                    start_ms=start,
                    end_ms=start + 60_000,
                    counts=counts,
                    mean=0.4,
                    p99=0.6,
                    reference=reference,
                )
            )
    return out


def test_dashboard_shows_lines_charts_alerts_and_acknowledges(served: tuple[str, DuckDBStore]) -> None:
    chromium = require_binary("chromium")
    require_module("playwright")
    from playwright.sync_api import sync_playwright

    url, store = served
    token = create_token(KEY, plants=["plant-a"], subject="shift-lead")
    problems: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.goto(f"{url}/#token={token}")
            page.wait_for_selector("body[data-ready=true]", timeout=20_000)

            # GIVEN plant-a's token THEN the overview has its two lines, and only plant-a is offered
            assert page.locator("#plant option").all_inner_texts() == ["plant-a"]
            assert page.locator("#overview .card").count() == 2
            # AND each line has three charts, each drawing every asset's series with data
            charts = page.locator(".chart")
            assert charts.count() == 6
            for i in range(6):
                chart = charts.nth(i)
                assert int(chart.get_attribute("data-points") or 0) > 50
                assert chart.locator("polyline.series").count() >= 2
            assert page.locator("circle.anomaly-marker").count() > 0
            # AND the model versions per line are listed
            assert page.locator("#models tbody tr").count() == 2
            # AND each line's drift: line-1 stable against its training scores, line-2 drifted
            cells = page.locator("#models td.drift")
            assert [cells.nth(i).get_attribute("data-drift-status") for i in range(2)] == ["ok", "drifted"]
            assert all("PSI" in t for t in cells.all_inner_texts())
            assert float(cells.nth(1).get_attribute("data-psi") or 0) > 0.25

            # WHEN the open alert is acknowledged THEN the list shows who did it, and the API recorded it
            selector = f'#alerts tr[data-alert-id="{A0}"]'
            row = page.locator(selector)
            row.locator("button.ack").click()
            page.wait_for_function(
                f"document.querySelector({json.dumps(selector + ' .acked')}).textContent.includes('shift-lead')",
                timeout=10_000,
            )
            assert row.locator("button.ack").count() == 0
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    [acked] = [a for a in DuckDBAlerts(store).alerts(scope(), state=None, limit=10) if a["alert_id"] == A0]
    assert acked["acknowledged_by"] == "shift-lead"
    assert problems == []
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def scope() -> Any:
    from plantwatch.services.analytics import Scope

    return Scope(subject="t", plants=("plant-a",))
