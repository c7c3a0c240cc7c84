// The Metrics tab: a chart per metric grouped by type; per-rank lines, mean and band (multi-rank
// runs only); log scale, outlier clipping, a metric search box; zoom refetches finer data for the
// zoomed step range; a metric with a single point shows as a value; live updates.

import * as api from '../api.js';
import { clear, fmtMetric, h, isLive } from '../dom.js';
import { clippedRange, draw, interpolate, metricLayout, metricTraces } from '../charts.js';

export const POINTS = 2000;
const TYPE_ORDER = ['train', 'val', 'test'];

export function metricGroups(names) {
  const byKey = new Map();
  for (const s of names) {
    const key = `${s.type}/${s.name}`;
    if (!byKey.has(key)) byKey.set(key, { key, type: s.type, name: s.name, ranks: [], count: 0, maxCount: 0, last: {} });
    const g = byKey.get(key);
    g.ranks.push(s.rank);
    g.count += s.count;
    g.maxCount = Math.max(g.maxCount, s.count);
    g.last[s.rank] = s.last_value;
  }
  return [...byKey.values()];
}

function typeRank(type) {
  const i = TYPE_ORDER.indexOf(type);
  return i < 0 ? TYPE_ORDER.length : i;
}

// Fetch one metric: per-rank series against the x axis, and the cross-rank band when there are
// several ranks. window: {min, max} steps (a zoomed chart) or null for the whole series.
export async function fetchMetric(runId, group, axis, window = null) {
  const base = { type: group.type, name: group.name, points: POINTS, step_min: window ? window.min : null,
    step_max: window ? window.max : null };
  const wantBand = group.ranks.length > 1;
  const [data, agg] = await Promise.all([
    api.metrics(runId, { ...base, x: axis }),
    wantBand ? api.aggregate(runId, base) : Promise.resolve(null),
  ]);
  const column = { step: 'steps', epoch: 'epochs', time: 'times' }[axis];
  const series = data.series.map((s) => ({ rank: s.rank, count: s.count, steps: s.steps, x: s[column], y: s.values }));
  let band = null;
  if (agg) {
    let x = agg.steps;
    if (axis !== 'step' && series.length) {
      const ref = series[0];
      x = agg.steps.map((step) => interpolate(ref.steps, ref.x, step));
    }
    band = { x, mean: agg.mean, min: agg.min, max: agg.max };
  }
  return { series, band, serverMs: data.server_ms };
}

// The steps a zoomed x range covers, read from the points drawn (works for step, epoch and time axes).
function stepWindow(chart, axis, x0, x1) {
  const toNum = (v) => (axis === 'time' ? Date.parse(v) / 1000 : Number(v));
  const lo = toNum(x0); const hi = toNum(x1);
  let min = Infinity; let max = -Infinity;
  for (const s of chart.data.series) {
    s.x.forEach((x, i) => {
      if (x !== null && x >= lo && x <= hi) { min = Math.min(min, s.steps[i]); max = Math.max(max, s.steps[i]); }
    });
  }
  if (axis === 'step') { min = Math.min(min, Math.ceil(lo)); max = Math.max(max, Math.floor(hi)); }
  return Number.isFinite(min) && Number.isFinite(max) ? { min: Math.floor(min), max: Math.ceil(max) } : null;
}

