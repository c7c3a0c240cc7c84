"""Finding, comparing and trusting many runs in headless Chromium: search, grouping, CSV, parallel
coordinates, zoom that refetches, honest statuses, the table at 800 px. A real server (SQLite)
seeded through its REST API; screenshots go to test-output/console/ (copied to docs/img/)."""

from __future__ import annotations

import math
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.poll import wait_for
from tests.server.harness import ServerProcess
from tests.server.seed import Api, put_run

from .conftest import shot

pytestmark = pytest.mark.timeout(120)

LOST_AFTER_S = "3"
CKPT_IDS = ("0a1b2c3d-0000-4000-8000-000000000000", "9f8e7d6c-0000-4000-8000-000000000001")
SWEEP = [  # name, labels, hparams, status
    ("adam-small", ["baseline"], {"lr": 0.001, "optimizer": "Adam", "layers": 2}, "Succeeded"),
    ("adam-large", ["baseline"], {"lr": 0.003, "optimizer": "Adam", "layers": 8}, "Succeeded"),
    ("sgd-small", ["baseline"], {"lr": 0.05, "optimizer": "SGD", "layers": 2}, "Succeeded"),
    ("sgd-large", ["ablation"], {"lr": 0.1, "optimizer": "SGD", "layers": 8}, "Failed"),
    ("adamw-mid", ["ablation"], {"lr": 0.0005, "optimizer": "AdamW", "layers": 4}, "Succeeded"),
]


def losses(lr: float, layers: int, n: int = 60) -> list[float]:
    return [1.0 / (1 + i * lr * 50) + 0.02 * layers + 0.01 * math.sin(i) for i in range(n)]


