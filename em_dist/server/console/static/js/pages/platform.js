// The Platform tab: one row per rank, identical rows of a node grouped into one.

import { clear, fmtBytes, h } from '../dom.js';

const FIELDS = [
  ['GPU', (p) => gpuOf(p).name],
  ['GPU memory', (p) => { const g = gpuOf(p); return g.memory ? fmtBytes(g.memory) : '—'; }],
  ['CUDA', (p) => p.cuda_version || '—'],
  ['Driver', (p) => p.gpu_driver || '—'],
  ['NCCL', (p) => p.nccl_version || '—'],
  ['cuDNN', (p) => p.cudnn_version || '—'],
  ['torch', (p) => p.torch || '—'],
  ['Python', (p) => p.python || '—'],
  ['CPU', (p) => p.cpu_model ? `${p.cpu_model} (${p.cpu_count_available ?? '?'}/${p.cpu_count ?? '?'} CPUs)` : '—'],
  ['Memory', (p) => (p.memory_total_bytes ? fmtBytes(p.memory_total_bytes) : '—')],
];

function gpuOf(p) {
  const gpus = p.gpus || [];
  const match = /^cuda:(\d+)$/.exec(p.device || '');
  const gpu = match ? gpus.find((g) => String(g.index) === match[1]) || gpus[Number(match[1])] : null;
  if (gpu) return { name: gpu.name, memory: gpu.memory_total_bytes };
  if (gpus.length) return { name: `${gpus[0].name} ×${gpus.length}`, memory: gpus[0].memory_total_bytes };
  return { name: p.device && p.device !== 'cpu' ? p.device : 'none (CPU)', memory: null };
}

export function rankEntries(platform) {
  const ranks = platform && platform.ranks;
  if (ranks && Object.keys(ranks).length) return Object.entries(ranks).map(([r, p]) => [Number(r), p || {}]).sort((a, b) => a[0] - b[0]);
  return platform && Object.keys(platform).length ? [[0, platform]] : [];
}

function groups(entries) {
  const nodes = new Map();
  for (const [rank, p] of entries) {
    const host = p.host || 'unknown host';
    if (!nodes.has(host)) nodes.set(host, new Map());
    const cells = FIELDS.map(([, get]) => String(get(p)));
    const key = cells.join('\u0000');
    const node = nodes.get(host);
    if (!node.has(key)) node.set(key, { cells, ranks: [], local: [], devices: [] });
    const g = node.get(key);
    g.ranks.push(rank);
    g.local.push(p.local_rank ?? '—');
    g.devices.push(p.device || 'cpu');
  }
  return nodes;
}

export function renderPlatform(body, run) {
  const entries = rankEntries(run.platform);
  const world = (run.platform && run.platform.world) || run.world || {};
  if (!entries.length) {
    clear(body, h('p', { class: 'muted' }, 'No platform information was recorded.'));
    return;
  }
  const grouped = h('table', { id: 'platform-table' });
  const flat = h('table', { id: 'platform-ranks', hidden: true });
  const header = (first) => h('tr', {}, first.map((t) => h('th', {}, t)), FIELDS.map(([t]) => h('th', {}, t)));
  const nodes = groups(entries);
  clear(grouped, header(['Ranks', 'Local ranks', 'Devices']),
    [...nodes].map(([host, node]) => [
      h('tr', { class: 'group', dataset: { host } }, h('td', { colspan: 3 + FIELDS.length },
        `${host}: ${[...node.values()].reduce((n, g) => n + g.ranks.length, 0)} rank(s)`)),
      [...node.values()].map((g) => h('tr', { dataset: { ranks: g.ranks.join(',') } },
        h('td', {}, g.ranks.join(', ')), h('td', {}, g.local.join(', ')), h('td', {}, g.devices.join(', ')),
        g.cells.map((c) => h('td', {}, c)))),
    ]));
  clear(flat, header(['Rank', 'Host', 'Local rank', 'Device']),
    entries.map(([rank, p]) => h('tr', { dataset: { rank: String(rank) } }, h('td', {}, String(rank)), h('td', {}, p.host || '—'),
      h('td', {}, String(p.local_rank ?? '—')), h('td', {}, p.device || 'cpu'), FIELDS.map(([, get]) => h('td', {}, String(get(p)))))));
  const toggle = h('label', {}, h('input', { type: 'checkbox', id: 'platform-every-rank', onchange: (e) => {
    flat.hidden = !e.target.checked; grouped.hidden = e.target.checked; } }), 'one row per rank');
  const lost = run.lost_ranks && run.lost_ranks.length ? h('span', { class: 'error' }, `lost ranks: ${run.lost_ranks.join(', ')}`) : null;
  clear(body,
    h('div', { class: 'toolbar' },
      h('span', {}, `World size ${world.size ?? entries.length}, ${nodes.size} node(s), launcher ${world.launcher || run.world?.launcher || '—'}`),
      lost, toggle),
    grouped, flat);
}
