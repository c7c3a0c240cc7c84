// Plotly helpers: per-rank lines, the cross-rank mean with its min-max band, smoothing.

const PALETTE = ['#2f6fde', '#e8710a', '#1a7f37', '#c62828', '#7b3fbf', '#00838f', '#ad1457', '#5d6d7e'];

export const rankColor = (rank) => PALETTE[rank % PALETTE.length];

export function plotly() {
  if (!window.Plotly) throw new Error('the chart library (plotly.min.js) did not load; is the plotly package installed on the server?');
  return window.Plotly;
}

// JSON numbers from the API: non-finite values arrive as strings; plot them as gaps.
export function finite(values) {
  return values.map((v) => (typeof v === 'number' && Number.isFinite(v) ? v : null));
}

// Debiased exponential moving average (as TensorBoard smooths), skipping gaps.
export function smooth(values, weight) {
  if (!weight) return values;
  let last = 0; let n = 0;
  return values.map((v) => {
    if (v === null) return null;
    last = last * weight + (1 - weight) * v;
    n += 1;
    return last / (1 - weight ** n);
  });
}

// Linear interpolation of x at step s from a (steps, xs) table sorted by step.
export function interpolate(steps, xs, s) {
  if (!steps.length) return null;
  let lo = 0; let hi = steps.length - 1;
  if (s <= steps[lo]) return xs[lo];
  if (s >= steps[hi]) return xs[hi];
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (steps[mid] <= s) lo = mid; else hi = mid; }
  const a = xs[lo]; const b = xs[hi];
  if (a === null || b === null) return a ?? b;
  return a + ((b - a) * (s - steps[lo])) / (steps[hi] - steps[lo] || 1);
}

export function toX(values, axis) {
  return axis === 'time' ? values.map((t) => (t === null ? null : new Date(t * 1000))) : values;
}

// Traces for one metric chart. series: [{rank, x, y}]; band: {x, mean, min, max} or null.
export function metricTraces({ series, band, smoothing, hidden, axis }) {
  const traces = [];
  if (band && band.x.length) {
    const x = toX(band.x, axis);
    traces.push({ x, y: finite(band.min), mode: 'lines', line: { width: 0 }, hoverinfo: 'skip', showlegend: false,
      name: 'min', meta: { kind: 'band' } });
    traces.push({ x, y: finite(band.max), mode: 'lines', line: { width: 0 }, fill: 'tonexty', fillcolor: 'rgba(80,90,110,0.15)',
      name: 'min–max', meta: { kind: 'band' } });
    traces.push({ x, y: smooth(finite(band.mean), smoothing), mode: 'lines', line: { color: '#1d2330', width: 2, dash: 'dash' },
      name: 'mean', meta: { kind: 'mean' } });
  }
  for (const s of series) {
    traces.push({
      x: toX(s.x, axis), y: smooth(finite(s.y), smoothing), mode: s.x.length === 1 ? 'markers' : 'lines',
      name: `rank ${s.rank}`, line: { color: rankColor(s.rank), width: 1.5 }, marker: { color: rankColor(s.rank) },
      visible: hidden.has(s.rank) ? 'legendonly' : true, meta: { kind: 'rank', rank: s.rank },
    });
  }
  return traces;
}

export function metricLayout(title, axis) {
  return {
    title: { text: title, font: { size: 14 }, x: 0.01, xanchor: 'left', y: 0.97 },
    margin: { l: 50, r: 10, t: 40, b: 44 },
    xaxis: { title: { text: axis === 'time' ? 'wall time' : axis, standoff: 6 }, type: axis === 'time' ? 'date' : 'linear' },
    yaxis: { automargin: true },
    legend: { orientation: 'h', x: 1, xanchor: 'right', y: 1.0, yanchor: 'bottom', font: { size: 11 }, traceorder: 'normal' },
    hovermode: 'x unified',
    uirevision: title,
  };
}

export const PLOT_CONFIG = { responsive: true, displaylogo: false, scrollZoom: false };

// Plotly renders a subset of HTML in titles and trace names; names come from users (metric
// and run names), so every one is escaped here, the one door to Plotly, before it is drawn.
export function plotText(text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function draw(div, traces, layout) {
  const safeTraces = traces.map((t) => (t.name === undefined ? t : { ...t, name: plotText(t.name) }));
  const title = layout.title && layout.title.text !== undefined ? { ...layout.title, text: plotText(layout.title.text) } : layout.title;
  return plotly().react(div, safeTraces, { ...layout, title }, PLOT_CONFIG);
}
