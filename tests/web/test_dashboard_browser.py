"""The dashboard in a real headless Chromium (Debian's), against a live Django server.

A known load (tickets in every queue, three game servers, one matching cycle that
forms and places matches, one match with no server in its region) is put in the
suite's Redis; the page must show it, raise the no-capacity alarm, and follow a
change of load without reloading. Set ``CAROUD_SCREENSHOT=docs/dashboard.png`` to
keep the screenshot it takes at 1440x900. With the app pointed at a closed port, the
page must put *Redis down* first among the alarms, claim nothing it cannot know (no
"No alarm firing", no worker "alive", no figure) and keep its header on one row.

Playwright drives the system's ``/usr/bin/chromium`` (``playwright install`` is never
needed); without it the test is skipped, and CI installs it (``.ci/run``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from caroud.context import Context
from caroud.matchmaking.worker import Worker

CHROMIUM = os.environ.get("CAROUD_CHROMIUM", "/usr/bin/chromium")
if not shutil.which(CHROMIUM):
    missing = f"no Chromium at {CHROMIUM}: apt-get install chromium (or set CAROUD_CHROMIUM)"
    if os.environ.get("CI"):  # .ci/run installs it: a skip there would hide a broken step
        pytest.fail(missing, pytrace=False)
    pytest.skip(missing, allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EU = {"eu-west": 25.0, "us-east": 95.0}
US = {"us-east": 30.0}
AP = {"ap-southeast": 40.0}  # no server there: that match finds no capacity
SERVERS = [  # id, address, port, region, capacity, load
    ("eu-fra-1", "10.0.1.11", 7001, "eu-west", 8, 0.62),
    ("eu-fra-2", "10.0.1.12", 7001, "eu-west", 4, 0.18),
    ("us-iad-1", "10.0.2.21", 7101, "us-east", 6, 0.35),
]


def form_matches(ctx: Context) -> dict[str, int]:
    """Tickets that match at once (ratings close, per region), then one cycle; spreads."""
    spreads: dict[str, int] = {}
    mm = ctx.matchmaking

    def group(queue: str, name: str, ratings: list[int], latency: dict[str, float]) -> None:
        for i, rating in enumerate(ratings):
            mm.enqueue(queue, [(f"{name}-{i}", rating)], latency)
        spreads[name] = max(ratings) - min(ratings)

    for k, gap in enumerate((4, 9, 17, 26, 33, 41)):
        group("ranked-1v1", f"eu{k}", [1000 + 100 * k, 1000 + 100 * k + gap], EU)
    for k, gap in enumerate((7, 22)):
        group("ranked-1v1", f"us{k}", [2000 + 100 * k, 2000 + 100 * k + gap], US)
    group("ranked-2v2", "duo", [1500, 1512, 1520, 1530], EU)
    group("ranked-2v2", "apac", [1700, 1705, 1711, 1719], AP)
    group("ranked-5v5", "team", [1800 + 5 * i for i in range(10)], EU)
    group("ffa-8", "ffa", [1200 + 10 * i for i in range(8)], US)
    # a long lease: its heartbeat stays current for the whole test
    worker = Worker(ctx.matchmaking, assigner=ctx.assigner, lease_ttl_s=300)
    report = worker.run_cycle()
    assert (report.matches, report.assigned, report.no_capacity) == (12, 11, 1)
    worker.heartbeat()
    return spreads


WAITING = {  # queue -> waits (s) of tickets left waiting (ratings far apart: no match)
    "ranked-1v1": [0.3, 0.8, 1.5, 2.5, 4, 7, 12, 18, 26, 45],
    "ranked-2v2": [0.6, 3, 6, 8, 14, 22, 35, 70, 95],
    "ranked-5v5": [0.2, 0.4, 0.9, 1.2, 1.8, 2.2, 3.5, 4.5, 6, 9, 11, 16, 24, 33, 48, 65, 130],
    "ffa-8": [5, 40, 150, 320],
}


def queue_waiting(ctx: Context, queue: str, waits: list[float], tag: str = "w") -> None:
    now = ctx.matchmaking.server_time()
    for i, wait in enumerate(waits):
        player = f"{tag}-{queue}-{i}"
        ctx.matchmaking.enqueue(queue, [(player, 100 + 550 * i)], created_at=now - wait)


@pytest.fixture
def loaded(ctx: Context) -> dict[str, int]:
    for sid, address, port, region, capacity, load in SERVERS:
        ctx.pool.register(address, port, region, capacity, server_id=sid)
        ctx.pool.heartbeat(sid, load=load)
    spreads = form_matches(ctx)
    for queue, waits in WAITING.items():
        queue_waiting(ctx, queue, waits)
    return spreads


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1440, "height": 900},
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)


def text(page: Any, selector: str) -> str:
    return str(page.locator(selector).inner_text()).strip()


def test_dashboard_shows_the_load_and_follows_it_live(
    live_server: Any, page: Any, ctx: Context, loaded: dict[str, int], tmp_path: Path
) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server.url}/dashboard")
    page.wait_for_function("Number(document.body.dataset.refreshes) >= 1", timeout=10_000)

    # queue depths
    for queue, waits in WAITING.items():
        assert text(page, f'tr[data-queue="{queue}"] .waiting') == str(len(waits)), queue
    assert text(page, "#sum-waiting") == str(sum(len(w) for w in WAITING.values()))
    assert text(page, 'tr[data-queue="ranked-2v2"] .for-server') == "1"
    # the histogram counts every waiting ticket
    counts = page.eval_on_selector_all(".hcol", "cols => cols.map(c => Number(c.dataset.count))")
    assert sum(counts) == sum(len(w) for w in WAITING.values())

    # recent matches: spread, players, server address
    rows = page.locator("#matches tbody tr[data-match]")
    assert rows.count() == 12
    shown = sorted(int(s) for s in rows.locator(".spread").all_inner_texts())
    assert shown == sorted(loaded.values())
    addresses = {f"{a}:{p}" for _, a, p, *_ in SERVERS}
    servers_shown = rows.locator(".server").all_inner_texts()
    assert sum(s in addresses for s in servers_shown) == 11 and servers_shown.count("—") == 1
    for match in ctx.matchmaking.client.scan_iter(match=ctx.keys.match("*")):
        match_id = str(match).rsplit(":", 1)[-1]
        record = ctx.matches.get(match_id)
        row = page.locator(f'tr[data-match="{match_id}"]')
        assert text(page, f'tr[data-match="{match_id}"] .players') == str(
            ctx.queues.get(record.queue).players_per_match
        )
        if record.server is not None:
            assert row.locator(".server").inner_text() == (
                f"{record.server.address}:{record.server.port}"
            )
        else:
            assert row.locator(".status").inner_text() == "matched"
            assert record.queue == "ranked-2v2" and record.spread == loaded["apac"]

    # servers and their used / capacity, as the pool has them
    for sid, *_ in SERVERS:
        server = ctx.pool.get(sid)
        cell = text(page, f'tr[data-server="{sid}"] .slots')
        assert cell == f"{server.used}/{server.capacity}", sid
    assert sum(ctx.pool.get(sid).used for sid, *_ in SERVERS) == 11
    assert text(page, "#sum-slots") == "11 / 18"

    # the no-capacity alarm fires, and says the match waits, once it has waited past the
    # grace (before that it may already fire for the counter rising: an earlier test's
    # dashboard state can leave that baseline at 0)
    firing = page.locator('#alarms li.firing[data-alarm="no_capacity"]')
    firing.filter(has_text="waiting over 2 s for a game server").wait_for(timeout=10_000)
    assert page.locator('#alarms li.firing[data-alarm="worker"]').count() == 0

    # laptop screens: no horizontal scrolling
    for width, height in ((1440, 900), (1366, 768)):
        page.set_viewport_size({"width": width, "height": height})
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, (width, overflow)
    page.set_viewport_size({"width": 1440, "height": 900})
    shot = Path(os.environ.get("CAROUD_SCREENSHOT") or tmp_path / "dashboard.png")
    page.screenshot(path=str(shot))
    assert png_size(shot) == (1440, 900)

    # more load: the page follows without reloading
    page.evaluate("window.__caroudMarker = 'same page'")
    before = int(page.evaluate("Number(document.body.dataset.refreshes)"))
    queue_waiting(ctx, "ranked-1v1", [0.5, 1, 2, 3, 5], tag="late")
    page.wait_for_function(
        "document.querySelector('tr[data-queue=\"ranked-1v1\"] .waiting').textContent === '15'",
        timeout=10_000,
    )
    assert page.evaluate("window.__caroudMarker") == "same page"
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert int(page.evaluate("Number(document.body.dataset.refreshes)")) > before
    assert text(page, "#sum-waiting") == str(sum(len(w) for w in WAITING.values()) + 5)

    assert not errors, errors
    assert requests and all(u.startswith(live_server.url) for u in requests), "nothing external"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


HEADER = (".top h1", "#summary", "#status")


def header_boxes(page: Any) -> list[dict[str, float]]:
    """The bounding boxes of the header's items: the title, the figures, the status."""
    return [page.locator(selector).bounding_box() for selector in HEADER]


