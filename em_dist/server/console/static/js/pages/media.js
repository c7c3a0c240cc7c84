// The Media tab: images (a step slider and a rank picker: every chosen rank's image at one step,
// side by side), histograms over steps per rank (a heat map: a row per step, a column per bin),
// tables (sort by a column, a search box) and texts. Text goes in as text (dom.h), never as HTML.

import * as api from '../api.js';
import { API } from '../api.js';
import { clear, h } from '../dom.js';

const mediaOf = (id, params) => api.api(`/runs/${encodeURIComponent(id)}/media?${api.query(params)}`);
const imageUrl = (runId, sha) => `${API}/runs/${encodeURIComponent(runId)}/media/images/${encodeURIComponent(sha)}`;

function groupBy(records, key) {
  const out = new Map();
  for (const r of records) {
    const k = key(r);
    if (!out.has(k)) out.set(k, []);
    out.get(k).push(r);
  }
  return out;
}

const sortedUnique = (xs) => [...new Set(xs)].sort((a, b) => a - b);
const label = (r) => `${r.type}/${r.name}`;

function imagePanel(runId, key, records, params) {
  const steps = sortedUnique(records.map((r) => r.step));
  const ranks = sortedUnique(records.map((r) => r.rank));
  const slider = h('input', { type: 'range', class: 'media-step', min: 0, max: steps.length - 1, step: 1,
    'aria-label': 'step', value: Math.max(0, steps.indexOf(Number(params.get('step')))) });
  const stepText = h('span', { class: 'muted media-step-text' });
  const rankSel = h('select', { class: 'media-rank', 'aria-label': 'rank' },
    h('option', { value: '' }, 'all ranks'), ranks.map((r) => h('option', { value: String(r) }, `rank ${r}`)));
  rankSel.value = ranks.includes(Number(params.get('rank'))) ? params.get('rank') : '';
  const row = h('div', { class: 'media-images' });
  const draw = () => {
    const step = steps[Number(slider.value)];
    stepText.textContent = `step ${step}`;
    const shown = records.filter((r) => r.step === step && (rankSel.value === '' || String(r.rank) === rankSel.value));
    clear(row, shown.map((r) => h('figure', { class: 'media-image', dataset: { rank: r.rank, step: r.step, sha256: r.sha256 } },
      h('img', { src: imageUrl(runId, r.sha256), alt: r.caption || `${label(r)} rank ${r.rank} step ${r.step}`,
        width: r.width, height: r.height }),
      h('figcaption', {}, `rank ${r.rank}${r.caption ? `: ${r.caption}` : ''}`))));
  };
  slider.addEventListener('input', draw);
  rankSel.addEventListener('change', draw);
  draw();
  return h('div', { class: 'panel media-panel', dataset: { kind: 'image', name: key } },
    h('h3', {}, key), h('div', { class: 'toolbar' }, rankSel, slider, stepText), row);
}

function heatMap(records) {
  const rows = records.slice().sort((a, b) => a.step - b.step);
  const bins = Math.max(...rows.map((r) => r.counts.length));
  const canvas = h('canvas', { class: 'media-heatmap', width: Math.min(640, Math.max(160, bins * 8)),
    height: Math.min(320, Math.max(48, rows.length * 16)) });
  const g = canvas.getContext('2d');
  if (!g) return canvas;
  const cw = canvas.width / bins;
  const ch = canvas.height / rows.length;
  rows.forEach((r, y) => {
    const top = Math.max(1, ...r.counts);
    r.counts.forEach((c, x) => {
      g.fillStyle = `rgba(31, 119, 180, ${c / top})`;
      g.fillRect(x * cw, y * ch, Math.ceil(cw), Math.ceil(ch));
    });
  });
  return canvas;
}

function histogramPanel(key, records) {
  const byRank = groupBy(records, (r) => r.rank);
  return h('div', { class: 'panel media-panel', dataset: { kind: 'histogram', name: key } },
    h('h3', {}, key), h('p', { class: 'muted' }, 'a row per step (first at the top), a column per bin; darker: more values'),
    h('div', { class: 'media-images' }, [...byRank.entries()].map(([rank, rs]) => {
      const first = rs[0];
      return h('figure', { class: 'media-histogram', dataset: { rank } }, heatMap(rs),
        h('figcaption', {}, `rank ${rank}: ${first.bins[0]} .. ${first.bins[first.bins.length - 1]}`));
    })));
}

function tablePanel(key, records) {
  const pick = h('select', { class: 'media-table-pick', 'aria-label': 'which table' },
    records.map((r, i) => h('option', { value: String(i) }, `rank ${r.rank} step ${r.step}`)));
  pick.value = String(records.length - 1);
  const search = h('input', { type: 'search', class: 'media-table-search', placeholder: 'search rows' });
  const table = h('table', { class: 'media-table' });
  let sortBy = -1;
  let descending = false;
  const draw = () => {
    const r = records[Number(pick.value)];
    const q = search.value.toLowerCase();
    let rows = r.rows.filter((row) => !q || row.some((c) => String(c).toLowerCase().includes(q)));
    if (sortBy >= 0) {
      rows = rows.slice().sort((a, b) => {
        const x = a[sortBy]; const y = b[sortBy];
        const cmp = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
        return descending ? -cmp : cmp;
      });
    }
    clear(table, h('thead', {}, h('tr', {}, r.columns.map((c, i) => {
      const th = h('th', { class: 'sortable' }, c + (i === sortBy ? (descending ? ' ▼' : ' ▲') : ''));
      th.addEventListener('click', () => { descending = sortBy === i ? !descending : false; sortBy = i; draw(); });
      return th;
    }))), h('tbody', {}, rows.map((row) => h('tr', {}, row.map((c) => h('td', {}, c === null ? '' : String(c)))))));
  };
  pick.addEventListener('change', draw);
  search.addEventListener('input', draw);
  draw();
  return h('div', { class: 'panel media-panel', dataset: { kind: 'table', name: key } },
    h('h3', {}, key), h('div', { class: 'toolbar' }, pick, search), table);
}

function textPanel(key, records) {
  return h('div', { class: 'panel media-panel', dataset: { kind: 'text', name: key } }, h('h3', {}, key),
    records.map((r) => h('div', { class: 'logline' }, h('span', { class: 'muted' }, `rank ${r.rank} step ${r.step} `),
      h('span', { class: 'logtext' }, r.text))));
}

const PANELS = { image: imagePanel, histogram: histogramPanel, table: tablePanel, text: textPanel };

export async function renderMedia(body, ctx, run, params) {
  const data = await mediaOf(run.id, {});
  if (!ctx.alive()) return;
  if (!data.records.length) {
    clear(body, h('p', { class: 'muted', id: 'media-empty' }, 'This run logged no images, histograms, tables or texts.'));
    return;
  }
  const panels = [];
  for (const [kind, build] of Object.entries(PANELS)) {
    for (const [key, records] of groupBy(data.records.filter((r) => r.kind === kind), label)) {
      panels.push(kind === 'image' ? build(run.id, key, records, params) : build(key, records));
    }
  }
  clear(body, h('div', { id: 'media-view' }, panels));
}
