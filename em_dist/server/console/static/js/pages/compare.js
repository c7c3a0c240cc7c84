// Compare runs (from any folders): several metrics at once against step, epoch or relative wall
// time, each run's cross-rank mean (and per-rank lines on request); a parallel-coordinates plot and
// a scatter plot of hparams against a metric; the hparams side by side with differences marked.

import * as api from '../api.js';
import { clear, fmtValue, h, runBadge, runName, runTitle } from '../dom.js';
import { draw, finite, metricLayout, PLOT_CONFIG, plotly, plotText, rankColor, smooth } from '../charts.js';
import { flatHparams } from '../runtable.js';
import { drawParcoords } from '../parcoords.js';
import { fetchMetric, metricGroups } from './metrics.js';
import { multiPicker } from '../picker.js';

const X_TITLES = { step: 'step', epoch: 'epoch', time: 'seconds since the run started' };

// One run's lines for one metric: the cross-rank mean (or the only rank) and, if asked, every rank.
async function runLines(run, name, group, axis, perRank) {
  const data = await fetchMetric(run.id, group, axis);
  let t0 = 0;
  if (axis === 'time') {
    const firsts = data.series.map((s) => s.x.find((v) => v !== null)).filter((v) => v !== undefined);
    t0 = firsts.length ? Math.min(...firsts) : 0;
  }
  const rel = (xs) => (axis === 'time' ? xs.map((v) => (v === null ? null : v - t0)) : xs);
  const lines = [];
  if (data.band) lines.push({ x: rel(data.band.x), y: data.band.mean, label: `${name} (mean of ${data.series.length} ranks)`, kind: 'mean' });
  else if (data.series[0]) lines.push({ x: rel(data.series[0].x), y: data.series[0].y, label: name, kind: 'mean' });
  if (perRank && data.series.length > 1) {
    for (const s of data.series) lines.push({ x: rel(s.x), y: s.y, label: `${name} rank ${s.rank}`, kind: 'rank', rank: s.rank });
  }
  return lines;
}

// Each run's label in charts and tables: its name, and where two compared runs share a name, its
// folder name (or id) too, so the lines stay apart.
function runLabels(runs) {
  const titles = runs.map(runTitle);
  return runs.map((r, i) => (titles.filter((t) => t === titles[i]).length > 1
    ? `${titles[i]} · ${r.alternative_name || r.id.slice(0, 8)}` : titles[i]));
}

// Text measured as Plotly draws it (its default font), to fit labels into the scatter plot.
let measure = null;
function textWidth(text, size) {
  if (!measure) measure = document.createElement('canvas').getContext('2d');
  measure.font = `${size}px "Open Sans", verdana, arial, sans-serif`;
  return measure.measureText(text).width;
}

// text, shortened with an ellipsis until it is at most px wide at font size `size`: its end cut off,
// or (middle) its middle, which keeps what tells a sweep's run names apart (their ends).
export function fitText(text, px, size = 12, middle = false) {
  const t = String(text);
  if (textWidth(t, size) <= px) return t;
  const cut = (n) => (middle ? `${t.slice(0, Math.ceil(n / 2))}…${t.slice(t.length - Math.floor(n / 2))}` : `${t.slice(0, n)}…`);
  let lo = 0; let hi = t.length;
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (textWidth(cut(mid), size) <= px) lo = mid; else hi = mid; }
  return cut(Math.max(1, lo));
}

