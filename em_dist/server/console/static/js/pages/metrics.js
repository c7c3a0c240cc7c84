// The Metrics tab: a chart per metric name grouped by type; per-rank lines, mean and band; live updates.

import * as api from '../api.js';
import { clear, h, isLive } from '../dom.js';
import { draw, interpolate, metricLayout, metricTraces } from '../charts.js';

export const POINTS = 2000;
const TYPE_ORDER = ['train', 'val', 'test'];

function metricGroups(names) {
  const byKey = new Map();
  for (const s of names) {
    const key = `${s.type}/${s.name}`;
    if (!byKey.has(key)) byKey.set(key, { key, type: s.type, name: s.name, ranks: [], count: 0 });
    const g = byKey.get(key);
    g.ranks.push(s.rank);
    g.count += s.count;
  }
  return [...byKey.values()];
}

function typeRank(type) {
  const i = TYPE_ORDER.indexOf(type);
  return i < 0 ? TYPE_ORDER.length : i;
}

// Fetch one metric: per-rank series against the x axis, and the cross-rank band when there are several ranks.
export async function fetchMetric(runId, group, axis) {
  const base = { type: group.type, name: group.name, points: POINTS };
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

export async function renderMetrics(body, ctx, run, params) {
  const view = { axis: params.get('x') || 'step', smoothing: 0, hidden: new Set(), band: true, charts: new Map(), signature: '' };
  const axisSelect = h('select', { id: 'x-axis' }, ['step', 'epoch', 'time'].map((a) => h('option', { value: a, selected: a === view.axis }, a)));
  const smoothing = h('input', { type: 'range', id: 'smoothing', min: 0, max: 0.99, step: 0.01, value: 0 });
  const smoothingLabel = h('span', { class: 'mono' }, '0.00');
  const rankBoxes = h('span', { id: 'rank-toggles', class: 'toolbar', style: 'margin:0' });
  const bandBox = h('input', { type: 'checkbox', id: 'show-band', checked: true });
  const sections = h('div', { id: 'metric-sections' });
  const pollNote = h('p', { class: 'muted', id: 'poll-note' });
  const note = h('p', { class: 'legend-note' },
    'Drag to zoom, double-click to reset. Long series are downsampled on the server, keeping each bucket\'s min and max.');
  clear(body, h('div', { class: 'toolbar' }, h('label', {}, 'x axis', axisSelect), h('label', {}, 'smoothing', smoothing, smoothingLabel),
    h('label', {}, bandBox, 'cross-rank mean and min–max'), rankBoxes), sections, note, pollNote);

  const redraw = (chart) => {
    const traces = metricTraces({ series: chart.data.series, band: view.band ? chart.data.band : null,
      smoothing: view.smoothing, hidden: view.hidden, axis: view.axis });
    return draw(chart.div, traces, metricLayout(chart.group.key, view.axis)).then(() => {
      chart.div.dataset.rendered = String(Number(chart.div.dataset.rendered || 0) + 1);
      chart.div.dataset.ranks = chart.data.series.map((s) => s.rank).join(',');
      chart.div.dataset.points = String(chart.data.series.reduce((n, s) => n + s.x.length, 0));
    });
  };
  const load = async (chart) => {
    chart.data = await fetchMetric(run.id, chart.group, view.axis);
    chart.div.dataset.serverMs = String(chart.data.serverMs);
    if (ctx.alive()) await redraw(chart);
  };

  const build = async (names) => {
    const groups = metricGroups(names).sort((a, b) => typeRank(a.type) - typeRank(b.type) || a.type.localeCompare(b.type) || a.name.localeCompare(b.name));
    const ranks = [...new Set(groups.flatMap((g) => g.ranks))].sort((a, b) => a - b);
    view.signature = groups.map((g) => `${g.key}:${g.ranks.join('.')}`).join('|');
    clear(rankBoxes, ranks.length > 1 ? ranks.map((r) => h('label', {}, h('input', {
      type: 'checkbox', checked: !view.hidden.has(r), dataset: { rank: String(r) },
      onchange: (e) => { if (e.target.checked) view.hidden.delete(r); else view.hidden.add(r); view.charts.forEach((c) => c.data && redraw(c)); },
    }), `rank ${r}`)) : null);
    view.charts = new Map();
    const types = [...new Set(groups.map((g) => g.type))];
    clear(sections, types.length ? types.map((type) => [
      h('h2', {}, type),
      h('div', { class: 'charts' }, groups.filter((g) => g.type === type).map((group) => {
        const div = h('div', { class: 'chart', dataset: { metric: group.key } });
        view.charts.set(group.key, { group, div, data: null });
        return div;
      })),
    ]) : h('p', { class: 'muted' }, 'No metrics logged yet.'));
    await Promise.all([...view.charts.values()].map(load));
  };

  axisSelect.addEventListener('change', () => { view.axis = axisSelect.value; view.charts.forEach((c) => load(c)); });
  smoothing.addEventListener('input', () => {
    view.smoothing = Number(smoothing.value);
    smoothingLabel.textContent = view.smoothing.toFixed(2);
    view.charts.forEach((c) => c.data && redraw(c));
  });
  bandBox.addEventListener('change', () => { view.band = bandBox.checked; view.charts.forEach((c) => c.data && redraw(c)); });

  let names = await api.metricNames(run.id);
  await build(names);
  if (isLive(run)) {
    // Poll while the run is live; stop once it ended. A failed poll (the server restarting or
    // going away) is shown as a note and retried on the next tick, never left unhandled.
    let busy = false;
    const stopPolling = ctx.every(3000, async () => {
      if (busy) return;
      busy = true;
      try {
        const fresh = await api.metricNames(run.id);
        const current = await api.run(run.id);
        const groups = metricGroups(fresh);
        const signature = groups.map((g) => `${g.key}:${g.ranks.join('.')}`).join('|');
        if (signature !== view.signature) await build(fresh);
        else {
          const before = new Map(metricGroups(names).map((g) => [g.key, g.count]));
          await Promise.all(groups.filter((g) => before.get(g.key) !== g.count).map((g) => {
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
