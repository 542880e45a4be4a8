"""Debian's chromium driven by Playwright, for the web console's tests (tests/test_console.py).

Never a browser downloaded by ``playwright install`` (it fails here): the system's ``/usr/bin/chromium``,
which ``make setup`` installs, with a fresh profile and none of its own network traffic.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
KEY_STORE = "tda-ray.api-key"  # where the console keeps the API key (sessionStorage, per tab)

# The ECharts module the page loaded (same URL, so the same instance) and the chart of [data-chart=NAME].
_CHART = """
    const echarts = await import(new URL("console/vendor/echarts.js", document.baseURI).href);
    const el = document.querySelector(`[data-chart="${name}"]`);
    const chart = echarts.getInstanceByDom(el);
"""


def missing_requirements(repo_root: Path) -> list[str]:
    """What the console tests need and this machine lacks (the browser, the console's npm libraries)."""
    vendor = repo_root / "tda_ray/service/http/console/vendor/echarts.js"
    return [str(p) for p in (CHROMIUM, vendor) if not p.exists()]


def launch(playwright: Any, profile: Path, viewport: dict[str, int] = LAPTOP) -> Any:
    """A browser context on a fresh user data dir ``profile``."""
    ctx = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, viewport=viewport
    )
    ctx.set_default_timeout(30_000)
    return ctx


class Console:
    """A tab on the console; errors the page throws are collected and fail :meth:`close`."""

    def __init__(self, ctx: Any, base_url: str, *, api_key: str | None, viewport: dict[str, int] = LAPTOP) -> None:
        self.base_url = base_url
        self.page = ctx.new_page()
        self.page.set_viewport_size(viewport)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        if api_key:  # as the key dialog leaves it
            self.page.add_init_script(f"sessionStorage.setItem({KEY_STORE!r}, {api_key!r})")

    def open(self, hash_path: str = "#/data") -> Any:
        self.page.goto(f"{self.base_url}/{hash_path}")
        self.page.wait_for_selector("header.top")
        return self.page

    def chart_series(self, name: str) -> dict[str, list[Any]]:
        """Series id -> what ECharts holds for each point: its ``pair`` ([birth, death]) or its value."""
        series: list[dict[str, Any]] = self.page.evaluate(
            "async (name) => {"
            + _CHART
            + """
                const pairs = (s) => (s.data || []).map((d) => d.pair ?? d);
                return chart.getOption().series.map((s) => ({ id: s.id, data: pairs(s) }));
            }""",
            name,
        )
        return {s["id"]: s["data"] for s in series}

    def point_on_page(self, name: str, series_id: str, value: list[float]) -> tuple[float, float]:
        """Where ECharts draws ``value`` of a series, in page coordinates (to hover it with the mouse)."""
        x, y = self.page.evaluate(
            "async ([name, seriesId, value]) => {"
            + _CHART
            + """
                const [x, y] = chart.convertToPixel({ seriesId }, value);
                const box = el.getBoundingClientRect();
                return [box.left + x, box.top + y];
            }""",
            [name, series_id, value],
        )
        return float(x), float(y)

    def hide_tooltip(self, name: str) -> None:
        """Take the chart's tooltip away (before a screenshot: moving the mouse off leaves it fading)."""
        self.page.evaluate("async (name) => {" + _CHART + 'chart.dispatchAction({ type: "hideTip" }); }', name)

    def drop_file(self, selector: str, path: Path) -> None:
        """A drop event on ``selector`` carrying the file, as when it is dragged from the desktop."""
        self.page.evaluate(
            """([sel, name, b64]) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], name, { type: "text/plain" }));
                const target = document.querySelector(sel);
                for (const type of ["dragenter", "dragover", "drop"]) {
                    target.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
                }
            }""",
            [selector, path.name, base64.b64encode(path.read_bytes()).decode()],
        )

    def close(self) -> None:
        self.page.close()
        assert not self.errors, f"the page threw: {self.errors}"