def assert_header_in_one_row(page: Any) -> list[dict[str, float]]:
    """Title, figures and status side by side on one row, inside the window; their boxes."""
    boxes = header_boxes(page)
    for (a, b), names in zip(itertools.pairwise(boxes), itertools.pairwise(HEADER), strict=True):
        assert a["x"] + a["width"] <= b["x"], f"{names[1]} is not right of {names[0]}: {boxes}"
        assert a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"], boxes
    assert boxes[1]["width"] > 400, f"the figures have no room: {boxes}"
    assert boxes[2]["x"] + boxes[2]["width"] <= page.viewport_size["width"], boxes
    assert page.locator("#summary dd").count() == 8
    return boxes


def wait_attempts(page: Any, more: int = 1) -> None:
    """Wait until the page has tried ``more`` further refreshes (answered or not)."""
    seen = int(page.evaluate("Number(document.body.dataset.attempts || 0)"))
    page.wait_for_function(
        f"Number(document.body.dataset.attempts || 0) >= {seen + more}", timeout=10_000
    )


def seen_opacity(page: Any, element_id: str) -> float:
    """The opacity an element is drawn with: its own times its ancestors'."""
    script = """id => {
        let seen = 1;
        for (let e = document.getElementById(id); e; e = e.parentElement) {
            seen *= Number(getComputedStyle(e).opacity);
        }
        return seen;
    }"""
    return float(page.evaluate(script, element_id))


