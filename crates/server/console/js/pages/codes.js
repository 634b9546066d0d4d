// The code table of a project: state / batch filter, search, server-side
// paging (never more than one page in the browser), per-code and bulk actions.
import { get, post, patch, del, qs, apiUrl } from '../api.js';
import { h, field, badge, fmtNum, fmtTimeEl, table, pager, toast, confirmAction, debounce } from '../ui.js';
import { role, setQuery } from '../app.js';
import { generateDialog } from './generate.js';

export const STATES = ['unused', 'used', 'disabled', 'expired'];

/** One code's actions; `done()` reloads whatever shows the code. */
export function codeActions(p, c, done) {
  if (!role.canWrite()) return [];
  const run = (fn, action) => async () => {
    try {
      await fn();
      done(action);
    } catch (err) {
      toast(err.message, 'bad');
    }
  };
  const setDisabled = (disabled) =>
    run(async () => {
      await patch(`/projects/${p.id}/codes/${c.id}`, { disabled });
      toast(`${c.code} ${disabled ? 'disabled' : 'enabled'}`, 'ok');
    });
  const reactivate = run(async () => {
    const r = await post(`/projects/${p.id}/codes/reactivate`, { code: c.code, reactivated_by: role.me()?.username, reason: 'reactivated in the console' });
    if (!r.success) throw new Error(r.message || r.error_code);
    toast(`${c.code} reactivated`, 'ok');
  });
  const remove = async () => {
    if (!(await confirmAction('Delete code', `Delete the code ${c.code}? Its redemption log goes with it.`))) return;
    await run(async () => {
      await del(`/projects/${p.id}/codes/${c.id}`);
      toast(`${c.code} deleted`, 'ok');
    }, 'delete')();
  };
  const btn = (label, onclick, cls = '') => h('button', { type: 'button', class: `small ${cls}`, onclick, 'data-action': label.toLowerCase() }, label);
  return [
    c.is_disabled ? btn('Enable', setDisabled(false)) : btn('Disable', setDisabled(true)),
    (c.use_count ?? (c.status ? 1 : 0)) > 0 && btn('Reactivate', reactivate),
    btn('Delete', remove, 'danger'),
  ];
}

const stateOf = (c) => c.state || (c.is_disabled ? 'disabled' : c.status ? 'used' : c.is_expired ? 'expired' : 'unused');

