// The project list: create, edit, enable/disable, delete.
import { get, post, patch, del } from '../api.js';
import { h, clear, field, errorBox, onSubmit, modal, confirmAction, badge, fmtNum, fmtTimeEl, table, toast, toLocalInput, fromLocalInput } from '../ui.js';
import { role, navigate, render as rerender } from '../app.js';

/** Create (project undefined) or edit a project; resolves with the saved project. */
export function projectDialog(project) {
  return new Promise((resolve) => {
    let saved = null;
    const m = modal(project ? `Edit ${project.name}` : 'New project', { onClose: () => resolve(saved) });
    const name = h('input', { name: 'name', required: true, maxlength: 100, value: project?.name || '' });
    const description = h('textarea', { name: 'description', maxlength: 1000 });
    description.value = project?.description || '';
    const expires = h('input', { name: 'expires_at', type: 'datetime-local', value: toLocalInput(project?.expires_at) });
    const enabled = h('input', { type: 'checkbox', name: 'enabled', checked: project ? project.status : true });
    const err = errorBox();
    const form = h(
      'form',
      { class: 'stack' },
      err,
      field('Name', name),
      field('Description', description, 'optional'),
      field('Expires', expires, 'optional, your local time'),
      field('Enabled', enabled),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, project ? 'Save' : 'Create project')),
    );
    onSubmit(
      form,
      async () => {
        const body = { name: name.value.trim(), description: description.value, status: enabled.checked, expires_at: fromLocalInput(expires.value) };
        saved = project ? await patch(`/projects/${project.id}`, body) : await post('/projects', body);
        toast(project ? 'Project saved' : `Project “${saved.name}” created`, 'ok');
        m.close();
      },
      err,
    );
    m.body.append(form);
    name.focus();
  });
}

export async function toggleProject(p) {
  await patch(`/projects/${p.id}`, { status: !p.status });
  toast(`${p.name} ${p.status ? 'disabled' : 'enabled'}`, 'ok');
}

export async function deleteProject(p) {
  const codes = p.statistics ? ` and its ${fmtNum(p.statistics.total_codes)} codes` : ' and all its codes';
  const ok = await confirmAction('Delete project', `Delete “${p.name}”${codes}? API keys of this project stop working. This cannot be undone.`);
  if (!ok) return false;
  await del(`/projects/${p.id}`);
  toast(`Project “${p.name}” deleted`, 'ok');
  return true;
}

export async function render(root, ctx) {
  document.title = 'Projects · CodeGate';
  const data = await get('/projects');
  if (!ctx.isCurrent()) return;
  const write = role.canWrite();
  const act = (fn) => async () => {
    try {
      if ((await fn()) !== false) rerender();
    } catch (err) {
      toast(err.message, 'bad');
    }
  };
  const cols = [
    ['Name', (p) => h('a', { href: `/projects/${p.id}` }, p.name)],
    ['Status', (p) => (p.status ? badge('enabled') : badge('disabled'))],
    ['Codes', (p) => fmtNum(p.statistics?.total_codes), 'num'],
    ['Expires', (p) => fmtTimeEl(p.expires_at), 'hide-narrow'],
    ['Created', (p) => fmtTimeEl(p.created_at), 'hide-narrow'],
  ];
  if (write) {
    cols.push([
      '',
      (p) => [
        h('button', { type: 'button', class: 'small', onclick: act(() => projectDialog(p)) }, 'Edit'),
        h('button', { type: 'button', class: 'small', onclick: act(() => toggleProject(p)) }, p.status ? 'Disable' : 'Enable'),
        h('button', { type: 'button', class: 'small danger', onclick: act(() => deleteProject(p)) }, 'Delete'),
      ],
      'row-actions',
    ]);
  }
  const create = async () => {
    const p = await projectDialog();
    if (p) navigate(`/projects/${p.id}`);
  };
  clear(
    root,
    h(
      'div',
      { class: 'page-head' },
      h('div', null, h('h1', null, 'Projects'), h('div', { class: 'sub' }, `${fmtNum(data.total ?? data.items.length)} projects`)),
      write && h('button', { type: 'button', class: 'primary', onclick: create }, 'New project'),
    ),
    table(cols, data.items || [], write ? 'No projects yet: create the first one.' : 'No projects yet.'),
  );
}
