"""The web console in a real browser (Debian's chromium driven by Playwright) against the real service.

One server for the module, with an API key, so the console's key prompt is part of the flow. The charts are
read back from ECharts itself and compared with ``GET /v1/jobs/{id}/result``. Screenshots are written under
the pytest tmp dir; with ``TDA_SCREENSHOTS=1`` the result page's two (laptop and phone width) are copied to
docs/ for the README.
"""

from __future__ import annotations

import io
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support.browser import LAPTOP, PHONE, Console, launch, missing_requirements
from support.service import REPO_ROOT, ServiceProcess, wait_done, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]

API_KEY = "console-test-key"
MAX_MAXDIM = 2
MAX_UPLOAD = 1_500_000  # also the largest part of an upload session: a 4.8 MB .npy goes in 4 parts
DATASETS = Path(os.environ.get("TDA_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip package playwright is not installed")
expect = playwright_api.expect


def _require_browser() -> None:
    missing = missing_requirements(REPO_ROOT)
    if missing:
        reason = f"console tests need {', '.join(missing)} (make setup installs chromium and the console libraries)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    _require_browser()
    svc = ServiceProcess(
        tmp_path_factory.mktemp("console-service"),
        api_key=API_KEY,
        max_maxdim=MAX_MAXDIM,
        max_upload_bytes=MAX_UPLOAD,
    )
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def http(service: ServiceProcess) -> Iterator[httpx.Client]:
    with service.client() as c:
        yield c


@pytest.fixture(scope="module")
def browser(service: ServiceProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh user data dir
    with playwright_api.sync_playwright() as pw:
        ctx = launch(pw, profile, LAPTOP)
        yield ctx
        ctx.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-screenshots")


@pytest.fixture
def console(browser: Any, service: ServiceProcess, shots: Path, request: pytest.FixtureRequest) -> Iterator[Console]:
    c = Console(browser, service.base_url, api_key=API_KEY)
    yield c
    if not c.page.is_closed() and c.page.url.startswith(service.base_url):  # each page as the test left it
        c.page.screenshot(path=str(shots / f"{request.node.name}.png"), full_page=True)
    c.close()


def cloud_file(tmp_path: Path) -> Path:
    """dragon_2000.txt from the shared data sets, else a noisy circle in R^3 written as text."""
    dragon = DATASETS / "dragon_2000.txt"
    if dragon.exists():
        return dragon
    rng = np.random.default_rng(7)
    t = rng.uniform(0, 2 * np.pi, 400)
    X = np.c_[np.cos(t), np.sin(t), 0.1 * rng.normal(size=400)] + 0.05 * rng.normal(size=(400, 3))
    path = tmp_path / "circle_400.txt"
    np.savetxt(path, X)
    return path


def pairs_of(result: dict[str, Any], k: int) -> list[tuple[float, float]]:
    return sorted((b, math.inf if d is None else d) for b, d in result["diagrams"][k])


def drawn_pairs(series: dict[str, list[Any]], prefix: str) -> list[tuple[float, float]]:
    pts = series.get(prefix, []) + series.get(f"{prefix}-essential", [])
    return sorted((b, math.inf if d is None else d) for b, d in pts)


def upload_points(http: httpx.Client, X: np.ndarray, name: str) -> str:
    r = http.post("/v1/pointclouds", json={"points": X.tolist(), "name": name})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def finished_job(http: httpx.Client, pc_id: str, **params: Any) -> str:
    r = http.post("/v1/jobs", json={"pointcloud_id": pc_id, "params": params})
    assert r.status_code == 202, r.text
    job_id = str(r.json()["id"])
    assert wait_done(http, job_id)["status"] == "succeeded"
    return job_id


# --------------------------------------------------------------------------- serving


def test_static_files_need_no_key_and_the_api_does(service: ServiceProcess) -> None:
    with httpx.Client(base_url=service.base_url) as anon:
        page = anon.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self' 'sha256-" in page.headers["content-security-policy"]
        for path in ("/console/js/main.js", "/console/vendor/echarts.js", "/console/vendor/preact.js"):
            r = anon.get(path)
            assert r.status_code == 200 and "javascript" in r.headers["content-type"], path
            assert anon.get(path, headers={"If-None-Match": r.headers["etag"]}).status_code == 304
        assert anon.get("/console/style.css").headers["content-type"].startswith("text/css")
        # Nothing outside the console folder, however the path is spelled.
        for path in ("/console/../routes/console.py", "/console/%2e%2e/app.py", "/console/..%2f..%2fsettings.py"):
            assert anon.get(path).status_code == 404, path
        assert anon.get("/console/nope.js").json() == {"detail": "Not Found"}
        r = anon.get("/v1/pointclouds")
        assert r.status_code == 401 and "API key" in r.json()["detail"]
        # The console's routes stay out of the API's schema.
        paths = anon.get("/openapi.json").json()["paths"]
        assert "/" not in paths and not any(p.startswith("/console") for p in paths)
        assert "get" in paths["/v1/pointclouds"]


def test_pointcloud_list_is_newest_first_and_paginated(http: httpx.Client) -> None:
    before = http.get("/v1/pointclouds", params={"limit": 500}).json()["total"]
    ids = [upload_points(http, np.eye(3) * (i + 1), f"list-{i}") for i in range(5)]
    page = http.get("/v1/pointclouds", params={"limit": 3}).json()
    assert page["total"] == before + 5 and page["limit"] == 3 and page["offset"] == 0
    assert [p["id"] for p in page["items"]] == ids[::-1][:3]
    rest = http.get("/v1/pointclouds", params={"limit": 3, "offset": 3}).json()
    assert [p["id"] for p in rest["items"]][:2] == ids[::-1][3:]
    first = page["items"][0]
    assert first["n_points"] == 3 and first["dim"] == 3 and first["name"] == "list-4" and first["source"] == "json"
    assert http.get("/v1/pointclouds", params={"limit": 0}).status_code == 422


def test_without_its_libraries_the_console_says_to_run_make_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No blank page when `make setup` has not fetched the libraries: GET / says what to do (503)."""
    from starlette.testclient import TestClient

    from tda_ray.service.http.app import create_app
    from tda_ray.service.http.routes import console
    from tda_ray.service.jobs.service import JobService
    from tda_ray.service.settings import Settings

    bare = tmp_path / "console"
    bare.mkdir()
    shutil.copy(console.CONSOLE_DIR / "index.html", bare / "index.html")
    monkeypatch.setattr(console, "CONSOLE_DIR", bare)
    svc = JobService(Settings(database_url=f"sqlite:///{tmp_path / 'db'}", storage_root=str(tmp_path / "st")))
    try:
        with TestClient(create_app(svc, None)) as client:  # type: ignore[arg-type]
            r = client.get("/")
            assert r.status_code == 503 and "make setup" in r.text and "echarts.js" in r.text
    finally:
        svc.close()


def test_pointcloud_list_index_is_added_to_an_older_database(tmp_path: Path) -> None:
    """A store made before GET /v1/pointclouds gets the created_at index when opened; the list works."""
    import sqlalchemy as sa

    from tda_ray.service.store import Store
    from tda_ray.service.store.tables import metadata

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        for index in metadata.tables["pointclouds"].indexes:
            conn.execute(sa.text(f"DROP INDEX {index.name}"))
    assert not sa.inspect(engine).get_indexes("pointclouds")
    engine.dispose()
    store = Store(url, str(tmp_path / "storage"))
    try:
        indexed = [i["column_names"] for i in sa.inspect(store.engine).get_indexes("pointclouds")]
        assert ["created_at"] in indexed
        made = [store.create_pointcloud(np.ones((2, 2)) * i, name=str(i), source="json").id for i in range(3)]
        items, total = store.list_pointclouds(limit=2, offset=1)
        assert total == 3 and [p.id for p in items] == made[::-1][1:]
    finally:
        store.close()


# --------------------------------------------------------------------------- the flow in the browser


def test_key_prompt_upload_run_and_the_diagram_drawn_is_the_result(
    browser: Any, service: ServiceProcess, http: httpx.Client, tmp_path: Path, shots: Path
) -> None:
    console = Console(browser, service.base_url, api_key=None)
    page = console.open("#/data")
    # The list answers 401: the console asks for the key, then goes on.
    page.wait_for_selector("dialog.key-dialog[open]")
    page.get_by_role("textbox", name="API key").fill(API_KEY)
    page.get_by_role("button", name="Use key").click()
    page.wait_for_selector("dialog.key-dialog[open]", state="detached")
    page.get_by_role("heading", name="Point clouds").wait_for()

    path = cloud_file(tmp_path)
    console.drop_file("[data-testid=dropzone]", path)
    page.wait_for_selector(".upload[data-phase=done]", timeout=60_000)
    page.get_by_role("link", name="New job on it").click()
    page.wait_for_selector("#param-maxdim")
    page.fill("#param-maxdim", "1")
    page.get_by_role("button", name="Run job").click()
    job_id = page.wait_for_selector(".notice [data-job]").get_attribute("data-job")
    assert job_id
    page.locator(".notice a").click()
    page.wait_for_selector('[data-chart="diagram"][data-rendered="true"]', timeout=120_000)

    result = http.get(f"/v1/jobs/{job_id}/result").json()
    assert result["n_points"] == len(np.loadtxt(path)) and result["params"]["maxdim"] == 1
    diagram = console.chart_series("diagram")
    for k in range(len(result["diagrams"])):
        assert drawn_pairs(diagram, f"H{k}") == pairs_of(result, k), f"H{k} drawn differs from the result"
    # Barcode: one bar per pair of the dimension shown (H1); Betti curve ends at the essential classes.
    page.wait_for_selector('[data-chart="barcode"][data-rendered="true"]')
    bars = console.chart_series("barcode")["H1-bars"]
    assert sorted((b, math.inf if d is None else d) for b, d in bars) == pairs_of(result, 1)
    betti = console.chart_series("betti")
    for k, essential in enumerate(result["betti"]):
        assert betti[f"betti-H{k}"][-1][1] == essential
    # The summary table shows the API's numbers.
    for k, n in enumerate(result["n_pairs"]):
        assert page.locator(f'tr[data-dim="{k}"] td').first.inner_text().replace(",", "") == str(n)

    # Hovering a point shows its birth, death and persistence.
    b, d = max(result["diagrams"][1], key=lambda p: p[1] - p[0])
    x, y = console.point_on_page("diagram", "H1", [b, d])
    page.mouse.move(x, y)
    tip = page.locator('[data-chart="diagram"]').get_by_text("persistence")
    tip.wait_for()
    text = page.locator('[data-chart="diagram"]').inner_text()
    assert "H1" in text and "birth" in text and "death" in text

    # Downloads: the result JSON is the API's.
    with page.expect_download() as dl:
        page.get_by_role("button", name="Result JSON").click()
    assert dl.value.suggested_filename.endswith(".json")
    with page.expect_download() as svg:
        page.get_by_role("button", name="Diagram SVG").click()
    assert Path(svg.value.path()).read_bytes().lstrip().startswith((b"<?xml", b"<svg"))

    page.mouse.move(0, 0)
    page.screenshot(path=str(shots / "result-laptop.png"), full_page=True)
    phone = Console(browser, service.base_url, api_key=API_KEY, viewport=PHONE)
    ppage = phone.open(f"#/job/{job_id}")
    ppage.wait_for_selector('[data-chart="diagram"][data-rendered="true"]', timeout=60_000)
    # Nothing wider than the phone: tables scroll inside their boxes, charts fit.
    assert ppage.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    box = ppage.locator('[data-chart="diagram"]').bounding_box()
    assert box is not None and 200 < box["width"] <= PHONE["width"]
    ppage.screenshot(path=str(shots / "result-phone.png"), full_page=True)
    phone.close()
    console.close()
    if os.environ.get("TDA_SCREENSHOTS") == "1":
        docs = REPO_ROOT / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copy(shots / "result-laptop.png", docs / "console-result.png")
        shutil.copy(shots / "result-phone.png", docs / "console-result-phone.png")


def test_job_form_is_the_registry_schema(console: Console, http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()["components"]["schemas"]["JobParams"]
    page = console.open("#/jobs")
    page.wait_for_selector("fieldset [data-field]")
    shown = page.eval_on_selector_all("fieldset [data-field]", "els => els.map((e) => e.dataset.field)")
    assert shown == list(schema["properties"])
    for name, prop in schema["properties"].items():
        label = page.locator(f'[data-field="{name}"] label').inner_text()
        assert label.startswith(prop["title"])
    # landmarks is a count, "auto" or none: a choice of the three.
    options = page.locator('[data-field="landmarks"] select option').all_inner_texts()
    assert sorted(options) == sorted(["none", "auto", "an integer"])


def test_api_error_shows_its_detail(console: Console, http: httpx.Client) -> None:
    pc = upload_points(http, np.random.default_rng(1).normal(size=(30, 2)), "error-case")
    body = {"pointcloud_id": pc, "algorithm": "vietoris_rips", "params": {"maxdim": MAX_MAXDIM + 1, "coeff": 2}}
    expected = http.post("/v1/jobs", json=body)
    assert expected.status_code == 422
    page = console.open(f"#/jobs?pc={pc}")
    page.wait_for_selector("#param-maxdim")
    page.fill("#param-maxdim", str(MAX_MAXDIM + 1))
    page.get_by_role("button", name="Run job").click()
    alert = page.locator(".job-form [role=alert]")
    alert.wait_for()
    assert expected.json()["detail"] in alert.inner_text()
    assert alert.inner_text().startswith("422")
    # A validation error list (coeff not prime) comes out as "field: message" lines.
    page.fill("#param-maxdim", "1")
    page.fill("#param-coeff", "4")
    page.get_by_role("button", name="Run job").click()
    expect(alert).to_contain_text("coeff")
    detail = http.post("/v1/jobs", json={**body, "params": {"maxdim": 1, "coeff": 4}}).json()["detail"]
    assert detail[0]["msg"] in alert.inner_text()


def test_cancel_from_the_job_list(console: Console, http: httpx.Client) -> None:
    pc = upload_points(http, np.random.default_rng(3).normal(size=(3500, 3)), "long")
    jobs = [http.post("/v1/jobs", json={"pointcloud_id": pc, "params": {"maxdim": 1}}).json() for _ in range(3)]
    page = console.open("#/jobs")
    target = jobs[-1]["id"]  # queued or running: both can be cancelled
    row = page.locator(f'tr[data-id="{target}"]')
    row.get_by_role("button", name="Cancel").click()
    page.wait_for_selector(f'tr[data-id="{target}"][data-status="cancelled"]', timeout=15_000)
    assert http.get(f"/v1/jobs/{target}").json()["status"] == "cancelled"
    assert row.get_by_role("button", name="Cancel").count() == 0
    for j in jobs[:-1]:
        http.delete(f"/v1/jobs/{j['id']}")
    wait_for(lambda: http.get("/v1/health").json()["dispatcher"]["in_flight"] == 0, 30, "tasks to stop")


def test_large_upload_goes_in_parts_with_progress_and_resumes(
    console: Console, http: httpx.Client, tmp_path: Path
) -> None:
    X = np.random.default_rng(5).normal(size=(200_000, 3))
    buf = io.BytesIO()
    np.save(buf, X)
    path = tmp_path / "big.npy"
    path.write_bytes(buf.getvalue())
    assert path.stat().st_size > 4 * 2**20
    page = console.open("#/data")
    failing = {"on": True, "tries": 0}

    def part_one(route: Any) -> None:
        if failing["on"]:
            failing["tries"] += 1
            route.fulfill(status=503, content_type="application/json", body='{"detail": "injected outage"}')
        else:
            route.continue_()

    page.route("**/v1/uploads/*/parts/1", part_one)
    page.set_input_files("#file-input", str(path))
    item = page.locator(".upload").first
    item.get_by_role("button", name="Resume").wait_for(timeout=30_000)
    assert failing["tries"] == 4  # the first try and three retries
    assert "injected outage" in item.get_by_role("alert").inner_text()
    sent = int(item.get_by_role("progressbar").get_attribute("aria-valuenow") or 0)
    assert 0 < sent < 100  # part 0 went
    failing["on"] = False
    item.get_by_role("button", name="Resume").click()
    page.wait_for_selector(".upload[data-phase=done]", timeout=60_000)
    newest = http.get("/v1/pointclouds", params={"limit": 1}).json()["items"][0]
    assert newest["name"] == "big.npy" and newest["n_points"] == X.shape[0] and newest["dim"] == 3
    assert newest["source"] == "npy"


def test_landmark_result_shows_eps_and_its_bound(console: Console, http: httpx.Client) -> None:
    pc = upload_points(http, np.random.default_rng(13).normal(size=(400, 3)), "landmarks")
    job = finished_job(http, pc, maxdim=1, landmarks=40)
    landmarks = http.get(f"/v1/jobs/{job}/result").json()["landmarks"]
    assert landmarks["count"] == 40
    page = console.open(f"#/job/{job}")
    page.wait_for_selector('[data-chart="diagram"][data-rendered="true"]')
    for key, field in (("eps", "eps"), ("bound", "bottleneck_bound")):
        shown = float(page.locator(f'[data-value="{key}"]').inner_text())  # 4 significant digits
        assert shown == pytest.approx(landmarks[field], rel=1e-3)


def test_cocycles_are_listed_with_their_classes(console: Console, http: httpx.Client) -> None:
    t = np.linspace(0, 2 * np.pi, 30, endpoint=False)
    circle = np.c_[np.cos(t), np.sin(t)] + np.random.default_rng(14).normal(scale=0.05, size=(30, 2))
    job = finished_job(http, upload_points(http, circle, "circle"), maxdim=1, cocycles=True)
    result = http.get(f"/v1/jobs/{job}/result").json()
    page = console.open(f"#/job/{job}")
    page.wait_for_selector('table[data-cocycles="1"]')
    rows = page.locator('table[data-cocycles="1"] tbody tr')
    assert rows.count() == min(12, len(result["diagrams"][1])) > 0
    first = rows.first  # the longest-lived class: the circle's, essential or not
    i = int(first.get_attribute("data-class") or -1)
    life = [math.inf if d is None else d - b for b, d in result["diagrams"][1]]
    assert life[i] == max(life)
    cells = first.locator("td")
    assert cells.nth(2).inner_text().replace(",", "") == str(len(result["cocycles"][1][i]))
    u, v, c = result["cocycles"][1][i][0]
    assert cells.nth(3).inner_text().startswith(f"[{u},{v}]×{c}")
    with page.expect_download() as svg:
        page.get_by_role("button", name="Barcode SVG").click()
    assert Path(svg.value.path()).read_bytes().lstrip().startswith((b"<?xml", b"<svg"))


def test_compare_overlays_two_results(console: Console, http: httpx.Client) -> None:
    rng = np.random.default_rng(11)
    a = finished_job(http, upload_points(http, rng.normal(size=(60, 2)), "cmp-a"), maxdim=1)
    b = finished_job(http, upload_points(http, rng.normal(size=(70, 2)), "cmp-b"), maxdim=1)
    page = console.open(f"#/compare?a={a}&b={b}")
    page.wait_for_selector('[data-chart="overlay"][data-rendered="true"]')
    series = console.chart_series("overlay")
    ra, rb = (http.get(f"/v1/jobs/{j}/result").json() for j in (a, b))
    assert drawn_pairs(series, "A") == pairs_of(ra, 1)
    assert drawn_pairs(series, "B") == pairs_of(rb, 1)
    page.get_by_role("tab", name="H0").click()
    expect(page.locator("figure figcaption")).to_contain_text("H0")
    series = console.chart_series("overlay")
    assert drawn_pairs(series, "A") == pairs_of(ra, 0)
    has_distance = any("/distance/" in p for p in http.get("/openapi.json").json()["paths"])
    if has_distance:
        page.wait_for_selector("[data-testid=distance]")
    else:
        assert page.get_by_text("no distance route").count() == 1


def test_health_page_shows_what_the_api_reports(console: Console, http: httpx.Client) -> None:
    health = http.get("/v1/health").json()
    page = console.open("#/health")
    page.wait_for_selector("[data-component=dispatcher]")
    cards = page.eval_on_selector_all("[data-component]", "els => els.map((e) => e.dataset.component)")
    assert cards == ["database", "storage", "dispatcher", *health["components"]]
    assert page.locator('[data-component=dispatcher] [data-key="alive"]').inner_text() == "true"
    # Ray and Serve as the job manager sees them: the nodes, and each deployment's running replicas.
    assert health["components"]["ray"]["nodes"] >= 1
    ray_card = page.locator("[data-component=ray]")
    assert ray_card.locator('[data-key="nodes"]').first.inner_text() == str(health["components"]["ray"]["nodes"])
    serve_card = page.locator("[data-component=serve]")
    for app in health["components"]["serve"].values():
        for name, deployment in app["deployments"].items():
            assert deployment["replicas"].get("RUNNING", 0) >= 1
            assert serve_card.locator(f'[data-key="{name}"]').count() == 1


def test_streams_page_without_kafka_shows_the_default_spec_and_the_apis_error(
    console: Console, http: httpx.Client
) -> None:
    assert http.get("/v1/streams").json()["items"] == []
    page = console.open("#/streams")
    page.get_by_text("No streams yet").wait_for()
    page.goto(f"{console.base_url}/#/streams/pump-7")
    stream = http.get("/v1/streams/pump-7").json()
    assert stream["default"]
    page.get_by_text("The default spec").wait_for()
    # The form is the spec: each field holds the current value.
    assert page.input_value("#spec-window-size") == str(stream["spec"]["window"]["size"])
    assert float(page.input_value("#spec-scoring-threshold")) == stream["spec"]["scoring"]["threshold"]
    # This server has no Kafka: the PUT answers 503, and its detail is what the page shows.
    expected = http.put("/v1/streams/pump-7", json={"maxdim": 0})
    assert expected.status_code == 503
    page.get_by_role("button", name="Save spec").focus()
    page.keyboard.press("Enter")
    alert = page.locator(".spec-form [role=alert]")
    expect(alert).to_contain_text(expected.json()["detail"])
    page.get_by_role("link", name="Health").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-component=dispatcher]")
