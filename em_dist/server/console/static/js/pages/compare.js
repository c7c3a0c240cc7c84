// Compare runs (from any folders): several metrics at once against step, epoch or relative wall
// time, each run's cross-rank mean (and per-rank lines on request); a parallel-coordinates plot and
// a scatter plot of hparams against a metric; the hparams side by side with differences marked.

import * as api from '../api.js';
import { clear, fmtValue, h, link, runBadge } from '../dom.js';
import { draw, finite, metricLayout, PLOT_CONFIG, plotly, plotText, rankColor, smooth } from '../charts.js';
import { flatHparams } from '../runtable.js';
import { drawParcoords } from '../parcoords.js';
import { fetchMetric, metricGroups } from './metrics.js';

const X_TITLES = { step: 'step', epoch: 'epoch', time: 'seconds since the run started' };

// One run's lines for one metric: the cross-rank mean (or the only rank) and, if asked, every rank.
async function runLines(run, group, axis, perRank) {
  const data = await fetchMetric(run.id, group, axis);
  let t0 = 0;
  if (axis === 'time') {
    const firsts = data.series.map((s) => s.x.find((v) => v !== null)).filter((v) => v !== undefined);
    t0 = firsts.length ? Math.min(...firsts) : 0;
  }
  const rel = (xs) => (axis === 'time' ? xs.map((v) => (v === null ? null : v - t0)) : xs);
  const lines = [];
  if (data.band) lines.push({ x: rel(data.band.x), y: data.band.mean, label: `${run.name} (mean of ${data.series.length} ranks)`, kind: 'mean' });
  else if (data.series[0]) lines.push({ x: rel(data.series[0].x), y: data.series[0].y, label: run.name, kind: 'mean' });
  if (perRank && data.series.length > 1) {
    for (const s of data.series) lines.push({ x: rel(s.x), y: s.y, label: `${run.name} rank ${s.rank}`, kind: 'rank', rank: s.rank });
  }
  return lines;
}

function latestOf(names) {
  const out = {};
  for (const g of metricGroups(names)) out[g.key] = g.last[Math.min(...g.ranks)];
  return out;
}

// Hparam columns as parallel-coordinates dimensions: numbers as they are, anything else as categories.
// Names and categories are users' text: drawParcoords puts them in as SVG text, never as markup.
function dimension(label, values) {
  const numeric = values.every((v) => typeof v === 'number' || v === undefined || v === null);
  if (numeric) return { label, values: values.map((v) => (typeof v === 'number' ? v : NaN)) };
  const cats = [...new Set(values.map((v) => fmtValue(v)))].sort();
  return { label, values: values.map((v) => cats.indexOf(fmtValue(v))), ticktext: cats };
}