def assert_says_redis_is_down(page: Any) -> None:
    first = page.locator("#alarms li").first
    assert first.get_attribute("data-alarm") == "redis", text(page, "#alarms")
    assert "critical" in (first.get_attribute("class") or "")
    assert text(page, "#alarms li:first-child").startswith("Redis down — cannot reach Redis")
    assert "No alarm firing" not in text(page, "#alarms")
    assert "alive" not in text(page, "body"), "nothing is known about the worker"
    assert "Redis down" in text(page, "#status")
    assert page.locator("#summary dd").all_inner_texts() == ["–"] * 8, "no figure is known"
    assert seen_opacity(page, "alarms-panel") == 1, "what is wrong now is not dimmed"
    assert seen_opacity(page, "queues-panel") < 1, "the last figures are"
    assert (
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        <= 0
    ), "no horizontal scrolling"


def test_dashboard_says_redis_is_down_first_and_keeps_its_header(
    live_server: Any, page: Any, ctx: Context
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    down = {"CAROUD_REDIS_URL": f"redis://127.0.0.1:{closed_port()}", "CAROUD_RETRIES": 0}
    Worker(ctx.matchmaking, assigner=ctx.assigner, lease_ttl_s=300).heartbeat()  # in the real one

    # opened while Redis is down: never a figure yet
    with override_settings(**down):
        page.goto(f"{live_server.url}/dashboard")
        page.wait_for_selector('#alarms li[data-alarm="redis"]', timeout=10_000)
        wait_attempts(page)
        assert_says_redis_is_down(page)
        assert page.locator("#alarms li").count() == 1, "no other alarm is known yet"
        assert_header_in_one_row(page)

    # Redis back, a worker alive: figures, and the worker alarm says so
    page.wait_for_function("Number(document.body.dataset.refreshes) >= 1", timeout=10_000)
    assert page.locator('#alarms li[data-alarm="redis"]').count() == 0
    assert text(page, '#alarms li[data-alarm="worker"]') == "Matchmaker worker 1 alive"
    assert text(page, "#sum-workers") == "1"
    up = assert_header_in_one_row(page)

    # Redis gone again: first alarm, the last figures unknown, the header as it was
    with override_settings(**down):
        page.wait_for_selector('#alarms li[data-alarm="redis"]', timeout=10_000)
        wait_attempts(page)
        assert_says_redis_is_down(page)
        assert text(page, '#alarms li[data-alarm="worker"]') == "Matchmaker worker unknown"
        boxes = assert_header_in_one_row(page)
        for before, now in zip(up[:2], boxes[:2], strict=True):
            assert (now["x"], now["y"]) == (before["x"], before["y"]), (up, boxes)
    assert not errors, errors