@pytest.fixture(scope="module")
def sweep_server(tmp_path_factory):
    """A server whose lost-run limit is 3 s, holding a sweep, a 2-rank long run and a silent live run."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("EM_LOST_AFTER_S", LOST_AFTER_S)
        srv = ServerProcess(tmp_path_factory.mktemp("many-runs"), None).start()
    try:
        _, key = srv.add_user("bob")
        api = Api(srv.url, key)
        ids = {}
        for name, labels, hp, status in SWEEP:
            ids[name] = put_run(api, name, "sweep", status, labels, hp,
                                {"val/loss": losses(hp["lr"], hp["layers"]), "test/acc": [0.9 - hp["lr"]]})
        ids["long-ddp"] = put_run(api, "long-ddp", "sweep/ddp", "Succeeded", ["ddp"], {"lr": 0.01, "optimizer": "Adam", "layers": 4},
                                  {"train/loss": [1.0 / (1 + i / 50) + (0.5 if i == 4000 else 0) for i in range(6000)],
                                   "test/acc": [0.93]}, ranks=2,
                                  artifacts=[{"id": CKPT_IDS[0], "name": "ckpt", "role": "output"},
                                             {"id": CKPT_IDS[1], "name": "ckpt", "role": "output", "rank": 1}])
        ids["silent"] = put_run(api, "silent", "sweep", "Running", ["baseline"], {"lr": 0.002, "optimizer": "Adam", "layers": 2},
                                {"val/loss": [0.9, 0.8]})
        folders = {f["path"]: f["id"] for f in api("GET", "/folders").json()}
        yield srv, key, ids, folders
        api.close()
    finally:
        srv.stop()


@pytest.fixture
def console(page, sweep_server):
    """The page, signed in: the sign-in request sets the (server-side) session cookie in its context."""
    srv, key, ids, folders = sweep_server
    answer = page.request.post(f"{srv.url}/api/v1/session", headers={"Authorization": f"Bearer {key}"})
    assert answer.ok, answer.text()
    return page, srv.url, ids, folders


def table_names(page) -> list[str]:
    return page.eval_on_selector_all("#runs-table tbody tr[data-run-name]", "rows => rows.map(r => r.dataset.runName)")


def wait_query(page, query: str) -> None:
    page.wait_for_function("(q) => { const t = document.querySelector('#runs-table');"
                           " return t && t.dataset.state === 'ready' && t.dataset.query === q; }", arg=query)


def hash_params(page) -> dict[str, str]:
    fragment = urlsplit(page.url).fragment
    return {k: v[0] for k, v in parse_qs(fragment.partition("?")[2]).items()}


def test_search_box_uses_the_filter_language_and_keeps_the_query_in_the_url(console) -> None:
    page, url, _, folders = console
    page.goto(f"{url}/#/folder/{folders['sweep']}")
    wait_query(page, "")
    assert set(table_names(page)) == {name for name, *_ in SWEEP} | {"silent"}
    query = 'hparams.lr < 0.01 and labels contains "baseline" and status = "Succeeded"'
    page.fill("#run-filter", query)
    page.press("#run-filter", "Enter")
    wait_query(page, query)
    assert sorted(table_names(page)) == ["adam-large", "adam-small"]
    assert hash_params(page)["q"] == query
    assert page.inner_text("#run-count") == "2 runs"
    shot(page, "search")

    page.reload()  # the link alone restores the view
    wait_query(page, query)
    assert page.input_value("#run-filter") == query and sorted(table_names(page)) == ["adam-large", "adam-small"]

    page.fill("#run-filter", "hparams.lr <")
    page.press("#run-filter", "Enter")
    page.wait_for_selector("#search-error:has-text('position 12')")
    assert "expected a value" in page.inner_text("#search-error")

    page.fill("#run-filter", "large")  # a bare word searches names and labels
    page.press("#run-filter", "Enter")
    wait_query(page, "large")
    assert sorted(table_names(page)) == ["adam-large", "sgd-large"]
    page.check("#subfolders")
    page.fill("#run-filter", "metrics.train/loss < 1")
    page.press("#run-filter", "Enter")
    wait_query(page, "metrics.train/loss < 1")
    assert table_names(page) == ["long-ddp"]
    assert page.inner_text('#runs-table tr[data-run-name="long-ddp"] td[data-col="folder"]') == "sweep/ddp"


def test_group_by_an_hparam_with_aggregates_sort_and_csv(console) -> None:
    page, url, _, folders = console
    cols = "name,status,hp:lr,m:val/loss,m:val/loss:min,m:val/loss:max"
    page.goto(f"{url}/#/folder/{folders['sweep']}?cols={cols}&group=hp:optimizer&sort=hp:lr&desc=0")
    wait_query(page, "")
    groups = page.eval_on_selector_all("#runs-table tr.group", "rs => rs.map(r => [r.dataset.group, r.dataset.count])")
    assert sorted(groups) == [["Adam", "3"], ["AdamW", "1"], ["SGD", "2"]]
    adam = page.locator('#runs-table tr.group[data-group="Adam"] td[data-col="hp:lr"]').inner_text()
    assert adam.startswith("0.002 ")  # mean of 0.001, 0.003 and 0.002, then the range
    assert "(0.001–0.003)" in adam
    page.click('#runs-table tr.group[data-group="SGD"]')
    page.wait_for_selector('#runs-table tr[data-run-name="sgd-large"]')
    assert table_names(page) == ["sgd-small", "sgd-large"]  # sorted by lr, ascending
    shot(page, "group")

    page.select_option("#group-by", "")
    page.click('#runs-table th[data-sort="m:val/loss:min"]')
    page.wait_for_selector('#runs-table th.sorted-desc[data-sort="m:val/loss:min"]')
    mins = page.eval_on_selector_all('#runs-table td[data-col="m:val/loss:min"]', "cs => cs.map(c => Number(c.textContent))")
    assert mins == sorted(mins, reverse=True) and len(mins) == 6
    params = hash_params(page)
    assert params["sort"] == "m:val/loss:min" and params["desc"] == "1" and "group" not in params

    with page.expect_download() as download:
        page.click("#export-csv")
    text = open(download.value.path(), encoding="utf-8").read()
    lines = text.strip().splitlines()
    assert lines[0] == "id,Name,Status,lr,val/loss,val/loss (min),val/loss (max)"
    assert len(lines) == 7 and any(",sgd-large,Failed,0.1," in line for line in lines)


def test_a_silent_live_run_shows_failed_lost_with_its_last_sign_of_life(console, sweep_server) -> None:
    page, url, ids, folders = console
    srv, key, *_ = sweep_server
    api = Api(srv.url, key)
    wait_for(lambda: api("GET", f"/runs/{ids['silent']}").json()["lost"], timeout=30, what="the silent run to be lost")
    api.close()
    page.goto(f"{url}/#/folder/{folders['sweep']}")
    badge = page.locator('#runs-table tr[data-run-name="silent"] .status')
    badge.wait_for()
    assert badge.inner_text() == "Failed · lost" and badge.get_attribute("data-lost") == "true"
    assert "sent nothing since" in badge.get_attribute("title")
    duration = page.inner_text('#runs-table tr[data-run-name="silent"] td[data-col="duration"]')
    assert re.fullmatch(r"\d+h \d+m|\d+m \d+s|\d+s", duration)
    page.goto(f"{url}/#/run/{ids['silent']}/overview")
    page.wait_for_selector("#tab-body[data-tab=overview]")
    body = page.inner_text("#tab-body")
    assert "Reported status" in body and "Running" in body and "Last sign of life" in body
    shot(page, "lost-run")


def test_zoom_refetches_finer_points_and_single_points_show_as_values(console) -> None:
    page, url, ids, _ = console
    page.goto(f"{url}/#/run/{ids['long-ddp']}/metrics")
    chart = '.chart[data-metric="train/loss"]'
    page.wait_for_selector(f'{chart}[data-window="all"]')
    assert page.locator('.metric-value[data-metric="test/acc"]').inner_text().endswith("0.93 (rank 0) · 1.03 (rank 1)")
    assert page.locator('.chart[data-metric="test/acc"]').count() == 0
    assert page.locator("#rank-toggles input").count() == 2  # a 2-rank run has the cross-rank controls
    legend_gap = page.evaluate(f"""(() => {{ const c = document.querySelector('{chart}');
        const legend = c.querySelector('.legend').getBoundingClientRect();
        const plot = c.querySelector('.bglayer').getBoundingClientRect(); return legend.top - plot.bottom; }})()""")
    assert legend_gap >= 0  # the legend sits under the plot, clear of the title and the toolbar
    whole = page.evaluate(f"document.querySelector('{chart}').data.find(t => t.meta.rank === 0).x.filter(x => x >= 3990 && x <= 4010).length")
    page.evaluate(f"Plotly.relayout(document.querySelector('{chart}'), {{'xaxis.range': [3990, 4010]}})")
    page.wait_for_selector(f'{chart}[data-window="3990-4010"]')
    xs = page.evaluate(f"document.querySelector('{chart}').data.find(t => t.meta.rank === 0).x")
    assert xs == list(range(3990, 4011)) and len(xs) > whole  # every step of the range, finer than before
    band = page.evaluate(f"document.querySelector('{chart}').data.find(t => t.meta.kind === 'mean').x")
    assert band[0] == 3990 and band[-1] == 4010
    shot(page, "zoom")
    page.evaluate(f"Plotly.relayout(document.querySelector('{chart}'), {{'xaxis.autorange': true}})")
    page.wait_for_selector(f'{chart}[data-window="all"]')

    page.check("#log-y")
    page.wait_for_function(f"() => document.querySelector('{chart}').layout.yaxis.type === 'log'")
    page.check("#clip-outliers")  # the spike at step 4000 is left outside the y range
    page.wait_for_function(f"() => {{ const r = document.querySelector('{chart}').layout.yaxis.range;"
                           f" return r && Math.pow(10, r[1]) < 1.2; }}")
    assert hash_params(page) == {"log": "1", "clip": "1"}
    page.fill("#metric-search", "acc")
    page.wait_for_selector(f"{chart}", state="hidden")
    assert page.locator('.metric-value[data-metric="test/acc"]').is_visible()

    page.click(".tabs a[data-tab=artifacts]")  # two same-named checkpoints of two ranks, told apart
    page.wait_for_selector(f'#tab-body .panel[data-artifact-id="{CKPT_IDS[1]}"][data-rank="1"]')
    origins = page.eval_on_selector_all("#tab-body .panel .origin", "os => os.map(o => o.textContent)")
    assert origins == ["rank 0 of run long-ddp · id 0a1b2c3d", "rank 1 of run long-ddp · id 9f8e7d6c"]

    page.goto(f"{url}/#/run/{ids['adam-small']}/metrics")  # one rank: no cross-rank controls
    page.wait_for_selector('.chart[data-metric="val/loss"][data-rendered]')
    assert page.locator("#rank-controls > *").count() == 0


def test_compare_draws_parallel_coordinates_scatter_and_several_metrics(console) -> None:
    page, url, ids, _ = console
    runs = ",".join(ids[n] for n in ("adam-small", "adam-large", "sgd-small", "adamw-mid", "long-ddp"))
    page.goto(f"{url}/#/compare/{runs}?metrics=val/loss,train/loss&x=time")
    page.wait_for_selector("#parcoords[data-rendered]")
    dims = page.eval_on_selector_all("#parcoords svg .pc-axis", "axes => axes.map(a => a.dataset.label)")
    assert dims == ["layers", "lr", "optimizer", "val/loss"]
    assert page.locator("#parcoords svg .pc-lines polyline").count() == 5  # one line per run, drawn without WebGL
    page.wait_for_selector('#compare-charts .chart[data-compare-metric="val/loss"][data-rendered]')
    page.wait_for_selector('#compare-charts .chart[data-compare-metric="train/loss"][data-rendered]')
    xs = page.evaluate("""document.querySelector('.chart[data-compare-metric="val/loss"]').data[0].x.slice(0, 2)""")
    assert xs == [0, 1]  # relative wall time
    assert page.evaluate("document.querySelector('#hparam-scatter').data[0].x") == [2, 8, 2, 4, 4]  # layers
    page.select_option("#scatter-x", "lr")
    page.wait_for_function("() => document.querySelector('#hparam-scatter').layout.xaxis.title.text === 'lr'")
    assert page.evaluate("document.querySelector('#hparam-scatter').data[0].x") == [0.001, 0.003, 0.05, 0.0005, 0.01]
    assert page.evaluate("document.querySelector('#hparam-scatter').layout.xaxis.type") == "log"  # lr spans two decades
    page.check("#compare-ranks")
    page.wait_for_function("""() => { const c = document.querySelector('.chart[data-compare-metric="train/loss"]');
        return c && c.data && c.data.filter(t => t.meta.kind === 'rank').length === 2; }""")
    shot(page, "parcoords")


@pytest.mark.parametrize("chart, where, ready", [
    ("metric lines", "#/run/{long-ddp}/metrics", '.chart[data-metric="train/loss"][data-rendered]'),
    ("ranks strip", "#/run/{long-ddp}/ranks", "[data-rendered]"),
    ("compare lines", "#/compare/{adam-small},{sgd-small}?metrics=val/loss", '#compare-charts .chart[data-compare-metric="val/loss"][data-rendered]'),
    ("parallel coordinates", "#/compare/{adam-small},{sgd-small},{adamw-mid}", "#parcoords[data-rendered] svg .pc-lines polyline"),
    ("hparam scatter", "#/compare/{adam-small},{sgd-small}", "#hparam-scatter[data-rendered]"),
])
def test_every_chart_draws_under_the_servers_content_security_policy(console, chart: str, where: str, ready: str) -> None:
    """No console test bypasses the CSP; a chart that needs eval or WebGL (Plotly's parcoords) fails here."""
    page, url, ids, _ = console
    page.goto(url + "/" + re.sub(r"\{([\w-]+)\}", lambda m: ids[m.group(1)], where))
    page.wait_for_selector(ready)
    page.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")  # drawn
    assert page.problems == [], f"{chart}: {page.problems}"


def test_a_lone_chart_takes_the_whole_row(console) -> None:
    page, url, ids, _ = console
    page.goto(f"{url}/#/run/{ids['silent']}/metrics")  # one metric: val/loss
    page.wait_for_selector('.chart[data-metric="val/loss"][data-rendered]')
    row, chart = page.evaluate("""() => { const c = document.querySelector('.chart[data-metric="val/loss"]');
        return [c.parentElement.getBoundingClientRect().width, c.getBoundingClientRect().width]; }""")
    assert chart > 0.98 * row, (chart, row)  # not half the width with the other half empty
    svg = page.evaluate("""() => document.querySelector('.chart[data-metric="val/loss"] .main-svg').getBoundingClientRect().width""")
    assert svg > 0.95 * chart  # Plotly drew to the chart's width


def test_the_table_is_usable_at_800px_and_static_files_are_compressed_and_cached(console) -> None:
    page, url, _, folders = console
    page.set_viewport_size({"width": 800, "height": 700})
    page.goto(f"{url}/#/folder/{folders['sweep']}")
    wait_query(page, "")
    name = page.locator('#runs-table tr[data-run-name="adam-small"] td[data-col="name"] a')
    box = name.bounding_box()
    assert box and box["x"] + box["width"] <= 800
    assert page.evaluate("document.documentElement.scrollWidth") <= 800  # the table scrolls inside its box, not the page
    shot(page, "runs-800px")

    page.click("a:has-text('syntax')")
    page.wait_for_selector("#search-help code:has-text('metrics.<type>/<name>')")
    page.goto(f"{url}/#/run/not-a-run")
    page.wait_for_selector("[data-testid=page-error]")
    assert "not available" in page.inner_text("#crumbs")

    index = requests.get(f"{url}/", headers={"Accept-Encoding": "gzip"}, timeout=30)
    plotly = "/" + re.search(r'src="(static/vendor/plotly-[0-9a-f]{16}\.min\.js)"', index.text).group(1)  # relative
    raw = requests.get(url + plotly, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=60)
    assert raw.headers["Content-Encoding"] == "gzip" and "immutable" in raw.headers["Cache-Control"]
    assert len(raw.raw.read()) < 1_600_000  # the gzipped bytes on the wire (4.8 MB unpacked)
    etag = raw.headers["ETag"]
    assert requests.get(url + plotly, headers={"If-None-Match": etag}, timeout=30).status_code == 304
    js = requests.get(f"{url}/static/js/pages/folder.js", headers={"Accept-Encoding": "gzip"}, timeout=30)
    assert js.headers["Content-Encoding"] == "gzip" and js.headers["Cache-Control"] == "no-cache" and "ETag" in js.headers
    icon = requests.get(f"{url}/favicon.ico", timeout=30)
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")


def test_system_tiles_show_units_not_raw_bytes(console, sweep_server) -> None:
    page, url, _, _ = console
    _, key, _, _ = sweep_server
    api = Api(url, key)
    try:
        run_id = put_run(api, "short-run", "units", "Succeeded", [], {}, {
            "system/rss_bytes": [336822272.0], "system/net_sent_bytes_per_s": [2048.0], "system/cpu_percent": [37.5]})
    finally:
        api.close()
    page.goto(f"{url}/#/run/{run_id}/system")
    tile = '.metric-value[data-metric="system/{}"] .v'
    page.wait_for_selector(tile.format("rss_bytes"))
    assert page.inner_text(tile.format("rss_bytes")) == "321.2 MiB"  # not 336822272
    assert page.inner_text(tile.format("net_sent_bytes_per_s")) == "2.0 KiB/s"
    assert page.inner_text(tile.format("cpu_percent")) == "37.5%"


def test_the_overview_shows_summary_metrics_and_hparams(console) -> None:
    page, url, ids, _ = console
    page.goto(f"{url}/#/run/{ids['adam-small']}")
    page.wait_for_selector("#overview-summary dl")
    pairs = page.eval_on_selector_all("#overview-summary dt", "ds => ds.map(d => [d.textContent, d.nextElementSibling.textContent])")
    shown = dict(pairs)
    assert shown["test/acc"] == "0.899"  # the last value of each metric
    assert float(shown["val/loss"]) == pytest.approx(losses(0.001, 2)[-1], rel=1e-3)
    assert (shown["lr"], shown["optimizer"], shown["layers"]) == ("0.001", "Adam", "2")


def test_ranks_that_step_alike_flag_no_straggler(console) -> None:
    page, url, ids, _ = console
    page.goto(f"{url}/#/run/{ids['long-ddp']}/ranks")  # both ranks reach every step at the same times
    page.wait_for_selector("#slowest-rank")
    assert page.inner_text("#slowest-rank").startswith("No straggler")
    assert page.locator("#ranks-table tr.slowest").count() == 0