export async function renderCompare(page, ctx, runIds, params) {
  ctx.crumbs(h('span', {}, 'Compare'));
  if (runIds.length < 1) {
    clear(page, h('h1', {}, 'Compare runs'), h('p', { class: 'muted' }, 'Select runs in a folder\'s run list, then press "Compare selected".'));
    return;
  }
  const runs = await Promise.all(runIds.map((id) => api.run(id)));
  const names = await Promise.all(runs.map((r) => api.metricNames(r.id)));
  const latest = names.map(latestOf);
  const groupsByRun = names.map((n) => new Map(metricGroups(n).map((g) => [g.key, g])));
  const keys = [...new Set(names.flat().map((s) => `${s.type}/${s.name}`))].sort();
  const asked = (params.get('metrics') || params.get('metric') || '').split(',').filter((k) => keys.includes(k));
  const picked = asked.length ? asked : [keys.find((k) => k === 'train/loss') || keys[0]].filter(Boolean);
  const view = { metrics: picked, axis: params.get('x') || 'step', perRank: params.get('ranks') === '1', smoothing: 0 };
  const flat = runs.map((r) => flatHparams(r.hparams));
  const hkeys = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();

  const metricSelect = h('select', { id: 'compare-metric', multiple: true, size: Math.min(Math.max(keys.length, 2), 5),
    'aria-label': 'metrics (ctrl-click for several)' }, keys.map((k) => h('option', { value: k, selected: view.metrics.includes(k) }, k)));
  const axisSelect = h('select', { id: 'compare-x' }, Object.keys(X_TITLES).map((a) => h('option', { value: a, selected: a === view.axis },
    a === 'time' ? 'relative wall time' : a)));
  const perRank = h('input', { type: 'checkbox', id: 'compare-ranks', checked: view.perRank });
  const smoothing = h('input', { type: 'range', min: 0, max: 0.99, step: 0.01, value: 0, id: 'compare-smoothing' });
  const charts = h('div', { class: 'charts', id: 'compare-charts' });
  const scatterX = h('select', { id: 'scatter-x', 'aria-label': 'hparam' }, hkeys.map((k) => h('option', { value: k }, k)));
  const scatterY = h('select', { id: 'scatter-y', 'aria-label': 'metric' }, keys.map((k) => h('option', { value: k, selected: k === view.metrics[0] }, k)));
  const parcoords = h('div', { class: 'chart tall', id: 'parcoords' });
  const scatter = h('div', { class: 'chart', id: 'hparam-scatter' });
  const onlyDiff = h('input', { type: 'checkbox', id: 'only-differences' });
  const table = h('table', { id: 'compare-hparams' });
  const differing = hkeys.filter((k) => new Set(flat.map((f) => fmtValue(f[k]))).size > 1);
  if (differing.length) scatterX.value = differing.find((k) => flat.every((f) => typeof f[k] === 'number')) || differing[0];
  clear(page, h('h1', {}, `Compare ${runs.length} runs`),
    h('div', { class: 'toolbar' }, runs.map((r) => [link(`#/run/${r.id}`, r.folder ? `${r.folder}/${r.name}` : r.name), runBadge(r)])),
    h('div', { class: 'toolbar' }, h('label', {}, 'metrics', metricSelect), h('label', {}, 'x axis', axisSelect),
      h('label', {}, perRank, 'per-rank lines'), h('label', {}, 'smoothing', smoothing)),
    charts,
    h('h2', {}, 'Hyperparameters against a metric'),
    h('div', { class: 'toolbar' }, h('label', {}, 'metric', scatterY), h('label', {}, 'scatter x', scatterX)),
    h('div', { class: 'charts' }, parcoords, scatter),
    h('div', { class: 'toolbar', style: 'margin-top:16px' }, h('h2', { style: 'margin:0' }, 'Hyperparameters'), h('label', {}, onlyDiff, 'only differences')),
    h('div', { class: 'table-wrap' }, table));

  const keep = () => ctx.setParams({ metrics: view.metrics.join(','), x: view.axis === 'step' ? '' : view.axis, ranks: view.perRank ? '1' : '' });
  let lines = new Map();  // metric key -> [per run: lines]
  const drawCharts = () => Promise.all(view.metrics.map((key) => {
    const div = charts.querySelector(`.chart[data-compare-metric="${CSS.escape(key)}"]`);
    const traces = [];
    (lines.get(key) || []).forEach((runLinesOf, i) => runLinesOf.forEach((l) => traces.push({
      x: l.x, y: smooth(finite(l.y), view.smoothing), mode: l.x.length === 1 ? 'markers' : 'lines', name: l.label,
      line: { color: rankColor(i), width: l.kind === 'rank' ? 1 : 2, dash: l.kind === 'rank' ? 'dot' : 'solid' },
      marker: { color: rankColor(i) }, meta: { kind: l.kind, run: runs[i].id, rank: l.rank },
    })));
    // the metrics tab's layout (legend under the axis title); relative time is plain seconds, so a linear axis
    return draw(div, traces, metricLayout(key, view.axis === 'epoch' ? 'epoch' : 'step', { xTitle: X_TITLES[view.axis] }))
      .then(() => { div.dataset.rendered = String(traces.length); });
  }));
  const loadCharts = async () => {
    keep();
    clear(charts, view.metrics.map((key) => h('div', { class: 'chart', dataset: { compareMetric: key } })));
    const fetched = await Promise.all(view.metrics.map((key) => Promise.all(runs.map((r, i) => {
      const group = groupsByRun[i].get(key);
      return group ? runLines(r, group, view.axis, view.perRank) : Promise.resolve([]);
    }))));
    lines = new Map(view.metrics.map((key, i) => [key, fetched[i]]));
    await drawCharts();
  };

  const drawHparamPlots = async () => {
    const metric = scatterY.value;
    const y = latest.map((l) => (typeof l[metric] === 'number' ? l[metric] : NaN));
    const dims = hkeys.filter((k) => differing.includes(k) || runs.length === 1).map((k) => dimension(k, flat.map((f) => f[k])));
    dims.push({ label: metric, values: y });
    drawParcoords(parcoords, { dims, color: y, names: runs.map((r) => r.name), title: `hparams → ${metric}` });
    parcoords.dataset.rendered = String(dims.length);
    const hx = scatterX.value;
    await (await plotly()).react(scatter, [{ type: 'scatter', mode: 'markers+text', x: flat.map((f) => f[hx]), y, text: runs.map((r) => plotText(r.name)),
      textposition: 'top center', cliponaxis: false, marker: { size: 10, color: runs.map((_, i) => rankColor(i)) }, meta: { kind: 'scatter' } }],
    { title: { text: plotText(`${metric} against ${hx || '—'}`), font: { size: 14 }, x: 0.01, xanchor: 'left' }, margin: { l: 50, r: 10, t: 34, b: 40 },
      xaxis: { title: { text: plotText(hx || '') }, type: flat.every((f) => typeof f[hx] === 'number' && f[hx] > 0)
        && Math.max(...flat.map((f) => f[hx])) / Math.min(...flat.map((f) => f[hx])) >= 50 ? 'log' : '-' },
      yaxis: { title: { text: plotText(metric) } } }, PLOT_CONFIG);
    scatter.dataset.rendered = String(runs.length);
  };

  const drawTable = () => {
    const rows = hkeys.map((k) => {
      const values = flat.map((f) => (k in f ? fmtValue(f[k]) : '—'));
      return { k, values, differs: new Set(values).size > 1 };
    }).filter((row) => !onlyDiff.checked || row.differs);
    clear(table, h('tr', {}, h('th', {}, 'Name'), runs.map((r) => h('th', {}, r.name))),
      rows.map((row) => h('tr', { class: row.differs ? 'diff' : '', dataset: { hparam: row.k } },
        h('td', {}, h('code', {}, row.k)), row.values.map((v) => h('td', {}, v)))));
  };

  metricSelect.addEventListener('change', () => {
    view.metrics = [...metricSelect.selectedOptions].map((o) => o.value);
    loadCharts();
  });
  axisSelect.addEventListener('change', () => { view.axis = axisSelect.value; loadCharts(); });
  perRank.addEventListener('change', () => { view.perRank = perRank.checked; loadCharts(); });
  smoothing.addEventListener('input', () => { view.smoothing = Number(smoothing.value); drawCharts(); });
  scatterX.addEventListener('change', drawHparamPlots);
  scatterY.addEventListener('change', drawHparamPlots);
  onlyDiff.addEventListener('change', drawTable);
  drawTable();
  await Promise.all([loadCharts(), drawHparamPlots()]);
}
