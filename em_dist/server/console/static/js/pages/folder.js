// A folder: search its runs (the server's filter language), choose columns, sort, group with
// per-group aggregates, page through, export CSV, pick runs to compare; then its artifacts.
// Every choice lives in the URL, so a view is shared as a link.

import * as api from '../api.js';
import { clear, fmtNumber, fmtTime, h, labels, link, runName, runTitle } from '../dom.js';
import {
  DEFAULT_FIXED, FIXED, cell, columnLabel, flatHparams, groupRuns, isNumeric, sortRuns, statsKeys, toCsv,
} from '../runtable.js';

const PREFERRED = ['train/loss', 'val/loss', 'val/acc', 'train/acc', 'test/acc'];
const PAGE_SIZE = 50;
const FETCH_PAGE = 1000;
const MAX_RUNS = 10000;
const OPERATOR = /[=<>!()]|\b(and|or|not|contains)\b/i;

// A bare word searches names and labels; anything else is the filter language.
export function toFilter(text) {
  const q = text.trim();
  if (!q || OPERATOR.test(q) || /["'`]/.test(q)) return q;
  const s = JSON.stringify(q);
  return `name contains ${s} or labels contains ${s}`;
}

function defaultColumns(runs) {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.latest || {})))];
  const picked = PREFERRED.filter((k) => keys.includes(k));
  return [...DEFAULT_FIXED, ...(picked.length ? picked : keys.sort()).slice(0, 3).map((k) => `m:${k}`)];
}

async function fetchRuns(folderId, view) {
  const runs = [];
  let cursor = null; let total = 0;
  do {
    const page = await api.searchRuns({ folder_id: folderId, filter: toFilter(view.q) || null, recursive: view.sub ? 'true' : null,
      archived: view.archived ? 'include' : null,
      limit: FETCH_PAGE, cursor, stats: statsKeys(view.columns || []).join(',') || null });
    runs.push(...page.runs);
    total = page.total;
    cursor = page.next_cursor;
  } while (cursor && runs.length < MAX_RUNS);
  for (const r of runs) r.flat = flatHparams(r.hparams);
  return { runs, total };
}

