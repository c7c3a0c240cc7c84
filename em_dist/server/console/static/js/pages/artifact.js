// The artifact page: its files (download), the runs that produced and consumed it, its dataflow.

import * as api from '../api.js';
import { clear, fmtTime, h, labels, runName } from '../dom.js';
import { graph } from '../dataflow.js';
import { filesTable } from './run.js';

export async function renderArtifact(page, ctx, artifactId) {
  const [art, lineage] = await Promise.all([api.artifact(artifactId), api.lineage(artifactId, 4)]);
  ctx.crumbs(...ctx.folderPath(art.folder_id), h('span', {}, art.name));
  const runs = new Map(lineage.nodes.filter((n) => n.kind === 'run').map((n) => [n.id, n]));
  const producers = lineage.edges.filter((e) => e.target === artifactId && runs.has(e.source)).map((e) => runs.get(e.source));
  const consumers = lineage.edges.filter((e) => e.source === artifactId && runs.has(e.target)).map((e) => runs.get(e.target));
  // the rank that made or marked it, when the run said (from the artifact's runs, which only name runs we may see)
  const rankOf = new Map((art.runs || []).filter((u) => u.rank !== null && u.rank !== undefined).map((u) => [`${u.id}:${u.role}`, u.rank]));
  const runList = (list, role, none) => (list.length
    ? h('ul', {}, list.map((r) => h('li', { dataset: { runId: r.id, rank: rankOf.has(`${r.id}:${role}`) ? String(rankOf.get(`${r.id}:${role}`)) : null } },
      runName(r, `#/run/${r.id}`, { dataset: { runId: r.id } }), ' ',
      rankOf.has(`${r.id}:${role}`) ? h('span', { class: 'muted rank' }, `rank ${rankOf.get(`${r.id}:${role}`)} · `) : null,
      h('span', { class: 'muted' }, r.status || ''))))
    : h('p', { class: 'muted' }, none));
  clear(page,
    h('div', { class: 'toolbar' }, h('h1', { style: 'margin:0' }, art.name), h('span', { class: 'muted' }, 'artifact'), labels(art.labels)),
    h('div', { class: 'panel' }, h('dl', { class: 'kv' },
      h('dt', {}, 'Created'), h('dd', {}, fmtTime(art.created_timestamp)),
      h('dt', {}, 'Local name'), h('dd', {}, art.alternative_name || '—'),
      h('dt', {}, 'Description'), h('dd', {}, art.description || '—'),
      h('dt', {}, 'Id'), h('dd', {}, h('code', {}, art.id)))),
    h('h2', {}, 'Files'), filesTable(art.id, art.files || []),
    (art.references || []).length ? [h('h2', {}, 'References'), h('ul', {}, art.references.map((r) => h('li', {}, h('code', {}, r.path || ''), ' → ', r.uri)))] : null,
    h('div', { class: 'charts', style: 'margin-top:12px' },
      h('div', { class: 'panel', id: 'producers' }, h('h2', { style: 'margin-top:0' }, 'Produced by'), runList(producers, 'output', 'No run marked it as output.')),
      h('div', { class: 'panel', id: 'consumers' }, h('h2', { style: 'margin-top:0' }, 'Consumed by'), runList(consumers, 'input', 'No run marked it as input yet.'))),
    h('h2', {}, 'Dataflow'),
    lineage.nodes.length > 1 ? h('div', { class: 'graph', id: 'dataflow' }, graph(lineage)) : h('p', { class: 'muted' }, 'Not connected to any run.'));
}
