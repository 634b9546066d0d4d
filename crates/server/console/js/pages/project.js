// One project: header with its actions, then a tab (codes, batches,
// redemption log, import & export, API keys).
import { get } from '../api.js';
import { h, clear, badge, fmtNum, fmtTimeEl, table, pager, toast } from '../ui.js';
import { role, navigate, setQuery, render as rerender } from '../app.js';
import { projectDialog, toggleProject, deleteProject } from './projects.js';
import { statCards } from './dashboard.js';
import { redemptionChart } from '../chart.js';
import { codeTable } from './codes.js';
import { transferTab } from './transfer.js';
import { keysTab } from './keys.js';

const TABS = [
  ['', 'Codes'],
  ['batches', 'Batches'],
  ['redemptions', 'Redemption log'],
  ['transfer', 'Import & export'],
  ['keys', 'API keys'],
];

export async function render(root, ctx) {
  const [pid, tab = ''] = ctx.params;
  const p = await get(`/projects/${pid}`);
  if (!ctx.isCurrent()) return;
  document.title = `${p.name} · CodeGate`;
  const write = role.canWrite();
  const guarded = (fn) => async () => {
    try {
      await fn();
    } catch (err) {
      toast(err.message, 'bad');
    }
  };
  const head = h(
    'div',
    { class: 'page-head' },
    h(
      'div',
      null,
      h('div', { class: 'crumbs' }, h('a', { href: '/projects' }, 'Projects'), ' / '),
      h('h1', null, p.name, ' ', p.status ? badge('enabled') : badge('disabled')),
      h('div', { class: 'sub' }, p.description || '', p.expires_at ? ` · expires ${new Date(p.expires_at * 1000).toLocaleString()}` : '', h('span', { class: 'mono' }, ` · id ${p.id}`)),
    ),
    write &&
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', onclick: guarded(async () => (await projectDialog(p)) && rerender()) }, 'Edit'),
        h('button', { type: 'button', onclick: guarded(async () => (await toggleProject(p), rerender())) }, p.status ? 'Disable' : 'Enable'),
        h('button', { type: 'button', class: 'danger', onclick: guarded(async () => (await deleteProject(p)) && navigate('/projects')) }, 'Delete'),
      ),
  );
  const tabs = h(
    'nav',
    { class: 'tabs', 'aria-label': 'Project sections' },
    TABS.filter(([key]) => key !== 'keys' || write).map(([key, label]) =>
      h('a', { href: `/projects/${pid}${key ? `/${key}` : ''}`, 'aria-current': key === (tab === 'codes' ? '' : tab) ? 'page' : null }, label),
    ),
  );
  const body = h('div');
  clear(root, head, tabs, body);
  switch (tab) {
    case 'batches':
      return batchesTab(body, p);
    case 'redemptions':
      return redemptionsTab(body, p, ctx);
    case 'transfer':
      return transferTab(body, p);
    case 'keys':
      return keysTab(body, p);
    default:
      return codesTab(body, p, ctx);
  }
}

async function codesTab(body, p, ctx) {
  const stats = p.statistics || {};
  const chartSlot = h('div');
  body.append(statCards(stats), chartSlot);
  // The chart loads beside the table; a missing overview must not hide the codes.
  get(`/projects/${p.id}/overview`).then(
    (o) => chartSlot.replaceChildren(redemptionChart(o.redemptions_per_day)),
    (err) => chartSlot.replaceChildren(h('p', { class: 'notice' }, `Redemption chart unavailable: ${err.message}`)),
  );
  await codeTable(body, p, ctx);
}

async function batchesTab(body, p) {
  const data = await get(`/projects/${p.id}/batches`);
  const cols = [
    ['Name', (b) => b.name || h('span', { class: 'muted' }, '(unnamed)')],
    ['Source', (b) => badge(b.source, 'plain')],
    ['Codes', (b) => fmtNum(b.code_count), 'num'],
    ['Created', (b) => fmtTimeEl(b.created_at)],
    ['Metadata', (b) => (b.metadata ? h('code', null, JSON.stringify(b.metadata)) : '—'), 'hide-narrow'],
    [
      '',
      (b) => [
        h('a', { class: 'button small', href: `/projects/${p.id}?batch_id=${b.id}` }, 'Show codes'),
        ' ',
        h('a', { class: 'button small', href: `/api/v1/projects/${p.id}/codes/export?format=csv&batch_id=${b.id}`, download: `codes-${b.id}.csv` }, 'CSV'),
      ],
      'row-actions',
    ],
  ];
  body.append(table(cols, data.items || [], 'No batches yet: generate or import codes.'));
}

async function redemptionsTab(body, p, ctx) {
  const result = h('select', { 'aria-label': 'Result' }, ['', 'success', 'failed', 'reactivated'].map((v) => h('option', { value: v }, v || 'All results')));
  result.value = ctx.query.get('result') || '';
  const slot = h('div');
  const load = async (page) => {
    setQuery({ result: result.value, page });
    const data = await get(`/projects/${p.id}/redemptions?page=${page}&page_size=50${result.value ? `&result=${result.value}` : ''}`);
    const cols = [
      ['When', (r) => fmtTimeEl(r.created_at)],
      ['Code', (r) => (r.code_id ? h('a', { href: `/projects/${p.id}/codes/${r.code_id}` }, r.code) : r.code)],
      ['Action', (r) => r.action],
      ['Result', (r) => badge(r.result)],
      ['Reason', (r) => r.reason || '—'],
      ['Actor', (r) => r.actor || '—'],
      ['IP', (r) => r.ip_address || '—', 'hide-narrow'],
      ['Credential', (r) => r.credential || '—', 'hide-narrow'],
    ];
    slot.replaceChildren(table(cols, data.items || [], 'No redemptions yet.'), pager(data, load, 'entries'));
  };
  result.addEventListener('change', () => load(1));
  body.append(h('div', { class: 'filters' }, h('label', { class: 'field' }, h('span', null, 'Result'), result)), slot);
  await load(parseInt(ctx.query.get('page'), 10) || 1);
}
