// A horizontal stacked bar chart as inline SVG (no library): one bar per row, one segment per
// series, a legend, and a title and description for screen readers. The table beside it holds
// the same figures; the chart only makes them easier to compare.

import { svg } from './dom.js';

const ROW = 28;      // height of a bar's row
const LABEL = 130;   // width of the row labels
const WIDTH = 640;   // the drawing's width (it scales with its box)
const LEGEND = 28;   // height of the legend

// stackedBars({title, desc, rows: [{label, values: {key: number}}], series: [{key, label}]})
// returns the <svg>. Segment classes are "seg-<key>" (colours in app.css).
export function stackedBars({ id, title, desc, rows, series }) {
  const height = LEGEND + Math.max(rows.length, 1) * ROW + 8;
  const max = Math.max(1, ...rows.map((r) => series.reduce((sum, s) => sum + (r.values[s.key] || 0), 0)));
  const scale = (WIDTH - LABEL - 50) / max;
  const root = svg('svg', {
    id, class: 'chart', viewBox: `0 0 ${WIDTH} ${height}`, role: 'img',
    'aria-labelledby': id + '-title ' + id + '-desc', preserveAspectRatio: 'xMinYMin meet',
  },
  svg('title', { id: id + '-title' }, title),
  svg('desc', { id: id + '-desc' }, desc));

  // Legend.
  let x = LABEL;
  for (const s of series) {
    root.append(
      svg('rect', { x, y: 6, width: 12, height: 12, class: 'seg-' + s.key }),
      svg('text', { x: x + 16, y: 16, class: 'legend' }, s.label));
    x += 16 + s.label.length * 8 + 24;
  }
  if (!rows.length) {
    root.append(svg('text', { x: LABEL, y: LEGEND + 18, class: 'legend' }, 'No sessions in this period.'));
    return root;
  }
  rows.forEach((r, i) => {
    const y = LEGEND + i * ROW;
    root.append(svg('text', { x: LABEL - 8, y: y + 17, class: 'row-label', 'text-anchor': 'end' }, r.label));
    let at = LABEL;
    let total = 0;
    for (const s of series) {
      const v = r.values[s.key] || 0;
      total += v;
      if (v <= 0) continue;
      const w = Math.max(v * scale, 2);
      root.append(svg('rect', { x: at, y: y + 4, width: w, height: ROW - 10, class: 'seg-' + s.key },
        svg('title', {}, `${r.label}: ${v} ${s.label}`)));
      at += w;
    }
    root.append(svg('text', { x: at + 6, y: y + 17, class: 'total' }, String(total)));
  });
  return root;
}
