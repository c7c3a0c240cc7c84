// The dataflow graph: runs and artifacts as a small left-to-right DAG in SVG; nodes are links.

import * as api from './api.js';
import { clear, h } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const NODE_W = 190; const NODE_H = 44; const GAP_X = 80; const GAP_Y = 22; const PAD = 20;

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// Layer = longest path from a source, so every edge points right.
export function layout(nodes, edges) {
  const incoming = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) if (incoming.has(e.target) && incoming.has(e.source)) incoming.get(e.target).push(e.source);
  const layer = new Map();
  const visiting = new Set();
  const depth = (id) => {
    if (layer.has(id)) return layer.get(id);
    if (visiting.has(id)) return 0;  // a cycle should not happen; do not loop on one
    visiting.add(id);
    const d = Math.max(-1, ...incoming.get(id).map(depth)) + 1;
    visiting.delete(id);
    layer.set(id, d);
    return d;
  };
  nodes.forEach((n) => depth(n.id));
  const columns = [];
  for (const n of nodes) (columns[layer.get(n.id)] ||= []).push(n);
  const pos = new Map();
  columns.forEach((col, i) => col.sort((a, b) => a.kind.localeCompare(b.kind) || (a.name || '').localeCompare(b.name || ''))
    .forEach((n, j) => pos.set(n.id, { x: PAD + i * (NODE_W + GAP_X), y: PAD + j * (NODE_H + GAP_Y) })));
  const width = PAD * 2 + columns.length * NODE_W + Math.max(0, columns.length - 1) * GAP_X;
  const height = PAD * 2 + Math.max(1, ...columns.map((c) => c.length)) * (NODE_H + GAP_Y) - GAP_Y;
  return { pos, width, height };
}

function shorten(text, n = 26) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

export function graph({ root, nodes, edges }) {
  const { pos, width, height } = layout(nodes, edges);
  const el = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'dataflow graph' },
    svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' },
      svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#9aa3b2' }))));
  for (const e of edges) {
    const a = pos.get(e.source); const b = pos.get(e.target);
    if (!a || !b) continue;
    const x1 = a.x + NODE_W; const y1 = a.y + NODE_H / 2; const x2 = b.x; const y2 = b.y + NODE_H / 2;
    const mx = (x1 + x2) / 2;
    el.append(svg('path', { class: 'edge', d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, 'marker-end': 'url(#arrow)',
      'data-role': e.role }));
  }
  for (const n of nodes) {
    const p = pos.get(n.id);
    const clickable = n.kind === 'run' || n.stored !== false;
    const href = n.kind === 'run' ? `#/run/${n.id}/dataflow` : `#/artifact/${n.id}`;
    const label = (n.kind === 'run' && n.local_name) || n.name || n.id.slice(0, 8);  // a run's own name, not its folder name
    const kind = n.kind === 'run' ? `run${n.status ? ` · ${n.status}` : ''}` : `artifact${n.stored === false ? ' · not uploaded' : ''}`;
    const g = svg('g', { class: `node ${n.kind}${n.id === root ? ' root' : ''}`, transform: `translate(${p.x},${p.y})`,
      'data-node-id': n.id, 'data-kind': n.kind, 'data-name': label, tabindex: clickable ? 0 : -1 },
    svg('title', {}, `${n.kind} ${label}${n.alternative_name && n.alternative_name !== label ? ` (${n.alternative_name})` : ''}`),
    svg('rect', { width: NODE_W, height: NODE_H, rx: n.kind === 'run' ? 6 : 18 }),
    svg('text', { x: 12, y: 18 }, shorten(label)),
    svg('text', { x: 12, y: 34, class: 'kind' }, kind));
    if (clickable) {
      const go = () => { location.hash = href; };
      g.addEventListener('click', go);
      g.addEventListener('keydown', (e) => { if (e.key === 'Enter') go(); });
    }
    el.append(g);
  }
  return el;
}

export async function renderDataflow(body, nodeId) {
  const data = await api.lineage(nodeId, 4);
  if (data.nodes.length <= 1) {
    clear(body, h('p', { class: 'muted' }, 'No dataflow yet: mark input or output artifacts with run.mark_input / run.mark_output.'));
    return;
  }
  clear(body, h('div', { class: 'graph', id: 'dataflow' }, graph(data)),
    h('p', { class: 'legend-note' }, 'Runs are boxes, artifacts rounded. Arrows: run → artifact it produced, artifact → run that consumed it. Click a node to open it.'));
}
