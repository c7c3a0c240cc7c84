// Parallel coordinates drawn as plain SVG: one vertical axis per hparam (and the metric last),
// one polyline per run coloured by the metric. Plotly's parcoords trace needs WebGL and its regl
// shaders are compiled with eval, which the server's Content-Security-Policy (script-src 'self')
// forbids; this draws the same picture with no WebGL and no eval. Text goes in as text.

const SVG = 'http://www.w3.org/2000/svg';
// Viridis at five stops (the colour scale Plotly used here before).
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function el(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// The colour of t in [0, 1] on Viridis; grey for a run without the metric.
export function viridis(t) {
  if (!Number.isFinite(t)) return '#9aa0a6';
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const c = VIRIDIS[i].map((a, k) => Math.round(a + (VIRIDIS[i + 1][k] - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function fmt(v) {
  if (!Number.isFinite(v)) return '';
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : String(Number(v.toPrecision(4)));
}

// Draw into `div`: dims are {label, values, ticktext?} (ticktext: category names of values 0..n-1),
// `color` one number per run (the metric), `names` the runs' names (a line's tooltip).
export function drawParcoords(div, { dims, color, names, title }) {
  const width = Math.max(div.clientWidth || 0, 320);
  const height = Math.max(div.clientHeight || 0, 240);
  const m = { l: 40, r: 40, t: 62, b: 28 };
  const svg = el('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'parcoords' });
  svg.append(el('title', {}, title));
  svg.append(el('text', { x: 8, y: 18, class: 'pc-title' }, title));
  const innerH = height - m.t - m.b;
  const step = dims.length > 1 ? (width - m.l - m.r) / (dims.length - 1) : 0;
  const xs = dims.map((_, i) => (dims.length > 1 ? m.l + i * step : width / 2));
  const scales = dims.map((d) => {
    const finiteVals = d.values.filter(Number.isFinite);
    let lo = finiteVals.length ? Math.min(...finiteVals) : 0;
    let hi = finiteVals.length ? Math.max(...finiteVals) : 1;
    if (d.ticktext) { lo = 0; hi = Math.max(1, d.ticktext.length - 1); }
    // positive values over two decades or more (a learning rate): a log axis, as the scatter uses
    const log = !d.ticktext && lo > 0 && hi / lo >= 50;
    const t = log ? Math.log10 : (v) => v;
    let a = t(lo); let b = t(hi);
    if (a === b) { a -= 0.5; b += 0.5; }
    return (v) => (Number.isFinite(v) && (!log || v > 0) ? m.t + innerH - ((t(v) - a) / (b - a)) * innerH : null);
  });
  const cf = color.filter(Number.isFinite);
  const cLo = cf.length ? Math.min(...cf) : 0;
  const cHi = cf.length ? Math.max(...cf) : 1;
  const lines = el('g', { class: 'pc-lines' });
  names.forEach((name, r) => {
    const pts = dims.map((d, i) => [xs[i], scales[i](d.values[r])]).filter(([, y]) => y !== null);
    const t = cHi > cLo ? (color[r] - cLo) / (cHi - cLo) : 0.5;
    const line = el('polyline', { points: pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' '),
      fill: 'none', stroke: viridis(Number.isFinite(color[r]) ? t : NaN), 'stroke-width': 2, 'stroke-opacity': 0.85,
      'data-run': String(r) });
    line.append(el('title', {}, `${name}: ${fmt(color[r]) || 'no value'}`));
    lines.append(line);
  });
  svg.append(lines);
  dims.forEach((d, i) => {
    const g = el('g', { class: 'pc-axis', 'data-label': d.label });
    g.append(el('line', { x1: xs[i], x2: xs[i], y1: m.t, y2: m.t + innerH, stroke: '#5f6368', 'stroke-width': 1 }));
    const anchor = i === 0 ? 'start' : i === dims.length - 1 ? 'end' : 'middle';
    g.append(el('text', { x: xs[i], y: m.t - 22, 'text-anchor': anchor, class: 'pc-label' }, d.label));
    const ticks = d.ticktext
      ? d.ticktext.map((t, k) => [k, t])
      : (() => { const f = d.values.filter(Number.isFinite); return f.length ? [[Math.max(...f), fmt(Math.max(...f))], [Math.min(...f), fmt(Math.min(...f))]] : []; })();
    for (const [v, label] of ticks) {
      const y = scales[i](v);
      if (y === null) continue;
      g.append(el('line', { x1: xs[i] - 3, x2: xs[i] + 3, y1: y, y2: y, stroke: '#5f6368' }));
      g.append(el('text', { x: xs[i] + (anchor === 'end' ? -6 : 6), y: y + 4, 'text-anchor': anchor === 'end' ? 'end' : 'start', class: 'pc-tick' }, label));
    }
    svg.append(g);
  });
  div.replaceChildren(svg);
}
