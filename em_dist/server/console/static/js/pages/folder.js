// A folder: its runs (filter, sort, latest metric values, pick runs to compare) and its artifacts.

import * as api from '../api.js';
import { clear, durationSeconds, fmtDuration, fmtNumber, fmtTime, h, labels, link, statusBadge } from '../dom.js';

const PREFERRED = ['train/loss', 'val/loss', 'val/acc', 'train/acc', 'test/acc'];

function defaultMetrics(keys) {
  const picked = PREFERRED.filter((k) => keys.includes(k));
  return (picked.length ? picked : keys).slice(0, 3);
}

const COLUMNS = {
  name: (r) => r.name.toLowerCase(),
  status: (r) => r.status,
  start: (r) => r.start_timestamp || '',
  duration: (r) => durationSeconds(r.start_timestamp, r.end_timestamp) ?? -1,
  world: (r) => r.world_size,
};

export async function renderFolder(page, ctx, folderId, params) {
  const folder = ctx.state.folders.find((f) => f.id === folderId);
  ctx.crumbs(...ctx.folderPath(folderId));
  const view = {
    filter: params.get('q') || '', status: params.get('status') || '', sort: 'start', desc: true,
    metrics: null, selected: new Set(), runs: [],
  };
  const filterInput = h('input', { type: 'search', id: 'run-filter', placeholder: 'filter by name or label', value: view.filter });
  const statusSelect = h('select', { id: 'status-filter' },
    ['', 'Running', 'Succeeded', 'Failed'].map((s) => h('option', { value: s, selected: s === view.status }, s || 'any status')));
  const metricSelect = h('select', { id: 'metric-columns', multiple: true, size: 1, title: 'metric columns (ctrl-click for several)' });
  const compare = h('button', { type: 'button', id: 'compare', disabled: true }, 'Compare selected');
  const table = h('table', { id: 'runs-table' });
  const artifacts = h('div', { id: 'folder-artifacts' });
  clear(page,
    h('h1', {}, folder ? folder.path : 'Folder'),
    h('div', { class: 'toolbar' }, filterInput, statusSelect, h('label', {}, 'metrics', metricSelect), compare),
    table,
    h('h2', {}, 'Artifacts'), artifacts);

  const draw = () => drawTable(table, view, compare);
  filterInput.addEventListener('input', () => { view.filter = filterInput.value; draw(); });
  statusSelect.addEventListener('change', () => { view.status = statusSelect.value; draw(); });
  metricSelect.addEventListener('change', () => {
    view.metrics = [...metricSelect.selectedOptions].map((o) => o.value);
    draw();
  });
  compare.addEventListener('click', () => { location.hash = `#/compare/${[...view.selected].join(',')}`; });
  table.addEventListener('click', (event) => {
    const th = event.target.closest('th.sortable');
    if (!th) return;
    const key = th.dataset.sort;
    view.desc = view.sort === key ? !view.desc : false;
    view.sort = key;
    draw();
  });

  const load = async () => {
    view.runs = await api.folderRuns(folderId);
    const keys = [...new Set(view.runs.flatMap((r) => Object.keys(r.latest || {})))].sort();
    if (view.metrics === null) view.metrics = defaultMetrics(keys);
    if (metricSelect.options.length !== keys.length) {
      clear(metricSelect, keys.map((k) => h('option', { value: k, selected: view.metrics.includes(k) }, k)));
      metricSelect.size = Math.min(Math.max(keys.length, 1), 4);
    }
    draw();
  };
  await load();
  const arts = await api.folderArtifacts(folderId);
  clear(artifacts, arts.length
    ? h('table', { id: 'artifacts-table' }, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Created'), h('th', {}, 'Labels')),
      arts.map((a) => h('tr', {}, h('td', {}, link(`#/artifact/${a.id}`, a.name)), h('td', {}, fmtTime(a.created_timestamp)),
        h('td', {}, labels(a.labels)))))
    : h('p', { class: 'muted' }, 'No artifacts in this folder.'));
  ctx.every(5000, () => load().catch(() => null));
}

function visibleRuns(view) {
  const needle = view.filter.trim().toLowerCase();
  const rows = view.runs.filter((r) => (!view.status || r.status === view.status || (view.status === 'Running' && r.status === 'Initializing'))
    && (!needle || r.name.toLowerCase().includes(needle) || (r.alternative_name || '').toLowerCase().includes(needle)
      || (r.labels || []).some((l) => l.toLowerCase().includes(needle))));
  const keyOf = COLUMNS[view.sort] || ((r) => (r.latest || {})[view.sort] ?? -Infinity);
  rows.sort((a, b) => {
    const x = keyOf(a); const y = keyOf(b);
    const c = x < y ? -1 : x > y ? 1 : 0;
    return view.desc ? -c : c;
  });
  return rows;
}

function drawTable(table, view, compare) {
  const header = (key, text, cls = '') => h('th', {
    class: `sortable ${cls} ${view.sort === key ? (view.desc ? 'sorted-desc' : 'sorted-asc') : ''}`, dataset: { sort: key } }, text);
  const rows = visibleRuns(view);
  clear(table,
    h('tr', {}, h('th', {}, ''), header('name', 'Name'), header('status', 'Status'), header('start', 'Started'),
      header('duration', 'Duration'), header('world', 'World'), h('th', {}, 'Labels'),
      view.metrics.map((m) => header(m, m, 'num'))),
    rows.map((r) => {
      const box = h('input', { type: 'checkbox', checked: view.selected.has(r.id), 'aria-label': `select ${r.name}` });
      box.addEventListener('change', () => {
        if (box.checked) view.selected.add(r.id); else view.selected.delete(r.id);
        compare.disabled = view.selected.size < 2;
      });
      return h('tr', { dataset: { runId: r.id, runName: r.name } },
        h('td', {}, box),
        h('td', {}, link(`#/run/${r.id}`, r.name, { title: r.alternative_name || '' })),
        h('td', {}, statusBadge(r.status, r.lost_ranks, r.status_reason)),
        h('td', {}, fmtTime(r.start_timestamp)),
        h('td', { class: 'num' }, fmtDuration(durationSeconds(r.start_timestamp, r.end_timestamp))),
        h('td', { class: 'num' }, r.world_size),
        h('td', {}, labels(r.labels)),
        view.metrics.map((m) => h('td', { class: 'num' }, fmtNumber((r.latest || {})[m]))));
    }),
    rows.length ? null : h('tr', {}, h('td', { colspan: 7 + view.metrics.length, class: 'muted' },
      view.runs.length ? 'No run matches the filter.' : 'No runs in this folder yet.')));
  compare.disabled = view.selected.size < 2;
}
