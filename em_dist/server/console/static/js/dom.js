// Small DOM and formatting helpers. Text always goes in as text (never as HTML).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export function link(href, text, attrs = {}) {
  return h('a', { href, ...attrs }, text);
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString();
}

export function durationSeconds(start, end) {
  if (!start) return null;
  const t0 = Date.parse(start);
  const t1 = end ? Date.parse(end) : Date.now();
  return isNaN(t0) || isNaN(t1) ? null : Math.max(0, (t1 - t0) / 1000);
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function fmtNumber(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : v.toPrecision(4).replace(/\.?0+$/, '');
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

// A metric's value in its unit, read from its name (the system metrics' names say it): bytes as
// KiB/MiB/GiB, bytes per second with /s, percentages with %; anything else as a number.
export function fmtMetric(name, v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return fmtNumber(v);
  if (/_bytes_per_s$/.test(name)) return `${fmtBytes(v)}/s`;
  if (/_bytes$/.test(name)) return fmtBytes(v);
  if (/_percent$/.test(name)) return `${fmtNumber(v)}%`;
  return fmtNumber(v);
}

export function fmtValue(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export function statusBadge(status, lostRanks = [], reason = null, lostRun = false) {
  const lost = lostRanks && lostRanks.length ? ` (lost ranks ${lostRanks.join(', ')})` : '';
  const text = lostRun ? `${status} · lost` : `${status}${lost}`;
  return h('span', { class: `status ${status}${lostRun ? ' lost' : ''}`, title: reason || '',
    dataset: { status, lost: lostRun ? 'true' : null } }, text);
}

// A run's badge from its summary: the honest status (a silent live run is Failed · lost).
export function runBadge(run) {
  return statusBadge(run.status, run.lost_ranks, run.status_reason, Boolean(run.lost));
}

// Seconds the run lasted: to its end, or (no end yet) to its last sign of life.
export function runDuration(run) {
  if (run.duration_s !== undefined && run.duration_s !== null) return run.duration_s;
  return durationSeconds(run.start_timestamp, run.end_timestamp || run.last_seen);
}

export function labels(list) {
  return (list || []).map((l) => h('span', { class: 'label' }, l));
}

// A run still recording: its views poll for updates.
export const isLive = (run) => run.status === 'Running' || run.status === 'Initializing';

// A run's name is the one its script gave (create_run(name=...)); the server renames a second run of
// that name in a folder to its local folder name (alternative_name), and lists carry both. The title
// is always the run's name; the folder name is secondary (smaller, under it, or in a tooltip).
export function runTitle(run) {
  return run.local_name || run.name || '';
}

export function runFolderName(run) {
  const title = runTitle(run);
  return [run.alternative_name, run.name].find((n) => n && n !== title) || '';
}

// The run's name (a link when href is given) with its folder name under it, smaller.
export function runName(run, href = null, attrs = {}) {
  const folderName = runFolderName(run);
  const title = href ? link(href, runTitle(run), { class: 'run-title', title: folderName || null, ...attrs })
    : h('span', { class: 'run-title', title: folderName || null, ...attrs }, runTitle(run));
  return h('span', { class: 'run-name' }, title, folderName ? h('span', { class: 'alt-name' }, folderName) : null);
}
