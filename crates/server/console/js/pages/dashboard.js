// Totals across projects, redemptions per day, newest redemptions.
import { get } from '../api.js';
import { h, clear, fmtNum, fmtTimeEl, table } from '../ui.js';
import { redemptionChart } from '../chart.js';

export function statCards(t) {
  const card = (label, value, kind, key) =>
    h('div', { class: `card ${kind || ''}`, 'data-testid': `stat-${key}` }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, fmtNum(value)));
  return h(
    'div',
    { class: 'cards' },
    card('Total codes', t.total_codes, '', 'total'),
    card('Unused', t.unused_codes, 'ok', 'unused'),
    card('Used', t.used_codes, '', 'used'),
    card('Disabled', t.disabled_codes, 'bad', 'disabled'),
    card('Expired', t.expired_codes, 'warn', 'expired'),
  );
}

export function recentTable(items, projectNames) {
  const cols = [
    ['When', (r) => fmtTimeEl(r.verified_at)],
    projectNames && ['Project', (r) => h('a', { href: `/projects/${r.project_id}` }, projectNames.get(r.project_id) || r.project_id)],
    ['Code', (r) => h('code', null, r.code)],
    ['Redeemed by', (r) => r.verified_by || h('span', { class: 'muted' }, '—')],
  ].filter(Boolean);
  return h('section', { class: 'panel' }, h('h2', null, 'Newest redemptions'), table(cols, items || [], 'No redemptions yet.'));
}

export async function render(root, ctx) {
  document.title = 'Dashboard · CodeGate';
  const [overview, projects] = await Promise.allSettled([get('/overview'), get('/projects')]);
  if (!ctx.isCurrent()) return;
  const items = projects.status === 'fulfilled' ? projects.value.items || [] : [];
  const names = new Map(items.map((p) => [p.id, p.name]));
  const body =
    overview.status === 'fulfilled'
      ? [statCards(overview.value.totals || {}), h('div', { class: 'grid2' }, redemptionChart(overview.value.redemptions_per_day), recentTable(overview.value.recent_redemptions, names))]
      : [h('div', { class: 'error', role: 'alert' }, `The overview cannot be loaded: ${overview.reason.message}`)];
  clear(
    root,
    h(
      'div',
      { class: 'page-head' },
      h('div', null, h('h1', null, 'Dashboard'), h('div', { class: 'sub' }, `${fmtNum(names.size)} projects`)),
      h('div', { class: 'actions' }, h('a', { class: 'button', href: '/projects' }, 'All projects'), h('a', { class: 'button primary', href: '/verify' }, 'Verify a code')),
    ),
    body,
  );
}
