// Redemptions per day as an inline SVG bar chart (no chart library: the
// console ships no dependencies). Input: [{day: 'YYYY-MM-DD', count}], oldest first.
import { h, s, fmtNum } from './ui.js';

const W = 720;
const H = 220;
const PAD = { left: 44, right: 8, top: 12, bottom: 28 };

/** A round upper bound for the y axis: 1, 2, 5 × 10^n. */
function niceMax(n) {
  if (n <= 4) return 4;
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (m * p >= n) return m * p;
  return 10 * p;
}

const dayLabel = (day) => {
  const [y, m, d] = day.split('-').map(Number);
  return new Date(y, m - 1, d).toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
};

export function redemptionChart(series, title = 'Redemptions per day (last 30 days)') {
  const days = Array.isArray(series) ? series : [];
  const total = days.reduce((a, d) => a + (d.count || 0), 0);
  const max = niceMax(Math.max(0, ...days.map((d) => d.count || 0)));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = days.length ? plotW / days.length : plotW;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title}: ${fmtNum(total)} in total` });
  for (const frac of [0, 0.5, 1]) {
    const y = PAD.top + plotH * (1 - frac);
    svg.append(s('line', { class: 'axis', x1: PAD.left, x2: W - PAD.right, y1: y, y2: y }));
    svg.append(s('text', { x: PAD.left - 6, y: y + 4, 'text-anchor': 'end' }, fmtNum(max * frac)));
  }
  days.forEach((d, i) => {
    const bh = max ? (plotH * (d.count || 0)) / max : 0;
    const x = PAD.left + i * slot + slot * 0.15;
    const rect = s('rect', {
      class: 'bar',
      x: x.toFixed(1),
      y: (PAD.top + plotH - bh).toFixed(1),
      width: (slot * 0.7).toFixed(1),
      height: Math.max(bh, d.count ? 1 : 0).toFixed(1),
      'data-day': d.day,
      'data-count': d.count,
    });
    rect.append(s('title', null, `${dayLabel(d.day)}: ${fmtNum(d.count)}`));
    svg.append(rect);
    if (i % 5 === 0 || i === days.length - 1) {
      svg.append(s('text', { x: (x + slot * 0.35).toFixed(1), y: H - 8, 'text-anchor': 'middle' }, dayLabel(d.day)));
    }
  });
  if (!total) svg.append(s('text', { class: 'empty', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'No redemptions in the last 30 days'));
  return h('figure', { class: 'chart panel', 'data-testid': 'redemption-chart' },
    h('h2', null, title, h('span', { class: 'muted' }, ` · ${fmtNum(total)} total`)), svg);
}
