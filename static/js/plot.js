// Plots drawn as SVG: a scatter plot of vector samples, and a bits/dim axis that places
// images against the model card's in-distribution figures (histogram, quantiles, threshold).

import { fmt } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgRoot(width, height, label) {
  const svg = svgEl('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, class: 'plot' });
  svg.append(svgEl('title', {}, label));
  return svg;
}

/**
 * Points (arrays of numbers; the first two coordinates are drawn) on a square plot.
 * opts: {label, lines: [{x} | {y}] (kept coordinates), color}
 */
export function scatter(points, { label = 'samples', lines = [], size = 320 } = {}) {
  const svg = svgRoot(size, size, `${label}: scatter plot of ${points.length} points`);
  let r = 1.2;
  for (const p of points) for (const v of p.slice(0, 2)) r = Math.max(r, Math.abs(v) * 1.1);
  for (const l of lines) r = Math.max(r, Math.abs(l.x ?? l.y) * 1.1);
  const m = 24;
  const s = (size - 2 * m) / (2 * r);
  const X = (v) => m + (v + r) * s;
  const Y = (v) => size - m - (v + r) * s;
  svg.append(svgEl('rect', { x: m, y: m, width: size - 2 * m, height: size - 2 * m, class: 'frame' }));
  svg.append(svgEl('line', { x1: X(-r), x2: X(r), y1: Y(0), y2: Y(0), class: 'axis' }));
  svg.append(svgEl('line', { x1: X(0), x2: X(0), y1: Y(-r), y2: Y(r), class: 'axis' }));
  for (const t of [-1, 1]) {
    svg.append(svgEl('text', { x: X(t), y: size - 6, class: 'tick', 'text-anchor': 'middle' }, String(t)));
    svg.append(svgEl('text', { x: 6, y: Y(t) + 4, class: 'tick' }, String(t)));
  }
  for (const l of lines) {
    const attrs = l.x !== undefined
      ? { x1: X(l.x), x2: X(l.x), y1: Y(-r), y2: Y(r) }
      : { x1: X(-r), x2: X(r), y1: Y(l.y), y2: Y(l.y) };
    svg.append(svgEl('line', { ...attrs, class: 'kept' }));
  }
  for (const p of points) {
    const y = p.length > 1 ? p[1] : 0;
    svg.append(svgEl('circle', { cx: X(p[0]), cy: Y(y), r: 3, class: 'point' }));
  }
  return svg;
}

/**
 * A bits/dim axis.  items: [{n, value, anomalous}] (n: the row number shown in the table);
 * ref: {mean, quantiles: {"0.9": v, ...}, threshold, histogram: {edges, counts}} (all optional).
 */
export function bpdAxis(items, ref = {}, { width = 640 } = {}) {
  const values = items.map((i) => i.value);
  const refs = [ref.mean, ref.threshold, ...Object.values(ref.quantiles || {})];
  const hist = ref.histogram && Array.isArray(ref.histogram.edges) && Array.isArray(ref.histogram.counts)
    ? ref.histogram : null;
  if (hist) refs.push(hist.edges[0], hist.edges[hist.edges.length - 1]);
  const all = [...values, ...refs].filter((v) => typeof v === 'number' && Number.isFinite(v));
  const lo0 = Math.min(...all);
  const hi0 = Math.max(...all);
  const log = lo0 > 0 && hi0 / lo0 > 8;
  const f = (v) => (log ? Math.log10(v) : v);
  const pad = (f(hi0) - f(lo0)) * 0.06 || 1;
  const lo = f(lo0) - pad;
  const hi = f(hi0) + pad;
  const m = 16;
  const height = hist ? 190 : 150;
  const base = height - 40;
  const X = (v) => m + ((f(v) - lo) / (hi - lo)) * (width - 2 * m);
  const svg = svgRoot(width, height,
    `bits per dimension of ${items.length} images${log ? ' (log scale)' : ''} against the model card`);
  svg.append(svgEl('line', { x1: m, x2: width - m, y1: base, y2: base, class: 'axis' }));
  // Ticks: a few round values.
  const ticks = log
    ? [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000].filter((t) => f(t) >= lo && f(t) <= hi)
    : niceTicks(lo, hi);
  for (const t of ticks) {
    svg.append(svgEl('line', { x1: X(t), x2: X(t), y1: base, y2: base + 5, class: 'axis' }));
    svg.append(svgEl('text', { x: X(t), y: base + 17, class: 'tick', 'text-anchor': 'middle' }, fmt(t, 1)));
  }
  svg.append(svgEl('text', { x: width - m, y: height - 4, class: 'tick', 'text-anchor': 'end' },
    `bits/dim${log ? ' (log scale)' : ''}`));
  if (hist) {
    const top = Math.max(...hist.counts, 1);
    hist.counts.forEach((c, i) => {
      const x0 = X(hist.edges[i]);
      const x1 = X(hist.edges[i + 1]);
      const h = (c / top) * (base - 60);
      svg.append(svgEl('rect', { x: x0, y: base - h, width: Math.max(1, x1 - x0 - 1), height: h, class: 'hist' }));
    });
  }
  const refMark = (v, text, cls, row) => {
    if (typeof v !== 'number') return;
    svg.append(svgEl('line', { x1: X(v), x2: X(v), y1: 22 + row * 12, y2: base, class: cls }));
    svg.append(svgEl('text', { x: X(v) + 3, y: 20 + row * 12, class: `label ${cls}` }, text));
  };
  Object.entries(ref.quantiles || {}).forEach(([q, v], i) => refMark(v, `q${q}`, 'quantile', i % 3));
  refMark(ref.mean, 'mean', 'mean', 0);
  refMark(ref.threshold, `threshold ${fmt(ref.threshold)}`, 'threshold', 3);
  items.forEach((it, i) => {
    const y = base - 10 - (i % 4) * 9;
    const g = svgEl('g', { class: it.anomalous ? 'item anomalous' : 'item' });
    g.append(svgEl('circle', { cx: X(it.value), cy: y, r: 4 }));
    g.append(svgEl('text', { x: X(it.value) + 5, y: y + 3, class: 'label' }, String(it.n)));
    g.append(svgEl('title', {}, `image ${it.n}: ${fmt(it.value)} bits/dim`));
    svg.append(g);
  });
  return svg;
}

function niceTicks(lo, hi) {
  const span = hi - lo;
  const step = 10 ** Math.floor(Math.log10(span / 4));
  const unit = [1, 2, 5, 10].map((k) => k * step).find((u) => span / u <= 6) || step * 10;
  const out = [];
  for (let t = Math.ceil(lo / unit) * unit; t <= hi; t += unit) out.push(Number(t.toPrecision(6)));
  return out;
}
