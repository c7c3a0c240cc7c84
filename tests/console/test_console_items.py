"""Issue 24, item 7, in headless Chromium under the server's CSP: the compare scatter's labels fit its
plot, the compare metric picker is a searchable checkbox list usable from the keyboard, artifact lists
say which run and rank made each artifact, and a run's title is its name with the folder name secondary.
A real server (SQLite) seeded through its REST API."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.server.harness import ServerProcess
from tests.server.seed import Api, put_run

from .conftest import shot

pytestmark = pytest.mark.timeout(120)

LONG_HPARAM = "warmup_fraction_of_total_training_steps_before_cosine_decay_starts"
LONG_METRIC = "val/top1_accuracy_of_the_exponential_moving_average_of_the_weights"
TRIALS = [  # long run names, as sweeps name them
    ("resnet50-imagenet-cosine-warmup-sweep-trial-0001-seed-17", 0.0001, 0.70),
    ("resnet50-imagenet-cosine-warmup-sweep-trial-0002-seed-17", 0.003, 0.74),
    ("resnet50-imagenet-cosine-warmup-sweep-trial-0003-seed-17", 0.09, 0.71),
]
GRADS = [f"train/layer{i:02d}_grad_norm" for i in range(24)]  # a long metric list
CKPTS = [f"c0ffee00-0000-4000-8000-00000000000{r}" for r in range(4)]
LOCAL_NAMES = ("quickstart_20261203-114455_3f2a9c1e", "quickstart_20261203-120102_b81d07aa")


def put_named_run(api: Api, name: str, alternative_name: str, folder: str) -> dict:
    """A run as the SDK uploads it: its name and its local folder name (alternative_name)."""
    run_id = str(uuid.uuid4())
    answer = api("PUT", f"/runs/{run_id}", json={"folder": folder, "make_folder": True, "run": {
        "name": name, "alternative_name": alternative_name, "status": "Succeeded", "world": {"size": 1},
        "start_timestamp": "2026-12-03T11:44:55+00:00", "end_timestamp": "2026-12-03T11:50:00+00:00"}})
    assert answer.status_code == 200, answer.text
    return answer.json()


def put_artifact(api: Api, artifact_id: str, name: str, folder: str) -> None:
    answer = api("PUT", f"/artifacts/{artifact_id}", json={"folder": folder, "make_folder": True,
                                                           "artifact": {"name": name}, "files": []})
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def items_server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("console-items"), None).start()
    try:
        _, key = srv.add_user("bob")
        _, carol_key = srv.add_user("carol")
        api, carol = Api(srv.url, key), Api(srv.url, carol_key)
        ids = {}
        for name, warmup, acc in TRIALS:
            ids[name] = put_run(api, name, "sweep", hparams={LONG_HPARAM: warmup, "batch_size": 256},
                                metrics={LONG_METRIC: [acc - 0.1, acc], "val/loss": [1.0, 1 - acc],
                                         **{g: [float(i), 0.5] for i, g in enumerate(GRADS)}})
        # a 4-rank job whose every rank saves a "checkpoint", one of them evaluated by another run
        ids["ckpt-job"] = put_run(api, "ckpt-job", "jobs", ranks=4, metrics={"train/loss": [1.0, 0.5]}, artifacts=[
            {"id": CKPTS[r], "name": "checkpoint", "role": "output", "rank": r} for r in range(4)])
        ids["eval-ckpt"] = put_run(api, "eval-ckpt", "jobs", artifacts=[{"id": CKPTS[2], "name": "checkpoint", "role": "input"}])
        for aid in CKPTS:
            put_artifact(api, aid, "checkpoint", "jobs")
        # two runs of one name in one folder: the server lists the second under its local folder name
        first, second = (put_named_run(api, "quickstart", local, "names") for local in LOCAL_NAMES)
        assert first["name"] == "quickstart" and second["name"] == LOCAL_NAMES[1]
        ids["quickstart-1"], ids["quickstart-2"] = first["id"], second["id"]
        # carol's model, shared with bob, used by a run in carol's private folder and by one of bob's
        shared_model = str(uuid.uuid4())
        carol_private = put_run(carol, "carol-private-eval", "private", artifacts=[{"id": shared_model, "name": "model", "role": "input"}])
        put_artifact(carol, shared_model, "model", "models")
        folders = {f["path"]: f["id"] for f in carol("GET", "/folders").json()}
        assert carol("POST", f"/folders/{folders['models']}/shares", json={"user": "bob", "permission": "view"}).status_code == 201
        ids["bob-eval"] = put_run(api, "bob-eval", "evals", artifacts=[{"id": shared_model, "name": "model", "role": "input"}])
        ids["carol-private-eval"] = carol_private
        folders = {f["path"]: f["id"] for f in api("GET", "/folders").json()}
        yield srv, key, carol_key, ids, folders
        api.close()
        carol.close()
    finally:
        srv.stop()


@pytest.fixture
def console(page, items_server):
    srv, key, _, ids, folders = items_server
    answer = page.request.post(f"{srv.url}/api/v1/session", headers={"Authorization": f"Bearer {key}"})
    assert answer.ok, answer.text()
    return page, srv.url, ids, folders


OUTSIDE = """(sel) => {
  const box = document.querySelector(sel).querySelector('.svg-container').getBoundingClientRect();
  const out = [];
  for (const t of document.querySelector(sel).querySelectorAll('svg text')) {
    if (!t.textContent.trim() || getComputedStyle(t).display === 'none') continue;
    const r = t.getBoundingClientRect();
    if (!r.width) continue;
    if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
      out.push([t.textContent, Math.round(r.left - box.left), Math.round(r.right - box.right),
                Math.round(r.top - box.top), Math.round(r.bottom - box.bottom)]);
  }
  return out;
}"""


def test_the_scatters_axis_and_point_labels_fit_inside_its_plot(console) -> None:
    page, url, ids, _ = console
    runs = ",".join(ids[name] for name, *_ in TRIALS)
    page.goto(f"{url}/#/compare/{runs}")
    page.wait_for_selector("#hparam-scatter[data-rendered]")
    page.select_option("#scatter-y", LONG_METRIC)
    page.select_option("#scatter-x", LONG_HPARAM)
    page.wait_for_function(f"() => document.querySelector('#hparam-scatter').dataset.rendered === '{LONG_HPARAM}|{LONG_METRIC}'")
    assert page.evaluate(OUTSIDE, "#hparam-scatter") == []
    points = page.eval_on_selector_all("#hparam-scatter .textpoint text", "ts => ts.map(t => t.textContent)")
    assert len(points) == 3
    assert len(set(points)) == 3  # shortened in the middle: the ends that tell them apart are kept
    for (name, *_), label in zip(TRIALS, points):
        head, _, tail = label.partition("…")
        assert name.startswith(head) and name.endswith(tail) and len(label) < len(name)
    hover = page.evaluate("document.querySelector('#hparam-scatter').data[0].hovertext")
    assert [h.split("<br>")[0] for h in hover] == [name for name, *_ in TRIALS]
    assert LONG_HPARAM in page.get_attribute("#hparam-scatter", "title")
    page.set_viewport_size({"width": 900, "height": 800})  # a narrower chart: still inside
    page.wait_for_timeout(300)
    page.evaluate("Plotly.Plots.resize(document.querySelector('#hparam-scatter'))")
    assert page.evaluate(OUTSIDE, "#hparam-scatter") == []
    shot(page, "compare-scatter-labels")


def test_the_metric_picker_filters_a_checkbox_list_and_works_from_the_keyboard(console) -> None:
    page, url, ids, _ = console
    runs = ",".join(ids[name] for name, *_ in TRIALS[:2])
    page.goto(f"{url}/#/compare/{runs}?metrics=val/loss")
    page.wait_for_selector('#compare-charts .chart[data-compare-metric="val/loss"][data-rendered]')
    picker = page.locator("#compare-metric")
    assert picker.locator("select").count() == 0  # no long multi-select
    assert picker.locator(".chip").all_inner_texts()[0].startswith("val/loss")
    assert page.locator("#compare-metric-filter").is_hidden()  # compact: the list opens on demand

    page.focus("#compare-metric .picker-button")
    page.keyboard.press("Enter")
    filt = page.locator("#compare-metric-filter")
    assert filt.is_visible() and page.evaluate("document.activeElement.id") == "compare-metric-filter"
    assert picker.locator("li:visible").count() == len(GRADS) + 2
    filt.type("layer07")
    assert picker.locator("li:visible input").evaluate_all("bs => bs.map(b => b.value)") == ["train/layer07_grad_norm"]
    filt.fill("grad")
    assert picker.locator("li:visible").count() == len(GRADS)
    page.keyboard.press("ArrowDown")  # into the list
    assert page.evaluate("document.activeElement.value") == "train/layer00_grad_norm"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")  # tick it
    page.wait_for_selector('#compare-charts .chart[data-compare-metric="train/layer01_grad_norm"][data-rendered]')
    assert page.locator('#compare-charts .chart[data-compare-metric="val/loss"]').count() == 1  # both drawn
    metrics = parse_qs(urlsplit(page.url).fragment.partition("?")[2])["metrics"][0].split(",")
    assert sorted(metrics) == ["train/layer01_grad_norm", "val/loss"]  # kept in the URL
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")  # back to the filter
    assert page.evaluate("document.activeElement.id") == "compare-metric-filter"
    filt.fill("val/los")
    page.keyboard.press("Enter")  # Enter in the filter toggles the first match: val/loss off
    page.wait_for_function("() => !document.querySelector('#compare-charts .chart[data-compare-metric=\"val/loss\"]')")
    page.keyboard.press("Escape")
    assert filt.is_hidden() and page.evaluate("document.activeElement.classList.contains('picker-button')")
    assert picker.locator(".chip").count() == 1
    shot(page, "compare-picker")
    picker.locator(".chip button").click()  # a chip's × removes its metric
    page.wait_for_function("() => !document.querySelector('#compare-charts .chart')")
    assert picker.locator(".chip").count() == 0


def test_artifact_rows_name_the_run_and_rank_that_made_them(console) -> None:
    page, url, ids, folders = console
    page.goto(f"{url}/#/folder/{folders['jobs']}")
    page.wait_for_selector("#artifacts-table tr[data-artifact-id]")
    rows = page.eval_on_selector_all("#artifacts-table tr[data-artifact-id]", """rs => rs.map(r => [
        r.querySelector('td[data-col=name]').textContent, r.querySelector('td[data-col=rank]').textContent,
        [...r.querySelectorAll('.artifact-run')].map(u => u.dataset.role + ':' + u.querySelector('.run-title').textContent)])""")
    assert sorted(rows) == [
        ["checkpoint", "0", ["output:ckpt-job"]], ["checkpoint", "1", ["output:ckpt-job"]],
        ["checkpoint", "2", ["output:ckpt-job", "input:eval-ckpt"]], ["checkpoint", "3", ["output:ckpt-job"]]]
    assert len({tuple(map(str, r)) for r in rows}) == 4  # no two rows alike
    link = page.locator(f'#artifacts-table tr[data-artifact-id="{CKPTS[2]}"] .artifact-run[data-role=input] a')
    assert link.get_attribute("href") == f"#/run/{ids['eval-ckpt']}"
    shot(page, "folder-artifacts")
    link.click()
    page.wait_for_selector("#run-title")
    page.goto(f"{url}/#/artifact/{CKPTS[1]}")  # the artifact's page names the rank that made it
    page.wait_for_selector(f'#producers li[data-run-id="{ids["ckpt-job"]}"]')
    assert page.get_attribute(f'#producers li[data-run-id="{ids["ckpt-job"]}"]', "data-rank") == "1"
    assert "rank 1" in page.inner_text("#producers")

    page.goto(f"{url}/#/folder/{folders['models']}")  # carol's folder, shared: her private run is not named
    page.wait_for_selector("#artifacts-table tr[data-artifact-id]")
    assert page.eval_on_selector_all("#artifacts-table .artifact-run .run-title", "ts => ts.map(t => t.textContent)") == ["bob-eval"]


def test_the_folder_artifact_listing_names_only_runs_the_caller_may_see(items_server) -> None:
    srv, key, carol_key, ids, _ = items_server
    for who, mine, theirs in ((key, "bob-eval", "carol-private-eval"), (carol_key, "carol-private-eval", "bob-eval")):
        api = Api(srv.url, who)
        try:
            folders = {f["path"]: f["id"] for f in api("GET", "/folders").json()}
            (model,) = api("GET", f"/folders/{folders['models']}/artifacts").json()
            assert [u["id"] for u in model["runs"]] == [ids[mine]], who
            assert ids[theirs] not in str(model)
            detail = api("GET", f"/artifacts/{model['id']}").json()  # the artifact's own page: the same runs
            assert [u["id"] for u in detail["runs"]] == [ids[mine]] and ids[theirs] not in str(detail)
        finally:
            api.close()


def test_a_runs_title_is_its_name_with_the_folder_name_secondary(console) -> None:
    page, url, ids, folders = console
    page.goto(f"{url}/#/folder/{folders['names']}")
    page.wait_for_selector("#runs-table tr[data-run-id]")
    shown = page.eval_on_selector_all("#runs-table tr[data-run-id] td[data-col=name]", """cs => cs.map(c => [
        c.querySelector('.run-title').textContent, c.querySelector('.alt-name').textContent])""")
    assert sorted(shown) == sorted([["quickstart", LOCAL_NAMES[0]], ["quickstart", LOCAL_NAMES[1]]])
    size = page.evaluate("""() => { const c = document.querySelector('#runs-table td[data-col=name]');
        return [parseFloat(getComputedStyle(c.querySelector('.run-title')).fontSize),
                parseFloat(getComputedStyle(c.querySelector('.alt-name')).fontSize)]; }""")
    assert size[1] < size[0]  # the folder name is the smaller one

    page.goto(f"{url}/#/run/{ids['quickstart-2']}")  # the one the server lists under its folder name
    page.wait_for_selector("#tab-body[data-tab=overview]")
    assert page.inner_text("#run-title") == "quickstart"
    assert page.inner_text(".run-header .alt-name") == LOCAL_NAMES[1]
    assert page.inner_text("#crumbs").rstrip().endswith("quickstart")
    shot(page, "run-title")

    page.goto(f"{url}/#/compare/{ids['quickstart-1']},{ids['quickstart-2']}")
    page.wait_for_selector("#compare-hparams tr")
    heads = page.eval_on_selector_all("#compare-runs .run-title", "ts => ts.map(t => t.textContent)")
    assert heads == ["names/quickstart", "names/quickstart"]
    assert page.eval_on_selector_all("#compare-runs .alt-name", "ts => ts.map(t => t.textContent)") == list(LOCAL_NAMES)