// Where a point's label goes: inward from the plot's left and right thirds, centred between.
function labelPositions(xs) {
  const order = [...new Set(xs.filter((v) => v !== undefined && v !== null))];
  if (order.every((v) => typeof v === 'number')) order.sort((a, b) => a - b);
  return xs.map((v) => {
    const at = order.indexOf(v);
    if (order.length < 2 || at < 0) return 'top center';
    const f = at / (order.length - 1);
    return f < 1 / 3 ? 'top right' : f > 2 / 3 ? 'top left' : 'top center';
  });
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

  const labelOf = runLabels(runs);
  const metricPicker = multiPicker({ id: 'compare-metric', items: keys, picked: view.metrics, label: 'metrics',
    placeholder: 'filter metrics', onChange: (metrics) => { view.metrics = metrics; loadCharts(); } });
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
    h('div', { class: 'toolbar', id: 'compare-runs' }, runs.map((r) => {
      const shown = r.folder ? `${r.folder}/${runTitle(r)}` : runTitle(r);  // the folder name is secondary, under it
      return [runName({ ...r, local_name: shown, name: shown }, `#/run/${r.id}`), runBadge(r)];
    })),
    h('div', { class: 'toolbar' }, h('span', {}, 'metrics'), metricPicker, h('label', {}, 'x axis', axisSelect),
      h('label', {}, perRank, 'per-rank lines'), h('label', {}, 'smoothing', smoothing)),
    charts,
    h('h2', {}, 'Hyperparameters against a metric'),
    h('div', { class: 'toolbar' }, h('label', {}, 'metric', scatterY), h('label', {}, 'scatter x', scatterX)),
    h('div', { class: 'charts' }, parcoords, scatter),
    h('div', { class: 'toolbar section-head' }, h('h2', {}, 'Hyperparameters'), h('label', {}, onlyDiff, 'only differences')),
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
      return group ? runLines(r, labelOf[i], group, view.axis, view.perRank) : Promise.resolve([]);
    }))));
    lines = new Map(view.metrics.map((key, i) => [key, fetched[i]]));
    await drawCharts();
  };

  const drawHparamPlots = async () => {
    const metric = scatterY.value;
    const y = latest.map((l) => (typeof l[metric] === 'number' ? l[metric] : NaN));
    const dims = hkeys.filter((k) => differing.includes(k) || runs.length === 1).map((k) => dimension(k, flat.map((f) => f[k])));
    dims.push({ label: metric, values: y });
    drawParcoords(parcoords, { dims, color: y, names: labelOf, title: `hparams → ${metric}` });
    parcoords.dataset.rendered = String(dims.length);
    await drawScatter(metric, y);
  };

  // One hparam against the metric, a point per run labelled with its name. Every label is fitted to
  // the plot as drawn (measured): axis titles to the axis' length, point labels shortened (the full
  // name in the hover text) and placed inward at the plot's sides, with room above the highest point;
  // tick labels and titles get their margins from Plotly (automargin). Redrawn when the chart resizes.
  const drawScatter = async (metric, y) => {
    const hx = scatterX.value;
    const xs = flat.map((f) => f[hx]);
    const width = scatter.clientWidth || 460;
    const height = scatter.clientHeight || 320;
    const plotW = Math.max(120, width - 110);
    const plotH = Math.max(80, height - 110);
    const ys = y.filter(Number.isFinite);
    const lo = Math.min(...ys); const hi = Math.max(...ys);
    const pad = (hi - lo) * 0.12 || Math.abs(hi) * 0.1 || 1;
    const logX = xs.every((v) => typeof v === 'number' && v > 0) && Math.max(...xs) / Math.min(...xs) >= 50;
    const title = `${metric} against ${hx || '—'}`;
    scatter.title = title;
    await (await plotly()).react(scatter, [{ type: 'scatter', mode: 'markers+text', x: xs, y,
      text: labelOf.map((n) => plotText(fitText(n, Math.min(220, plotW / 2 - 12), 12, true))), textfont: { size: 12 },
      textposition: labelPositions(xs), cliponaxis: false, hoverinfo: 'text',
      hovertext: labelOf.map((n, i) => [n, `${hx}: ${fmtValue(xs[i])}`, `${metric}: ${fmtValue(y[i])}`].map(plotText).join('<br>')),
      marker: { size: 10, color: runs.map((_, i) => rankColor(i)) }, meta: { kind: 'scatter' } }],
    { title: { text: plotText(fitText(title, plotW, 14)), font: { size: 14 }, x: 0.01, xanchor: 'left' },
      height, margin: { l: 50, r: 16, t: 34, b: 52 }, showlegend: false,  // the box's inner height: Plotly's default overshoots its border
      xaxis: { title: { text: plotText(fitText(hx || '', plotW, 14)), standoff: 8 }, automargin: true, type: logX ? 'log' : '-' },
      yaxis: { title: { text: plotText(fitText(metric, plotH, 14)) }, automargin: true,
        ...(ys.length ? { range: [lo - pad * 0.5, hi + pad * 1.5] } : {}) } }, PLOT_CONFIG);
    scatter.dataset.width = String(width);
    scatter.dataset.rendered = `${hx}|${metric}`;
  };

  const drawTable = () => {
    const rows = hkeys.map((k) => {
      const values = flat.map((f) => (k in f ? fmtValue(f[k]) : '—'));
      return { k, values, differs: new Set(values).size > 1 };
    }).filter((row) => !onlyDiff.checked || row.differs);
    clear(table, h('tr', {}, h('th', {}, 'Name'), runs.map((r, i) => h('th', { title: runs[i].alternative_name || '' }, labelOf[i]))),
      rows.map((row) => h('tr', { class: row.differs ? 'diff' : '', dataset: { hparam: row.k } },
        h('td', {}, h('code', {}, row.k)), row.values.map((v) => h('td', {}, v)))));
  };

  axisSelect.addEventListener('change', () => { view.axis = axisSelect.value; loadCharts(); });
  perRank.addEventListener('change', () => { view.perRank = perRank.checked; loadCharts(); });
  smoothing.addEventListener('input', () => { view.smoothing = Number(smoothing.value); drawCharts(); });
  scatterX.addEventListener('change', drawHparamPlots);
  scatterY.addEventListener('change', drawHparamPlots);
  onlyDiff.addEventListener('change', drawTable);
  drawTable();
  let resizing = null;
  new ResizeObserver(() => {
    if (!scatter.dataset.width || Number(scatter.dataset.width) === scatter.clientWidth || !scatter.isConnected) return;
    clearTimeout(resizing);
    resizing = setTimeout(drawHparamPlots, 150);
  }).observe(scatter);
  await Promise.all([loadCharts(), drawHparamPlots()]);
}
