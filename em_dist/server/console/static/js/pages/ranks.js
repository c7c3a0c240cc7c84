// The Ranks tab: step time per rank with the slowest rank flagged, and a heat strip (rank x time)
// of each rank's lag behind the first rank to reach a step (GET /runs/{id}/ranks); and each rank's
// delivery: whether the server holds all its records, and where the rest is (the run's `delivery`).

import * as api from '../api.js';
import { clear, h } from '../dom.js';
import { draw, plotly } from '../charts.js';

const ms = (s) => (s === null || s === undefined ? '—' : `${(s * 1000).toFixed(1)} ms`);

// One row per rank that numbered its records (every rank but 0): how many the server holds,
// complete or not, and where the rest is (host:path of its journal), else null.
function deliveryTable(run) {
  const delivery = run.delivery || {};
  const ranks = Object.keys(delivery).map(Number).sort((a, b) => a - b);
  if (!ranks.length) return null;
  const rest = (d) => {
    if (d.complete) return '—';
    return d.journal ? `in its journal ${d.journal} (em run upload there merges it)` : 'in its journal on its own host';
  };
  return h('div', { id: 'delivery' }, h('h3', {}, 'Records per rank'),
    h('table', { id: 'delivery-table' },
      h('tr', {}, ['rank', 'records held', 'complete', 'the rest'].map((t) => h('th', {}, t))),
      ranks.map((r) => {
        const d = delivery[String(r)];
        return h('tr', { class: d.complete ? 'complete' : 'incomplete', dataset: { rank: String(r) } },
          h('td', {}, String(r)), h('td', {}, String(d.records)), h('td', {}, d.complete ? 'yes' : 'no'),
          h('td', {}, rest(d)));
      })));
}

export async function renderRanks(body, run) {
  const timing = await api.rankTiming(run.id);
  const delivery = deliveryTable(run);
  const slow = timing.slowest;
  const timed = timing.ranks.filter((e) => e.step_time_s !== null);
  if (!timed.length) {
    clear(body, h('p', { class: 'muted', id: 'ranks-empty' },
      'No step timing yet: it comes from the times of train records (or run.step()) of each rank.'), delivery);
    return;
  }
  const summary = slow
    ? h('p', { id: 'slowest-rank', dataset: { rank: String(slow.rank) } }, h('strong', {}, `Slowest: rank ${slow.rank}`),
      `, median lag ${ms(slow.lag_s)} behind the first rank to reach a step`
      + (slow.share !== null ? ` (${(slow.share * 100).toFixed(0)}% of its step time ${ms(slow.step_time_s)})` : ''))
    : h('p', { class: 'muted', id: 'slowest-rank' }, timing.compared
      ? 'No straggler: every rank steps as fast as the others (a rank that only started later is none).'
      : 'Fewer than two ranks reached a common step.');
  const table = h('table', { id: 'ranks-table' },
    h('tr', {}, ['rank', 'steps', 'median step time', 'median lag', 'largest lag', 'lag / step time'].map((t) => h('th', {}, t))),
    timing.ranks.map((e) => h('tr', { class: slow && e.rank === slow.rank ? 'slowest' : '', dataset: { rank: String(e.rank) },
      style: slow && e.rank === slow.rank ? 'background:#fdecea;font-weight:600' : '' },
    h('td', {}, slow && e.rank === slow.rank ? `${e.rank} ⚑ slowest` : String(e.rank)), h('td', {}, String(e.steps)),
    h('td', {}, ms(e.step_time_s)), h('td', {}, ms(e.lag_s)), h('td', {}, ms(e.max_lag_s)),
    h('td', {}, e.lag_share === null ? '—' : `${(e.lag_share * 100).toFixed(0)}%`))));
  const bars = h('div', { class: 'chart', id: 'step-time-chart' });
  const strip = h('div', { class: 'chart', id: 'lag-strip' });
  clear(body, summary, h('div', { class: 'charts' }, bars, strip), table,
    h('p', { class: 'legend-note' }, 'Lag: how long after the first rank a rank reached each step (steps grouped into at most '
      + '100 columns, each the largest lag in it). Times are each host\'s clock.'), delivery);
  await plotly();
  const color = (e) => (slow && e.rank === slow.rank ? '#c62828' : '#2f6fde');
  await draw(bars, [{ type: 'bar', x: timing.ranks.map((e) => `rank ${e.rank}`), y: timing.ranks.map((e) => e.step_time_s),
    marker: { color: timing.ranks.map(color) }, name: 'median step time (s)' }],
  { title: { text: 'median step time per rank (s)', font: { size: 14 }, x: 0.01 }, margin: { l: 50, r: 10, t: 34, b: 40 },
    yaxis: { automargin: true } });
  const ranks = Object.keys(timing.strip.lag).map(Number).sort((a, b) => a - b);
  await draw(strip, [{ type: 'heatmap', x: timing.strip.start.map((t) => new Date(t * 1000).toISOString()),
    y: ranks.map((r) => `rank ${r}`), z: ranks.map((r) => timing.strip.lag[String(r)]), colorscale: 'YlOrRd', reversescale: true, zmin: 0,
    colorbar: { title: { text: 'lag s' } }, hovertemplate: '%{y} at %{x}: %{z:.3f} s behind<extra></extra>' }],
  { title: { text: 'lag behind the first rank (rank x time)', font: { size: 14 }, x: 0.01 },
    margin: { l: 60, r: 10, t: 34, b: 40 }, xaxis: { type: 'date' }, yaxis: { autorange: 'reversed', automargin: true } });
  strip.dataset.rendered = '1';
}
