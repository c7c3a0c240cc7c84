// Captured output: the Logs tab (rank selector, search, follow a live run) and the last lines
// of each rank on a failed run's Overview. Text goes in as text (dom.h), never as HTML.

import * as api from '../api.js';
import { clear, h, isLive } from '../dom.js';

const PAGE = 2000;  // lines shown at first (the newest); follow mode appends as they arrive
const LAST = 15;    // lines per rank on a failed run's Overview

const logsOf = (id, params) => api.api(`/runs/${encodeURIComponent(id)}/logs?${api.query(params)}`);

function clock(t) {
  const d = new Date(t * 1000);
  return isNaN(d) ? '' : d.toISOString().replace('T', ' ').slice(0, 23);
}

function lineRow(line, showRank) {
  return h('div', { class: `logline ${line.stream}`, dataset: { rank: line.rank, stream: line.stream } },
    h('span', { class: 'muted logtime' }, clock(line.time)),
    showRank ? h('span', { class: 'logrank' }, `[${line.rank}]`) : null,
    h('span', { class: 'logtext' }, line.text));
}

function droppedRows(dropped, rank) {
  return Object.entries(dropped || {}).filter(([r]) => rank === '' || r === rank).map(([r, n]) =>
    h('div', { class: 'logline em muted', dataset: { rank: r, stream: 'em' } },
      `[${r}] ${n} bytes of earlier output were dropped (EM_LOG_MAX_BYTES): the newest are kept`));
}

export async function renderLogs(body, ctx, run, params) {
  const first = await logsOf(run.id, { tail: 0 });
  const rankSel = h('select', { id: 'log-rank', 'aria-label': 'rank' },
    h('option', { value: '' }, 'all ranks'), first.ranks.map((r) => h('option', { value: String(r) }, `rank ${r}`)));
  rankSel.value = params.get('rank') || '';
  const search = h('input', { type: 'search', id: 'log-search', placeholder: 'search output', value: params.get('q') || '' });
  const follow = h('input', { type: 'checkbox', id: 'log-follow', checked: isLive(run) });
  const count = h('span', { class: 'muted', id: 'log-count' });
  const view = h('div', { id: 'log-view', class: 'logview', role: 'log' });
  clear(body, h('div', { class: 'toolbar' }, rankSel, search,
    h('label', {}, follow, ' follow'), count), view);
  if (!first.ranks.length) {
    clear(view, h('p', { class: 'muted', id: 'log-empty' }, 'This run recorded no output (capture_output=False, or nothing printed).'));
    return;
  }
  let lastId = 0;
  let shown = 0;
  let generation = 0;
  const query = () => ({ rank: rankSel.value === '' ? undefined : rankSel.value, q: search.value || undefined });
  const load = async () => {
    const mine = ++generation;
    ctx.setParams({ rank: rankSel.value, q: search.value });
    const data = await logsOf(run.id, { ...query(), tail: PAGE });
    if (mine !== generation || !ctx.alive()) return;
    lastId = data.lines.reduce((m, x) => Math.max(m, x.id), 0);
    shown = data.lines.length;
    clear(view, droppedRows(data.dropped, rankSel.value), data.lines.map((x) => lineRow(x, rankSel.value === '')));
    count.textContent = `${shown} lines${shown >= PAGE ? ` (the last ${PAGE})` : ''}`;
    view.scrollTop = view.scrollHeight;
  };
  const more = async () => {
    if (!follow.checked) return;
    const mine = generation;
    const data = await logsOf(run.id, { ...query(), after: lastId }).catch(() => null);
    if (!data || mine !== generation || !ctx.alive() || !data.lines.length) return;
    const atBottom = view.scrollTop + view.clientHeight >= view.scrollHeight - 4;
    data.lines.forEach((x) => { view.append(lineRow(x, rankSel.value === '')); lastId = Math.max(lastId, x.id); });
    shown += data.lines.length;
    count.textContent = `${shown} lines`;
    if (atBottom) view.scrollTop = view.scrollHeight;
  };
  rankSel.addEventListener('change', load);
  let typing;
  search.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(load, 250); });
  ctx.every(2000, more);
  await load();
}

// The last lines of each rank that printed, for a failed run's Overview (null when there are none).
export async function lastLinesPanel(run) {
  const first = await logsOf(run.id, { tail: 0 }).catch(() => null);
  if (!first || !first.ranks.length) return null;
  const parts = await Promise.all(first.ranks.map((r) => logsOf(run.id, { rank: r, tail: LAST }).catch(() => null)));
  const blocks = parts.map((data, i) => (data && data.lines.length ? h('div', { class: 'lastlines', dataset: { rank: first.ranks[i] } },
    h('h3', {}, `rank ${first.ranks[i]}`), h('div', { class: 'logview' }, data.lines.map((x) => lineRow(x, false)))) : null));
  return h('div', { class: 'panel', id: 'last-output' },
    h('h2', { style: 'margin-top:0' }, 'Last output'),
    h('p', { class: 'muted' }, `The last lines each rank printed. `, h('a', { href: `#/run/${run.id}/logs` }, 'All output')),
    blocks);
}