export async function codeTable(root, p, ctx) {
  const write = role.canWrite();
  const q = ctx.query;
  const status = h('select', { name: 'status' }, h('option', { value: '' }, 'All states'), STATES.map((s) => h('option', { value: s }, s)));
  status.value = q.get('status') || '';
  const batch = h('select', { name: 'batch_id' }, h('option', { value: '' }, 'All batches'));
  const search = h('input', { type: 'search', name: 'search', placeholder: 'Part of a code', value: q.get('search') || '', autocomplete: 'off' });
  const size = h('select', { name: 'page_size' }, [20, 50, 100].map((n) => h('option', { value: n }, String(n))));
  size.value = q.get('page_size') || '20';
  let batchWanted = q.get('batch_id') || '';
  batch.append(h('option', { value: batchWanted }, batchWanted ? `Batch ${batchWanted.slice(0, 8)}…` : ''));
  batch.value = batchWanted;
  // Batch names arrive later; keep whatever is selected.
  get(`/projects/${p.id}/batches`).then(
    (b) => {
      batch.replaceChildren(h('option', { value: '' }, 'All batches'));
      for (const x of b.items || []) batch.append(h('option', { value: x.id }, `${x.name || x.id.slice(0, 8)} (${fmtNum(x.code_count)})`));
      batch.value = batchWanted;
    },
    () => {},
  );
  const filter = () => ({ status: status.value, batch_id: batch.value, search: search.value.trim() });
  const exportHref = (format) => apiUrl(`/projects/${p.id}/codes/export${qs({ format, ...filter() })}`);
  const csv = h('a', { class: 'button small', download: 'codes.csv', href: exportHref('csv') }, 'Export CSV');
  const jsonl = h('a', { class: 'button small', download: 'codes.jsonl', href: exportHref('jsonl') }, 'Export JSON Lines');
  const bulk = h('button', { type: 'button', class: 'small danger' }, 'Disable all matching');
  const slot = h('div', { 'data-testid': 'codes' });
  let current = { total: 0 };
  let page = parseInt(q.get('page'), 10) || 1;

  let loadSeq = 0;
  const load = async (n = page) => {
    const seq = ++loadSeq;
    page = n;
    const f = filter();
    setQuery({ ...f, page: n, page_size: size.value === '20' ? '' : size.value });
    csv.href = exportHref('csv');
    jsonl.href = exportHref('jsonl');
    slot.setAttribute('aria-busy', 'true');
    try {
      const data = await get(`/projects/${p.id}/codes${qs({ ...f, page: n, page_size: size.value })}`);
      // A slower, older answer must not replace a newer one.
      if (seq !== loadSeq) return;
      current = data;
      const cols = [
        ['Code', (c) => h('a', { href: `/projects/${p.id}/codes/${c.id}`, class: 'mono' }, c.code)],
        ['State', (c) => badge(stateOf(c))],
        ['Uses', (c) => `${fmtNum(c.use_count ?? (c.status ? 1 : 0))} / ${fmtNum(c.max_uses ?? 1)}`, 'num'],
        ['Expires', (c) => fmtTimeEl(c.expires_at), 'hide-narrow'],
        ['Last redeemed', (c) => (c.verified_at ? [fmtTimeEl(c.verified_at), c.verified_by ? ` by ${c.verified_by}` : ''] : '—')],
        ['Created', (c) => fmtTimeEl(c.created_at), 'hide-narrow'],
      ];
      if (write) cols.push(['', (c) => codeActions(p, c, () => load(page)), 'row-actions']);
      slot.replaceChildren(table(cols, data.items || [], 'No codes match.'), pager(data, load, 'codes'));
      bulk.disabled = !data.total;
    } catch (err) {
      slot.replaceChildren(h('div', { class: 'error', role: 'alert' }, err.message));
    } finally {
      slot.removeAttribute('aria-busy');
    }
  };

  bulk.addEventListener('click', async () => {
    const f = filter();
    const what = [f.status && `state “${f.status}”`, f.batch_id && 'the chosen batch', f.search && `containing “${f.search}”`].filter(Boolean).join(', ');
    const ok = await confirmAction('Disable codes', `Disable all ${fmtNum(current.total)} codes${what ? ` matching ${what}` : ' of this project'}? They can be enabled again later.`, { confirmLabel: 'Disable them' });
    if (!ok) return;
    try {
      const filterBody = Object.fromEntries(Object.entries(f).filter(([, v]) => v));
      const r = await post(`/projects/${p.id}/codes/bulk`, { action: 'disable', filter: filterBody });
      toast(`${fmtNum(r.affected)} codes disabled`, 'ok');
      load(1);
    } catch (err) {
      toast(err.message, 'bad');
    }
  });
  const reload = () => load(1);
  status.addEventListener('change', reload);
  batch.addEventListener('change', () => {
    batchWanted = batch.value;
    reload();
  });
  size.addEventListener('change', reload);
  const typed = debounce(reload, 300);
  search.addEventListener('input', typed);
  const searchForm = h('form', { class: 'grow', role: 'search' }, field('Search', search));
  searchForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    typed.cancel();
    reload();
  });

  const gen = async () => {
    if (await generateDialog(p)) {
      batchWanted = '';
      batch.value = '';
      load(1);
    }
  };
  root.append(
    h(
      'section',
      { class: 'panel' },
      h('div', { class: 'page-head' }, h('h2', null, 'Codes'), h('div', { class: 'actions' }, write && h('button', { type: 'button', class: 'primary', onclick: gen }, 'Generate codes'), csv, jsonl, write && bulk)),
      h('div', { class: 'filters' }, field('State', status), field('Batch', batch), searchForm, field('Per page', size)),
      slot,
    ),
  );
  await load(page);
}