export async function renderFolder(page, ctx, folderId, params) {
  const folder = ctx.state.folders.find((f) => f.id === folderId);
  ctx.crumbs(...ctx.folderPath(folderId));
  const view = {
    q: params.get('q') || '', sub: params.get('sub') === '1', archived: params.get('archived') === '1', sort: params.get('sort') || 'started',
    desc: params.has('desc') ? params.get('desc') === '1' : true, group: params.get('group') || '',
    page: Math.max(0, Number(params.get('page') || 1) - 1), columns: params.get('cols') ? params.get('cols').split(',') : null,
    runs: [], total: 0, selected: new Set(), expanded: new Set(),
  };
  const search = h('input', { type: 'search', id: 'run-filter', value: view.q, spellcheck: false, autocomplete: 'off',
    placeholder: 'search: hparams.lr < 0.01 and metrics.val/loss < 0.2 and labels contains "baseline" (or a word)',
    'aria-label': 'search runs' });
  const searchError = h('p', { class: 'error', id: 'search-error', role: 'alert' });
  const sub = h('input', { type: 'checkbox', id: 'subfolders', checked: view.sub });
  const archived = h('input', { type: 'checkbox', id: 'show-archived', checked: view.archived });  // hidden by default
  const groupBy = h('select', { id: 'group-by', 'aria-label': 'group by' });
  const pickerButton = h('button', { type: 'button', id: 'columns-button', 'aria-expanded': 'false' }, 'Columns');
  const picker = h('div', { id: 'column-picker', class: 'panel picker', hidden: true });
  const csv = h('button', { type: 'button', id: 'export-csv' }, 'Export CSV');
  const compare = h('button', { type: 'button', id: 'compare', disabled: true }, 'Compare selected');
  const count = h('span', { class: 'muted', id: 'run-count' });
  const table = h('table', { id: 'runs-table' });
  const pager = h('div', { class: 'toolbar pager', id: 'pager' });
  const artifacts = h('div', { id: 'folder-artifacts' });
  clear(page,
    h('h1', {}, folder ? folder.path : 'Folder'),
    h('div', { class: 'toolbar search' }, search, h('a', { href: '#/help/search', class: 'muted', title: 'the search language' }, 'syntax')),
    searchError,
    h('div', { class: 'toolbar' }, h('label', {}, sub, 'subfolders'), h('label', {}, archived, 'archived runs'), h('label', {}, 'group by', groupBy), pickerButton, csv,
      compare, count),
    picker,
    h('div', { class: 'table-wrap' }, table),
    pager,
    h('h2', {}, 'Artifacts'), artifacts);

  const keep = () => ctx.setParams({ q: view.q, sub: view.sub ? '1' : '', archived: view.archived ? '1' : '', cols: view.columns ? view.columns.join(',') : '',
    sort: view.sort, desc: view.desc ? '1' : '0', group: view.group, page: view.page ? view.page + 1 : '' });
  const draw = () => { drawTable(table, pager, view, compare, count); keep(); };

  const load = async () => {
    const asked = { q: view.q, sub: view.sub, archived: view.archived };
    let result;
    try {
      result = await fetchRuns(folderId, view);
    } catch (error) {
      if (error.status !== 400) throw error;
      searchError.textContent = error.message;
      search.setAttribute('aria-invalid', 'true');
      table.dataset.state = 'error';
      return;
    }
    if (asked.q !== view.q || asked.sub !== view.sub || asked.archived !== view.archived || !ctx.alive()) return;  // a newer search is under way
    searchError.textContent = '';
    search.removeAttribute('aria-invalid');
    view.runs = result.runs;
    view.total = result.total;
    if (!view.columns) view.columns = defaultColumns(view.runs);
    if (view.sub && !view.columns.includes('folder')) view.columns.splice(1, 0, 'folder');
    const keys = `${columnKeys(view.runs)}|${view.columns.join(',')}`;
    if (keys !== view.keys) {  // a live refresh leaves the open picker alone unless keys or columns changed
      view.keys = keys;
      drawPicker(picker, view, () => { view.page = 0; reload(); });
      drawGroupBy(groupBy, view);
    }
    draw();
    table.dataset.state = 'ready';
    table.dataset.query = view.q;
  };
  const reload = () => load().catch((error) => { searchError.textContent = error.message; });

  let typing = null;
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => { view.q = search.value; view.page = 0; reload(); }, 250);
  });
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { clearTimeout(typing); view.q = search.value; view.page = 0; reload(); }
  });
  sub.addEventListener('change', () => { view.sub = sub.checked; view.page = 0; reload(); });
  archived.addEventListener('change', () => { view.archived = archived.checked; view.page = 0; reload(); });
  groupBy.addEventListener('change', () => { view.group = groupBy.value; view.page = 0; view.expanded.clear(); draw(); });
  pickerButton.addEventListener('click', () => {
    picker.hidden = !picker.hidden;
    pickerButton.setAttribute('aria-expanded', String(!picker.hidden));
  });
  csv.addEventListener('click', () => {
    const rows = sortRuns(view.runs, view.sort, view.desc);
    const blob = new Blob([toCsv(rows, view.columns)], { type: 'text/csv' });
    const a = h('a', { href: URL.createObjectURL(blob), download: `${(folder ? folder.path : 'runs').replace(/\//g, '_')}-runs.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  });
  compare.addEventListener('click', () => { location.hash = `#/compare/${[...view.selected].join(',')}`; });
  table.addEventListener('click', (event) => {
    const th = event.target.closest('th.sortable');
    if (th) {
      const key = th.dataset.sort;
      view.desc = view.sort === key ? !view.desc : isNumeric(key);
      view.sort = key;
      draw();
      return;
    }
    const group = event.target.closest('tr.group');
    if (group) {
      const key = group.dataset.group;
      if (view.expanded.has(key)) view.expanded.delete(key); else view.expanded.add(key);
      draw();
    }
  });
  table.addEventListener('change', (event) => {
    const box = event.target.closest('input[data-select]');
    if (!box) return;
    if (box.checked) view.selected.add(box.dataset.select); else view.selected.delete(box.dataset.select);
    compare.disabled = view.selected.size < 2;
  });
  pager.addEventListener('click', (event) => {
    const b = event.target.closest('button[data-page]');
    if (b) { view.page = Number(b.dataset.page); draw(); }
  });

  await load();
  const arts = await api.folderArtifacts(folderId);
  clear(artifacts, arts.length ? artifactsTable(arts) : h('p', { class: 'muted' }, 'No artifacts in this folder.'));
  ctx.every(10000, () => { if (view.runs.length <= FETCH_PAGE) load().catch(() => null); });
}

// The hparam and metric keys of the loaded runs, as one string to notice a change.
function columnKeys(runs) {
  const hkeys = new Set(runs.flatMap((r) => Object.keys(r.flat)));
  const mkeys = new Set(runs.flatMap((r) => Object.keys(r.latest || {})));
  return `${[...hkeys].sort().join('\u0000')}|${[...mkeys].sort().join('\u0000')}`;
}

function drawGroupBy(select, view) {
  const keys = [...new Set(view.runs.flatMap((r) => Object.keys(r.flat)))].sort();
  const options = [['', 'nothing'], ['label', 'label'], ...keys.map((k) => [`hp:${k}`, k])];
  if (view.group && !options.some(([v]) => v === view.group)) options.push([view.group, view.group.replace(/^hp:/, '')]);
  clear(select, options.map(([v, text]) => h('option', { value: v, selected: v === view.group }, text)));
}

function drawPicker(picker, view, changed) {
  const hkeys = [...new Set(view.runs.flatMap((r) => Object.keys(r.flat)))].sort();
  const mkeys = [...new Set(view.runs.flatMap((r) => Object.keys(r.latest || {})))].sort();
  const box = (id, text) => {
    const input = h('input', { type: 'checkbox', checked: view.columns.includes(id), dataset: { col: id } });
    input.addEventListener('change', () => {
      if (input.checked) view.columns.push(id); else view.columns = view.columns.filter((c) => c !== id);
      changed();
    });
    return h('label', {}, input, text);
  };
  clear(picker,
    h('div', {}, h('strong', {}, 'Run'), Object.keys(FIXED).map((id) => box(id, FIXED[id].label))),
    h('div', {}, h('strong', {}, 'Hparams'), hkeys.length ? hkeys.map((k) => box(`hp:${k}`, k)) : h('span', { class: 'muted' }, 'none')),
    h('div', {}, h('strong', {}, 'Metrics (latest · min · max)'), mkeys.length ? mkeys.map((k) => h('span', { class: 'metric-cols' },
      box(`m:${k}`, k), box(`m:${k}:min`, 'min'), box(`m:${k}:max`, 'max'))) : h('span', { class: 'muted' }, 'none')));
}

function aggregateCell(agg) {
  if (!agg) return '';
  return h('span', { title: `mean of ${agg.n}; min ${fmtNumber(agg.min)}, max ${fmtNumber(agg.max)}` },
    `${fmtNumber(agg.mean)} `, h('span', { class: 'muted' }, `(${fmtNumber(agg.min)}–${fmtNumber(agg.max)})`));
}

function runRow(r, view) {
  return h('tr', { dataset: { runId: r.id, runName: r.name } },
    h('td', {}, h('input', { type: 'checkbox', checked: view.selected.has(r.id), 'aria-label': `select ${runTitle(r)}`, dataset: { select: r.id } })),
    view.columns.map((id) => h('td', { class: isNumeric(id) ? 'num' : '', dataset: { col: id } }, cell(r, id))));
}

function drawTable(table, pager, view, compare, count) {
  const header = (id) => h('th', {
    class: `sortable ${isNumeric(id) ? 'num' : ''} ${view.sort === id ? (view.desc ? 'sorted-desc' : 'sorted-asc') : ''}`,
    dataset: { sort: id }, title: 'sort' }, columnLabel(id));
  const sorted = sortRuns(view.runs, view.sort, view.desc);
  let rows;
  if (view.group) {
    rows = groupRuns(sorted, view.group, view.columns).flatMap((g) => {
      const open = view.expanded.has(g.key);
      const head = h('tr', { class: `group${open ? ' open' : ''}`, dataset: { group: g.key, count: String(g.runs.length) } },
        h('td', {}, open ? '▾' : '▸'),
        view.columns.map((id, i) => h('td', { class: isNumeric(id) ? 'num' : '', dataset: { col: id } },
          i === 0 ? `${columnLabel(view.group === 'label' ? 'labels' : view.group)} = ${g.key} (${g.runs.length})`
            : aggregateCell(g.aggregates[id]))));
      return [head, ...(open ? g.runs.map((r) => runRow(r, view)) : [])];
    });
  } else {
    rows = sorted.map((r) => runRow(r, view));
  }
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
  view.page = Math.min(view.page, pages - 1);
  const shown = rows.slice(view.page * PAGE_SIZE, (view.page + 1) * PAGE_SIZE);
  clear(table, h('thead', {}, h('tr', {}, h('th', {}, ''), view.columns.map(header))),
    h('tbody', {}, shown,
      rows.length ? null : h('tr', {}, h('td', { colspan: view.columns.length + 1, class: 'muted' },
        view.q ? 'No run matches the search.' : 'No runs in this folder yet.'))));
  const capped = view.total > view.runs.length ? ` (showing the first ${view.runs.length.toLocaleString()})` : '';
  count.textContent = `${view.total.toLocaleString()} run${view.total === 1 ? '' : 's'}${capped}`;
  clear(pager, pages > 1 ? [
    h('button', { type: 'button', dataset: { page: String(view.page - 1) }, disabled: view.page === 0 }, '‹ prev'),
    h('span', { id: 'page-of' }, `page ${view.page + 1} of ${pages}`),
    h('button', { type: 'button', dataset: { page: String(view.page + 1) }, disabled: view.page >= pages - 1 }, 'next ›'),
  ] : null);
  compare.disabled = view.selected.size < 2;
}

// One row per artifact: which run produced it (and consumed it), which rank made it when the run says,
// so same-named artifacts (a job's checkpoints) are told apart. Only runs the viewer may see are listed.
function artifactsTable(arts) {
  const rankText = (uses) => [...new Set(uses.filter((u) => u.rank !== null && u.rank !== undefined).map((u) => u.rank))].join(', ');
  const runsCell = (uses) => (uses.length ? uses.map((u) => h('div', { class: 'artifact-run', dataset: { runId: u.id, role: u.role } },
    h('span', { class: 'muted' }, u.role === 'output' ? 'made by ' : 'used by '), runName(u, `#/run/${u.id}`))) : h('span', { class: 'muted' }, '—'));
  return h('table', { id: 'artifacts-table' },
    h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Run'), h('th', {}, 'Rank'), h('th', {}, 'Created'), h('th', {}, 'Labels')),
    arts.map((a) => {
      const uses = a.runs || [];
      const made = uses.filter((u) => u.role === 'output');
      const rank = rankText(made.length ? made : uses);
      return h('tr', { dataset: { artifactId: a.id, rank: rank || null } },
        h('td', { dataset: { col: 'name' } }, link(`#/artifact/${a.id}`, a.name, { title: a.alternative_name ? `saved as ${a.alternative_name} · id ${a.id}` : `id ${a.id}` })),
        h('td', { dataset: { col: 'run' } }, runsCell(uses)),
        h('td', { class: 'num', dataset: { col: 'rank' } }, rank || '—'),
        h('td', { dataset: { col: 'created' } }, fmtTime(a.created_timestamp)),
        h('td', { dataset: { col: 'labels' } }, labels(a.labels)));
    }));
}
