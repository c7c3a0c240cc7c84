"""The console in real headless Chromium against a real server holding runs of a real torchrun job."""

from __future__ import annotations

import re

import pytest

from .conftest import shot

pytestmark = pytest.mark.timeout(180)


def sign_in(page, url: str, key: str) -> None:
    page.goto(url + "/")
    page.fill("#api-key", key)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#runs-table")


def rank_lines(page, metric: str) -> list[int]:
    """Ranks drawn as lines in a metric's chart, once it has rendered."""
    page.wait_for_selector(f'.chart[data-metric="{metric}"][data-rendered]')
    return page.evaluate(
        """(m) => document.querySelector(`.chart[data-metric="${m}"]`).data
               .filter((t) => t.meta && t.meta.kind === 'rank').map((t) => t.meta.rank)""", metric)


def test_a_wrong_key_is_refused(page, console_server):
    srv, _ = console_server
    page.goto(srv.url + "/")
    page.fill("#api-key", "em_not-a-key")
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#signin-error:has-text('refused')")
    assert page.context.cookies() == []
    shot(page, "signin-refused")


def test_find_the_run_its_rank_curves_gpus_and_model(page, console_server, ddp_job):
    srv, key = console_server
    sign_in(page, srv.url, key)
    # the key lives only in an HttpOnly, SameSite=Strict cookie
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "em_session" not in page.evaluate("document.cookie")

    page.click('#folder-tree a[data-folder="mnist"]')
    page.click('#folder-tree a[data-folder="mnist/ddp"]')
    row = page.locator('#runs-table tr[data-run-name="ddp-mnist"]')
    row.wait_for()
    assert "Succeeded" in row.inner_text() and re.search(r"\b2\b", row.inner_text())
    page.fill("#run-filter", "eval")
    page.wait_for_selector('#runs-table tr[data-run-name="ddp-mnist"]', state="detached")
    page.fill("#run-filter", "")
    shot(page, "runs")

    row.locator("a").first.click()
    page.wait_for_selector("#tab-body[data-tab=overview]")
    assert "torchrun" in page.inner_text("#tab-body")
    shot(page, "run-overview")

    page.click(".tabs a[data-tab=metrics]")
    assert sorted(rank_lines(page, "train/loss")) == [0, 1]
    kinds = page.evaluate("""document.querySelector('.chart[data-metric="train/loss"]').data.map((t) => t.meta.kind)""")
    assert "mean" in kinds and "band" in kinds
    shot(page, "run-metrics")
    page.uncheck('#rank-toggles input[data-rank="1"]')
    page.wait_for_function("""() => document.querySelector('.chart[data-metric="train/loss"]').data
        .find((t) => t.meta.rank === 1).visible === 'legendonly'""")
    page.select_option("#x-axis", "epoch")  # downsampled series against epoch (the metrics query with x=epoch)
    page.wait_for_function("""() => { const c = document.querySelector('.chart[data-metric="train/loss"]');
        return c.layout.xaxis.title.text === 'epoch' && c.data.find((t) => t.meta.rank === 0).x.at(-1) === 2; }""")

    page.click(".tabs a[data-tab=platform]")
    page.wait_for_selector('#platform-table tr[data-ranks="0,1"]')  # identical ranks of a node: one row
    page.check("#platform-every-rank")
    ranks = page.eval_on_selector_all("#platform-ranks tr[data-rank]", "rows => rows.map(r => r.dataset.rank)")
    assert ranks == ["0", "1"]
    shot(page, "run-platform")

    page.click(".tabs a[data-tab=hparams]")
    page.fill("#hparam-search", "optim")
    assert page.locator("#hparams-table tr").count() == 2
    page.click(".tabs a[data-tab=artifacts]")
    page.wait_for_selector("text=model_state_dict.pt")
    shot(page, "run-artifacts")

    page.click(".tabs a[data-tab=dataflow]")
    page.wait_for_selector("#dataflow svg")
    kinds = page.eval_on_selector_all("#dataflow .node", "ns => ns.map(n => n.dataset.kind + ':' + n.dataset.name)")
    assert {"run:ddp-mnist", "artifact:ddp-model", "run:eval-model"} <= set(kinds)
    shot(page, "run-dataflow")
    page.click('#dataflow .node[data-kind=artifact][data-name="ddp-model"]')
    page.wait_for_selector("#producers a:has-text('ddp-mnist')")
    assert "eval-model" in page.inner_text("#consumers")
    assert "model_state_dict.pt" in page.inner_text("table.files")
    shot(page, "artifact")
    page.click('#dataflow .node[data-kind=run][data-name="ddp-mnist"]')
    page.wait_for_selector("#tab-body[data-tab=dataflow] #dataflow")

    page.click("#signout")
    page.wait_for_selector("#signin-form")
    assert page.context.cookies() == []


def test_compare_overlays_runs_and_highlights_hparam_differences(page, console_server):
    srv, key = console_server
    sign_in(page, srv.url, key)
    page.click('#folder-tree a[data-folder="mnist/ddp"]')
    page.wait_for_selector('#runs-table tr[data-run-name="eval-model"]')
    for name in ("ddp-mnist", "eval-model"):
        page.check(f'#runs-table tr[data-run-name="{name}"] input[type=checkbox]')
    page.click("#compare")
    page.wait_for_selector("#compare-charts .chart[data-rendered]")
    page.click("#compare-metric .picker-button")
    page.fill("#compare-metric-filter", "test/acc")
    page.press("#compare-metric-filter", "Enter")
    page.wait_for_selector('#compare-hparams tr.diff[data-hparam="batch_size"]')
    assert page.locator('#compare-hparams tr.diff[data-hparam="lr"]').count() == 0
    shot(page, "compare")