// kinds: {only: type} charts that type alone (the System tab: x axis time, no cross-rank band by default, as
// samples of different ranks share an index, not a moment), {exclude: type} all but it.
export async function renderMetrics(body, ctx, run, params, kinds = {}) {
  const ofKind = (names) => names.filter((s) => (kinds.only ? s.type === kinds.only : s.type !== kinds.exclude));
  const view = { axis: params.get('x') || kinds.axis || 'step', smoothing: 0, hidden: new Set(), band: !kinds.only, log: params.get('log') === '1',
    clip: params.get('clip') === '1', search: params.get('metric') || '', charts: new Map(), signature: '' };
  const keep = () => ctx.setParams({ x: view.axis === (kinds.axis || 'step') ? '' : view.axis, log: view.log ? '1' : '', clip: view.clip ? '1' : '',
    metric: view.search });
  const axisSelect = h('select', { id: 'x-axis' }, ['step', 'epoch', 'time'].map((a) => h('option', { value: a, selected: a === view.axis }, a)));
  const smoothing = h('input', { type: 'range', id: 'smoothing', min: 0, max: 0.99, step: 0.01, value: 0 });
  const smoothingLabel = h('span', { class: 'mono' }, '0.00');
  const search = h('input', { type: 'search', id: 'metric-search', placeholder: 'find a metric', value: view.search });
  const logBox = h('input', { type: 'checkbox', id: 'log-y', checked: view.log });
  const clipBox = h('input', { type: 'checkbox', id: 'clip-outliers', checked: view.clip });
  const rankControls = h('span', { id: 'rank-controls', class: 'toolbar', style: 'margin:0' });
  const values = h('div', { class: 'metric-values', id: 'metric-values' });
  const sections = h('div', { id: 'metric-sections' });
  const pollNote = h('p', { class: 'muted', id: 'poll-note' });
  const note = h('p', { class: 'legend-note' },
    'Drag to zoom: the server sends finer points for the zoomed steps. Double-click to reset. Long series are downsampled '
    + 'on the server, keeping each bucket\'s min and max.');
  clear(body, h('div', { class: 'toolbar' }, search, h('label', {}, 'x axis', axisSelect),
    h('label', {}, 'smoothing', smoothing, smoothingLabel), h('label', {}, logBox, 'log y'),
    h('label', {}, clipBox, 'clip outliers'), rankControls), values, sections, note, pollNote);

  const redraw = (chart) => {
    if (!chart.data) return Promise.resolve();
    const traces = metricTraces({ series: chart.data.series, band: view.band ? chart.data.band : null,
      smoothing: view.smoothing, hidden: view.hidden, axis: view.axis });
    const ys = traces.filter((t) => t.visible !== 'legendonly' && t.meta.kind !== 'band').flatMap((t) => t.y);
    const yRange = view.clip ? clippedRange(ys, view.log) : null;
    const layout = metricLayout(chart.group.key, view.axis, { log: view.log, yRange });
    if (chart.xRange) { layout.xaxis.range = chart.xRange; layout.xaxis.autorange = false; }
    chart.drawing = true;
    return draw(chart.div, traces, layout).then(() => {
      chart.drawing = false;
      chart.div.dataset.rendered = String(Number(chart.div.dataset.rendered || 0) + 1);
      chart.div.dataset.ranks = chart.data.series.map((s) => s.rank).join(',');
      chart.div.dataset.points = String(chart.data.series.reduce((n, s) => n + s.x.length, 0));
      chart.div.dataset.window = chart.window ? `${chart.window.min}-${chart.window.max}` : 'all';
      if (!chart.listening) {
        chart.listening = true;
        chart.div.on('plotly_relayout', (event) => onZoom(chart, event));
      }
    });
  };
  const load = async (chart) => {
    chart.data = await fetchMetric(run.id, chart.group, view.axis, chart.window);
    chart.div.dataset.serverMs = String(chart.data.serverMs);
    chart.div.dataset.fetches = String(Number(chart.div.dataset.fetches || 0) + 1);
    if (ctx.alive()) await redraw(chart);
  };
  const onZoom = (chart, event) => {
    if (chart.drawing) return;
    if (event['xaxis.autorange']) {
      chart.window = null; chart.xRange = null;
    } else if (event['xaxis.range[0]'] !== undefined || Array.isArray(event['xaxis.range'])) {
      // a drag reports range[0] and range[1]; Plotly.relayout(div, {'xaxis.range': [a, b]}) the pair
      chart.xRange = event['xaxis.range'] ? [...event['xaxis.range']] : [event['xaxis.range[0]'], event['xaxis.range[1]']];
      chart.window = stepWindow(chart, view.axis, ...chart.xRange);
      if (!chart.window) return;
    } else {
      return;
    }
    load(chart).catch((err) => { pollNote.textContent = `Could not fetch the zoomed range: ${err.message || err}`; });
  };
  const applySearch = () => {
    const needle = view.search.trim().toLowerCase();
    for (const c of view.charts.values()) c.div.hidden = Boolean(needle) && !c.group.key.toLowerCase().includes(needle);
    for (const el of values.children) el.hidden = Boolean(needle) && !el.dataset.metric.toLowerCase().includes(needle);
    for (const section of sections.querySelectorAll('section')) {
      section.hidden = [...section.querySelectorAll('.chart')].every((c) => c.hidden);
    }
  };

  const build = async (names) => {
    const groups = metricGroups(names).sort((a, b) => typeRank(a.type) - typeRank(b.type) || a.type.localeCompare(b.type) || a.name.localeCompare(b.name));
    const ranks = [...new Set(groups.flatMap((g) => g.ranks))].sort((a, b) => a - b);
    view.signature = groups.map((g) => `${g.key}:${g.ranks.join('.')}:${g.maxCount > 1}`).join('|');
    const multi = ranks.length > 1;  // the cross-rank controls only mean something with several ranks
    clear(rankControls, multi ? [
      h('label', {}, h('input', { type: 'checkbox', id: 'show-band', checked: view.band, onchange: (e) => {
        view.band = e.target.checked; view.charts.forEach(redraw);
      } }), 'cross-rank mean and min–max'),
      h('span', { id: 'rank-toggles', class: 'toolbar', style: 'margin:0' }, ranks.map((r) => h('label', {}, h('input', {
        type: 'checkbox', checked: !view.hidden.has(r), dataset: { rank: String(r) },
        onchange: (e) => { if (e.target.checked) view.hidden.delete(r); else view.hidden.add(r); view.charts.forEach(redraw); },
      }), `rank ${r}`))),
    ] : null);
    const single = groups.filter((g) => g.maxCount <= 1);
    const charted = groups.filter((g) => g.maxCount > 1);
    clear(values, single.map((g) => h('div', { class: 'metric-value', dataset: { metric: g.key } },
      h('div', { class: 'k' }, g.key),
      h('div', { class: 'v' }, g.ranks.length > 1
        ? g.ranks.map((r) => `${fmtMetric(g.key, g.last[r])} (rank ${r})`).join(' · ') : fmtMetric(g.key, g.last[g.ranks[0]])))));
    view.charts = new Map();
    const types = [...new Set(charted.map((g) => g.type))];
    clear(sections, types.length ? types.map((type) => h('section', { dataset: { type } },
      h('h2', {}, type),
      h('div', { class: 'charts' }, charted.filter((g) => g.type === type).map((group) => {
        const div = h('div', { class: 'chart', dataset: { metric: group.key } });
        view.charts.set(group.key, { group, div, data: null, window: null, xRange: null });
        return div;
      })))) : (single.length ? null : h('p', { class: 'muted' }, 'No metrics logged yet.')));
    applySearch();
    await Promise.all([...view.charts.values()].map(load));
  };

  axisSelect.addEventListener('change', () => {
    view.axis = axisSelect.value;
    keep();
    view.charts.forEach((c) => { c.window = null; c.xRange = null; load(c); });
  });
  smoothing.addEventListener('input', () => {
    view.smoothing = Number(smoothing.value);
    smoothingLabel.textContent = view.smoothing.toFixed(2);
    view.charts.forEach(redraw);
  });
  logBox.addEventListener('change', () => { view.log = logBox.checked; keep(); view.charts.forEach(redraw); });
  clipBox.addEventListener('change', () => { view.clip = clipBox.checked; keep(); view.charts.forEach(redraw); });
  search.addEventListener('input', () => { view.search = search.value; keep(); applySearch(); });

  let names = ofKind(await api.metricNames(run.id));
  await build(names);
  if (isLive(run)) {
    // Poll while the run is live; stop once it ended. A failed poll (the server restarting or
    // going away) is shown as a note and retried on the next tick, never left unhandled.
    let busy = false;
    const stopPolling = ctx.every(3000, async () => {
      if (busy) return;
      busy = true;
      try {
        const fresh = ofKind(await api.metricNames(run.id));
        const current = await api.run(run.id);
        const groups = metricGroups(fresh);
        const signature = groups.map((g) => `${g.key}:${g.ranks.join('.')}:${g.maxCount > 1}`).join('|');
        if (signature !== view.signature) await build(fresh);
        else {
          const before = new Map(metricGroups(names).map((g) => [g.key, g.count]));
          await Promise.all(groups.filter((g) => before.get(g.key) !== g.count && view.charts.has(g.key)).map((g) => {
            const chart = view.charts.get(g.key);
            chart.group = g;
            return load(chart);
          }));
        }
        names = fresh;
        pollNote.textContent = '';
        if (!isLive(current)) stopPolling();
      } catch (err) {
        pollNote.textContent = `Live update paused: ${err.message || err}. Retrying.`;
      } finally {
        busy = false;
      }
    });
  }
}
