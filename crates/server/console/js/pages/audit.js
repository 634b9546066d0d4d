// The audit log with filters (actor, action, project) and paging.
import { get, qs } from '../api.js';
import { h, clear, field, fmtTimeEl, table, pager, badge, debounce } from '../ui.js';
import { setQuery } from '../app.js';

export async function render(root, ctx) {
  document.title = 'Audit log · CodeGate';
  const projects = await get('/projects').catch(() => ({ items: [] }));
  if (!ctx.isCurrent()) return;
  const names = new Map(projects.items.map((p) => [p.id, p.name]));
  const q = ctx.query;
  const actor = h('input', { name: 'actor', value: q.get('actor') || '', placeholder: 'e.g. admin' });
  const action = h('input', { name: 'action', value: q.get('action') || '', placeholder: 'e.g. project.create' });
  const project = h('select', { name: 'project_id' }, h('option', { value: '' }, 'All projects'), projects.items.map((p) => h('option', { value: p.id }, p.name)));
  project.value = q.get('project_id') || '';
  const slot = h('div', { 'data-testid': 'audit' });
  let loadSeq = 0;
  const load = async (page) => {
    const seq = ++loadSeq;
    const f = { actor: actor.value.trim(), action: action.value.trim(), project_id: project.value };
    setQuery({ ...f, page });
    try {
      const data = await get(`/audit-log${qs({ ...f, page, page_size: 50 })}`);
      if (seq !== loadSeq) return;
      const cols = [
        ['When', (e) => fmtTimeEl(e.created_at)],
        ['Actor', (e) => e.actor],
        ['Action', (e) => h('code', null, e.action)],
        ['Resource', (e) => [e.resource_type, e.resource_id ? h('span', { class: 'mono muted' }, ` ${e.resource_id.slice(0, 12)}`) : '']],
        ['Project', (e) => (e.project_id ? h('a', { href: `/projects/${e.project_id}` }, names.get(e.project_id) || e.project_id.slice(0, 12)) : '—')],
        ['Result', (e) => badge(e.result)],
        ['IP', (e) => e.ip_address || '—', 'hide-narrow'],
        ['Detail', (e) => (e.detail ? h('code', null, JSON.stringify(e.detail)) : '—'), 'hide-narrow'],
      ];
      slot.replaceChildren(table(cols, data.items || [], 'No entries match.'), pager(data, load, 'entries'));
    } catch (err) {
      slot.replaceChildren(h('div', { class: 'error', role: 'alert' }, err.message));
    }
  };
  const reload = debounce(() => load(1), 300);
  actor.addEventListener('input', reload);
  action.addEventListener('input', reload);
  project.addEventListener('change', () => load(1));
  const form = h('form', { class: 'filters', role: 'search' }, field('Actor', actor), field('Action', action), field('Project', project), h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    reload.cancel();
    load(1);
  });
  clear(root, h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Audit log'), h('div', { class: 'sub' }, 'Every management action: who, what, on which resource, from where.'))), form, slot);
  await load(parseInt(q.get('page'), 10) || 1);
}
