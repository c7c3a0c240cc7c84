// Plotly helpers: per-rank lines, the cross-rank mean with its min-max band, smoothing.

const PALETTE = ['#2f6fde', '#e8710a', '#1a7f37', '#c62828', '#7b3fbf', '#00838f', '#ad1457', '#5d6d7e'];

export const rankColor = (rank) => PALETTE[rank % PALETTE.length];

const MISSING = 'the chart library (plotly.min.js) did not load; is the plotly package installed on the server?';
const LOAD_TIMEOUT_MS = 60000;
let loading = null;

// The chart library loads async (index.html), so the app fetches its data while the browser
// parses 4.8 MB of Plotly; every draw awaits it here.
export function plotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.getElementById('plotly-js');
      const settle = () => (window.Plotly ? resolve(window.Plotly) : reject(new Error(MISSING)));
      if (!script) { settle(); return; }
      script.addEventListener('load', settle);
      script.addEventListener('error', settle);
      setTimeout(settle, LOAD_TIMEOUT_MS);
    });
  }
  return loading;
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
    // the band is smoothed with the lines' weight, so it follows the smoothed mean
    traces.push({ x, y: smooth(finite(band.min), smoothing), mode: 'lines', line: { width: 0 }, hoverinfo: 'skip', showlegend: false,
      name: 'min', meta: { kind: 'band' } });
    traces.push({ x, y: smooth(finite(band.max), smoothing), mode: 'lines', line: { width: 0 }, fill: 'tonexty',
      fillcolor: 'rgba(80,90,110,0.15)', name: 'min–max', meta: { kind: 'band' } });
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

// The title sits top left, the toolbar (modebar) top right and the legend under the x axis,
// so none overlaps another. yRange: [lo, hi] in data units, or null for autorange.
export function metricLayout(title, axis, { log = false, yRange = null, xTitle = null } = {}) {
  const yaxis = { automargin: true, type: log ? 'log' : 'linear' };
  if (yRange) yaxis.range = log ? yRange.map((v) => Math.log10(v)) : yRange;
  else yaxis.autorange = true;
  return {
    title: { text: title, font: { size: 14 }, x: 0.01, xanchor: 'left', y: 0.98, yanchor: 'top' },
    margin: { l: 50, r: 10, t: 34, b: 20 },
    xaxis: { title: { text: xTitle || (axis === 'time' ? 'wall time' : axis), standoff: 4 }, type: axis === 'time' ? 'date' : 'linear',
      automargin: true },
    yaxis,
    legend: { orientation: 'h', x: 0, xanchor: 'left', y: -0.18, yanchor: 'top', font: { size: 11 }, traceorder: 'normal' },
    hovermode: 'x unified',
    uirevision: title,
  };
}

// A y range that leaves out outliers: the 1st to 99th percentile of the values, padded by 10 %.
// With a log axis only positive values count. Null when there is too little to judge.
export function clippedRange(values, log = false) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x) && (!log || x > 0)).sort((a, b) => a - b);
  if (v.length < 10) return null;
  const at = (q) => v[Math.min(v.length - 1, Math.max(0, Math.round(q * (v.length - 1))))];
  let lo = at(0.01); let hi = at(0.99);
  if (log) { const pad = (Math.log10(hi) - Math.log10(lo)) * 0.1 || 0.1; return [lo / 10 ** pad, hi * 10 ** pad]; }
  const pad = (hi - lo) * 0.1 || Math.abs(hi) * 0.1 || 1;
  lo -= pad; hi += pad;
  return [lo, hi];
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
  return plotly().then((P) => P.react(div, safeTraces, { ...layout, title }, PLOT_CONFIG));
}
