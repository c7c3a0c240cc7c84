// The run table's model: columns (fixed, hparams, metric latest/min/max), sorting, grouping, CSV.
// Pure functions over run summaries from GET /runs; folder.js draws them.

import { fmtDuration, fmtNumber, fmtTime, fmtValue, h, labels, runBadge, runDuration, runName, runTitle } from './dom.js';

export const FIXED = {
  name: { label: 'Name', value: (r) => runTitle(r), cell: (r) => runName(r, `#/run/${r.id}`) },
  status: { label: 'Status', value: (r) => r.status, cell: (r) => runBadge(r) },
  started: { label: 'Started', value: (r) => r.start_timestamp || '', cell: (r) => fmtTime(r.start_timestamp) },
  duration: { label: 'Duration', num: true, value: (r) => runDuration(r), cell: (r) => fmtDuration(runDuration(r)) },
  world: { label: 'World', num: true, value: (r) => r.world_size, cell: (r) => String(r.world_size) },
  labels: { label: 'Labels', value: (r) => (r.labels || []).join(' '), cell: (r) => [r.archived ? h('span', { class: 'label archived' }, 'archived') : null, labels(r.labels)] },
  folder: { label: 'Folder', value: (r) => r.folder || '', cell: (r) => r.folder || '' },
};
export const DEFAULT_FIXED = ['name', 'status', 'started', 'duration', 'world', 'labels'];

// Nested hparams as dotted keys: {model: {depth: 12}} -> {"model.depth": 12}.
export function flatHparams(hparams, prefix = '', out = {}) {
  for (const [k, v] of Object.entries(hparams || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) flatHparams(v, key, out);
    else out[key] = v;
  }
  return out;
}

// A metric column id is m:<type/name> (latest) or m:<type/name>:min / :max.
export function metricColumn(id) {
  if (!id.startsWith('m:')) return null;
  const rest = id.slice(2);
  for (const stat of ['min', 'max']) if (rest.endsWith(`:${stat}`)) return { key: rest.slice(0, -stat.length - 1), stat };
  return { key: rest, stat: 'last' };
}

// The metric keys whose min or max a column set needs (sent to the server as stats=).
export function statsKeys(columns) {
  return [...new Set(columns.map(metricColumn).filter((m) => m && m.stat !== 'last').map((m) => m.key))];
}

export function columnLabel(id) {
  if (FIXED[id]) return FIXED[id].label;
  if (id.startsWith('hp:')) return id.slice(3);
  const m = metricColumn(id);
  return m ? (m.stat === 'last' ? m.key : `${m.key} (${m.stat})`) : id;
}

export function cellValue(run, id) {
  if (FIXED[id]) return FIXED[id].value(run);
  if (id.startsWith('hp:')) return run.flat ? run.flat[id.slice(3)] : flatHparams(run.hparams)[id.slice(3)];
  const m = metricColumn(id);
  if (!m) return undefined;
  if (m.stat === 'last') return (run.latest || {})[m.key];
  return ((run.stats || {})[m.key] || {})[m.stat];
}

export function isNumeric(id) {
  return Boolean((FIXED[id] && FIXED[id].num) || id.startsWith('m:'));
}

export function cell(run, id) {
  if (FIXED[id]) return FIXED[id].cell(run);
  const v = cellValue(run, id);
  return typeof v === 'number' ? fmtNumber(v) : fmtValue(v);
}

// Missing values sort last in both directions; numbers before strings.
export function sortRuns(runs, id, desc) {
  const rows = [...runs];
  rows.sort((a, b) => {
    const x = cellValue(a, id); const y = cellValue(b, id);
    const mx = x === undefined || x === null || x === ''; const my = y === undefined || y === null || y === '';
    if (mx || my) return mx === my ? 0 : mx ? 1 : -1;
    let c;
    if (typeof x === 'number' && typeof y === 'number') c = x - y;
    else if (typeof x === 'number') c = -1;
    else if (typeof y === 'number') c = 1;
    else c = String(x).localeCompare(String(y), undefined, { numeric: true });
    return desc ? -c : c;
  });
  return rows;
}

// Group keys of a run: an hparam's value, or each of its labels.
function groupKeys(run, group) {
  if (group === 'label') return (run.labels && run.labels.length) ? run.labels : ['(no label)'];
  const v = cellValue(run, group);
  return [v === undefined || v === null ? '(unset)' : fmtValue(v)];
}

// Groups in order of first appearance in the (sorted) runs, each with per-column aggregates.
export function groupRuns(runs, group, columns) {
  const groups = new Map();
  for (const r of runs) {
    for (const key of groupKeys(r, group)) {
      if (!groups.has(key)) groups.set(key, { key, runs: [] });
      groups.get(key).runs.push(r);
    }
  }
  for (const g of groups.values()) {
    g.aggregates = {};
    for (const id of columns) {
      const values = g.runs.map((r) => cellValue(r, id)).filter((v) => typeof v === 'number' && Number.isFinite(v));
      if (!values.length) continue;
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      g.aggregates[id] = { mean, min: Math.min(...values), max: Math.max(...values), n: values.length };
    }
  }
  return [...groups.values()];
}

function csvField(v) {
  if (v === undefined || v === null) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

// The runs as CSV: the id, then the chosen columns' raw values.
export function toCsv(runs, columns) {
  const lines = [['id', ...columns.map(columnLabel)].map(csvField).join(',')];
  for (const r of runs) lines.push([r.id, ...columns.map((c) => cellValue(r, c))].map(csvField).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
