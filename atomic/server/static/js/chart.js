// Small SVG charts drawn from numbers: a line over time and horizontal bars.

import {fill, svg} from './dom.js';

// Drawn in CSS pixels, so text keeps its size whatever the width.
function width(el, fallback) {
  return Math.max(160, Math.round(el.getBoundingClientRect().width) || fallback);
}

// A line of the last values (oldest first) with its latest value written beside it.
export function line(el, values, {unit = '', digits = 1} = {}) {
  const w = width(el, 300);
  const hgt = 80;
  el.setAttribute('height', hgt);
  const pad = 4;
  el.setAttribute('viewBox', `0 0 ${w} ${hgt}`);
  const shown = values.filter((v) => Number.isFinite(v));
  if (shown.length < 2) {
    fill(el, svg('text', {x: w / 2, y: hgt / 2, class: 'chart-note', 'text-anchor': 'middle'}, 'collecting…'));
    el.setAttribute('aria-label', 'not enough samples yet');
    return;
  }
  const max = Math.max(...shown, 1e-9);
  const step = (w - 2 * pad) / Math.max(1, values.length - 1);
  const points = values.map((v, i) => [pad + i * step, hgt - pad - ((Number.isFinite(v) ? v : 0) / max) * (hgt - 2 * pad - 14)]);
  const d = points.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`).join('');
  const area = `${d}L${points[points.length - 1][0].toFixed(1)},${hgt - pad}L${pad},${hgt - pad}Z`;
  const last = values[values.length - 1];
  const label = `${Number.isFinite(last) ? last.toFixed(digits) : '–'}${unit}`;
  fill(el,
    svg('line', {x1: pad, x2: w - pad, y1: hgt - pad, y2: hgt - pad, class: 'chart-axis'}),
    svg('path', {d: area, class: 'chart-area'}),
    svg('path', {d, class: 'chart-line'}),
    svg('text', {x: w - pad, y: 12, class: 'chart-value', 'text-anchor': 'end'}, label),
    svg('text', {x: pad, y: 12, class: 'chart-note'}, `max ${max.toFixed(digits)}${unit}`));
  el.setAttribute('aria-label', `latest ${label}, highest in view ${max.toFixed(digits)}${unit}`);
}

// Horizontal bars: rows [{label, values: [a, b]}] on a log scale (stages differ by 10^4).
export function bars(el, rows, {series = ['p50', 'p90'], format = String} = {}) {
  const w = width(el, 320);
  const rowH = 26;
  const labelW = 96;
  const valueW = 150;
  const hgt = Math.max(1, rows.length) * rowH + 20;
  el.setAttribute('viewBox', `0 0 ${w} ${hgt}`);
  el.setAttribute('height', hgt);
  if (!rows.length) {
    fill(el, svg('text', {x: w / 2, y: hgt / 2, class: 'chart-note', 'text-anchor': 'middle'}, 'no job has run yet'));
    el.setAttribute('aria-label', 'no data yet');
    return;
  }
  const all = rows.flatMap((r) => r.values).filter((v) => v > 0);
  const lo = Math.log10(Math.max(0.01, Math.min(...all)));
  const hi = Math.log10(Math.max(...all, 1));
  const span = Math.max(0.5, hi - lo + 0.3);
  const scale = (v) => (v > 0 ? Math.max(2, ((Math.log10(v) - lo + 0.3) / span) * (w - labelW - valueW)) : 0);
  const items = [];
  rows.forEach((r, i) => {
    const y = i * rowH;
    items.push(svg('text', {x: 0, y: y + 15, class: 'chart-label'}, r.label));
    r.values.forEach((v, k) => {
      items.push(svg('rect', {
        x: labelW, y: y + 3 + k * 10, height: 9, width: scale(v).toFixed(1), rx: 2, class: `chart-bar s${k}`,
      }));
    });
    items.push(svg('text', {x: w, y: y + 15, class: 'chart-value', 'text-anchor': 'end'},
      r.values.map(format).join(' / ')));
  });
  const ly = rows.length * rowH + 12;
  series.forEach((name, k) => {
    items.push(svg('rect', {x: labelW + k * 70, y: ly - 8, width: 10, height: 9, rx: 2, class: `chart-bar s${k}`}));
    items.push(svg('text', {x: labelW + k * 70 + 14, y: ly, class: 'chart-note'}, name));
  });
  items.push(svg('text', {x: w, y: ly, class: 'chart-note', 'text-anchor': 'end'}, 'log scale'));
  fill(el, items);
  el.setAttribute('aria-label', rows.map((r) => `${r.label} ${r.values.map(format).join(' / ')}`).join('; '));
}
