"""The console's Streams page in a real browser against the real stream stack (Kafka broker, Flink stream job,
service): a series with an injected shape change is replayed, and what the page draws is compared with the API.

The chart is read back from ECharts itself.  Screenshots go to the pytest tmp dir; with ``TDA_SCREENSHOTS=1``
the page at laptop width is copied to docs/ for the README, as tests/test_console.py does for the result page.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import LAPTOP, PHONE, Console, launch
from support.browser import missing_requirements as missing_browser
from support.service import REPO_ROOT, wait_for
from support.streams import N, StreamStack, events, missing_requirements, post, shape_change, windows_of

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.timeout(900)]

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip package playwright is not installed")
expect = playwright_api.expect
SOURCE = "console-shape-change"


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamStack]:
    missing = missing_browser(REPO_ROOT)
    if missing:
        _skip_or_fail(f"console tests need {', '.join(missing)} (make setup installs them)")
    reason = missing_requirements()
    if reason:
        _skip_or_fail(f"the stream stack cannot start: {reason}")
    with StreamStack(tmp_path_factory.mktemp("console-streams"), workers=1) as s:
        yield s


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        ctx = launch(pw, tmp_path_factory.mktemp("chromium-profile"), LAPTOP)
        yield ctx
        ctx.close()


def all_alerts(http: Any, source: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    since = None
    while True:
        page = http.get("/v1/alerts", params={"limit": 5000, **({"since": since} if since else {})}).json()
        out += [r for r in page["items"] if r["source_id"] == source]
        if not page["next_since"]:
            return out
        since = page["next_since"]


def test_streams_page_draws_the_scores_alerts_window_and_edits_the_spec(
    stack: StreamStack, browser: Any, tmp_path: Path
) -> None:
    client, http = stack.client(), stack.http()
    post(client, events(SOURCE, shape_change()))
    records = stack.wait_scores(http, SOURCE, windows_of(N))
    alerts = all_alerts(http, SOURCE)
    assert alerts, "the injected shape change raised no alert"

    console = Console(browser, stack.service.base_url, api_key=None)
    page = console.open("#/streams")
    row = page.locator(f'tr[data-source="{SOURCE}"]')
    expect(row).to_contain_text(str(len(records)))
    row.get_by_role("link", name=SOURCE).focus()  # by keyboard
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-chart="scores"][data-rendered="true"]')

    def drawn() -> dict[str, list[Any]] | None:
        series = console.chart_series("scores")
        return series if len(series["score"]) == len(records) else None

    series = wait_for(drawn, 30, "every window on the chart")
    assert [d["seq"] for d in series["score"]] == [r["seq"] for r in records]
    assert [d["value"][1] for d in series["score"]] == [r["score"] for r in records]
    assert [d["seq"] for d in series["alerts"]] == [a["seq"] for a in alerts]
    assert page.locator("ol.alerts li").count() == len(alerts)

    # Hovering an alert shows its reasons; clicking it shows the window's features and vectorization.
    first = alerts[0]
    x, y = console.point_on_page("scores", "alerts", series["alerts"][0]["value"])
    page.mouse.move(x, y)
    chart = page.locator('[data-chart="scores"]')
    expect(chart).to_contain_text(f"window {first['seq']}")
    assert first["reasons"] and first["reasons"][0]["feature"] in chart.inner_text()
    page.mouse.click(x, y)
    window = page.locator(f'section.window[data-seq="{first["seq"]}"]')
    window.wait_for()
    shown = window.locator("tr[data-feature]").evaluate_all("rows => rows.map((r) => r.dataset.feature)")
    assert shown == list(first["features"])
    assert {r["feature"] for r in first["reasons"]} <= set(
        window.locator("tr.reason").evaluate_all("rows => rows.map((r) => r.dataset.feature)")
    )
    page.wait_for_selector('[data-chart="vector"][data-rendered="true"]')
    vector = console.chart_series("vector")
    assert [v for s in vector.values() for _, v in s] == first["vector"]
    page.get_by_role("button", name="Next window").click()
    page.locator(f'section.window[data-seq="{first["seq"] + 1}"]').wait_for()

    page.mouse.move(0, 0)
    console.hide_tooltip("scores")
    page.wait_for_timeout(500)  # its fade-out
    shots = tmp_path / "shots"
    shots.mkdir()
    page.screenshot(path=str(shots / "streams-laptop.png"), full_page=True)

    # The spec form: a new threshold goes in with a PUT; the stream then has a newer version.
    before = http.get(f"/v1/streams/{SOURCE}").json()
    page.fill("#spec-scoring-threshold", "0.9999")
    page.get_by_role("button", name="Save spec").click()
    expect(page.locator(".spec-form .notice")).to_contain_text("Saved: version")
    after = http.get(f"/v1/streams/{SOURCE}").json()
    assert not after["default"] and after["spec"]["version"] > before["spec"]["version"]
    assert after["spec"]["scoring"]["threshold"] == 0.9999
    assert after["spec"]["window"] == before["spec"]["window"]  # the rest as it was
    assert f"Version {after['spec']['version']}" in page.get_by_test_id("spec-version").inner_text()
    # An invalid spec: the API's detail is shown.
    page.fill("#spec-window-slide", "1000")
    page.get_by_role("button", name="Save spec").click()
    expect(page.locator(".spec-form [role=alert]")).to_contain_text("larger than window.size")

    phone = Console(browser, stack.service.base_url, api_key=None, viewport=PHONE)
    ppage = phone.open(f"#/streams/{SOURCE}")
    ppage.wait_for_selector('[data-chart="scores"][data-rendered="true"]')
    assert ppage.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    phone.close()
    console.close()
    if os.environ.get("TDA_SCREENSHOTS") == "1":
        docs = REPO_ROOT / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copy(shots / "streams-laptop.png", docs / "console-streams.png")
