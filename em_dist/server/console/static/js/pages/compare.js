// Compare runs: overlay one metric (cross-rank mean per run) and show hparams side by side.

import * as api from '../api.js';
import { clear, fmtValue, h, link, statusBadge } from '../dom.js';
import { draw, finite, rankColor, smooth } from '../charts.js';
import { POINTS } from './metrics.js';

async function runCurve(run, type, name) {
  const base = { type, name, points: POINTS };
  if ((run.world_size || 1) > 1) {
    const agg = await api.aggregate(run.id, base);
    if (agg.steps.length) return { x: agg.steps, y: agg.mean, label: `${run.name} (mean of ${agg.ranks.length} ranks)` };
  }
  const data = await api.metrics(run.id, base);
  const s = data.series[0];
  return s ? { x: s.steps, y: s.values, label: run.name } : null;
}

export async function renderCompare(page, ctx, runIds, params) {
  ctx.crumbs(h('span', {}, 'Compare'));
  if (runIds.length < 1) {
    clear(page, h('h1', {}, 'Compare runs'), h('p', { class: 'muted' }, 'Select runs in a folder\'s run list, then press "Compare selected".'));
    return;
  }
  const runs = await Promise.all(runIds.map((id) => api.run(id)));
  const names = await Promise.all(runs.map((r) => api.metricNames(r.id)));
  const keys = [...new Set(names.flat().map((s) => `${s.type}/${s.name}`))].sort();
  const pick = params.get('metric') || keys.find((k) => k === 'train/loss') || keys[0];
  const metricSelect = h('select', { id: 'compare-metric' }, keys.map((k) => h('option', { value: k, selected: k === pick }, k)));
  const smoothing = h('input', { type: 'range', min: 0, max: 0.99, step: 0.01, value: 0, id: 'compare-smoothing' });
  const chart = h('div', { class: 'chart', id: 'compare-chart', style: 'height:380px' });
  const onlyDiff = h('input', { type: 'checkbox', id: 'only-differences' });
  const table = h('table', { id: 'compare-hparams' });
  clear(page, h('h1', {}, `Compare ${runs.length} runs`),
    h('div', { class: 'toolbar' }, runs.map((r) => [link(`#/run/${r.id}`, r.name), statusBadge(r.status, r.lost_ranks)])),
    h('div', { class: 'toolbar' }, h('label', {}, 'metric', metricSelect), h('label', {}, 'smoothing', smoothing)), chart,
    h('div', { class: 'toolbar', style: 'margin-top:16px' }, h('h2', { style: 'margin:0' }, 'Hyperparameters'), h('label', {}, onlyDiff, 'only differences')),
    table);

  let curves = [];
  const drawChart = () => {
    const w = Number(smoothing.value);
    const traces = curves.map((c, i) => c && { x: c.x, y: smooth(finite(c.y), w), mode: 'lines', name: c.label, line: { color: rankColor(i) } }).filter(Boolean);
    return draw(chart, traces, { title: { text: metricSelect.value, font: { size: 14 } }, margin: { l: 50, r: 10, t: 36, b: 40 },
      xaxis: { title: { text: 'step' } }, legend: { orientation: 'h', x: 1, xanchor: 'right', y: 1.0, yanchor: 'bottom' }, hovermode: 'x unified' })
      .then(() => { chart.dataset.rendered = String(traces.length); });
  };
  const loadChart = async () => {
    if (!metricSelect.value) return;
    const [type, ...rest] = metricSelect.value.split('/');
    curves = await Promise.all(runs.map((r) => runCurve(r, type, rest.join('/'))));
    await drawChart();
  };
  metricSelect.addEventListener('change', loadChart);
  smoothing.addEventListener('input', drawChart);

  const hkeys = [...new Set(runs.flatMap((r) => Object.keys(r.hparams || {})))].sort();
  const drawTable = () => {
    const rows = hkeys.map((k) => {
      const values = runs.map((r) => (k in (r.hparams || {}) ? fmtValue(r.hparams[k]) : '—'));
      return { k, values, differs: new Set(values).size > 1 };
    }).filter((row) => !onlyDiff.checked || row.differs);
    clear(table, h('tr', {}, h('th', {}, 'Name'), runs.map((r) => h('th', {}, r.name))),
      rows.map((row) => h('tr', { class: row.differs ? 'diff' : '', dataset: { hparam: row.k } },
        h('td', {}, h('code', {}, row.k)), row.values.map((v) => h('td', {}, v)))));
  };
  onlyDiff.addEventListener('change', drawTable);
  drawTable();
  await loadChart();
}
