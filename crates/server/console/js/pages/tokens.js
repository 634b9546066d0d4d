// Personal access tokens of the signed-in user: create (shown once), rotate, revoke.
import { get, post, del } from '../api.js';
import { h, clear, field, errorBox, onSubmit, modal, confirmAction, badge, fmtTimeEl, table, toast, copyButton, fromLocalInput } from '../ui.js';
import { role } from '../app.js';

const ALL_SCOPES = ['read', 'write', 'verify', 'keys', 'admin'];

function tokenDialog(t, title) {
  return new Promise((resolve) => {
    const m = modal(title, { onClose: resolve });
    m.body.append(
      h('p', { class: 'notice' }, 'Copy the token now: it is shown only this once.'),
      h('div', { class: 'secret-row' }, h('code', { 'data-testid': 'new-token' }, t.token), copyButton(t.token)),
      h('pre', null, `curl -H "Authorization: Bearer ${t.token}" ${location.origin}/api/v1/projects`),
    );
    const done = h('button', { type: 'button', class: 'primary', onclick: m.close }, 'Done');
    m.foot.append(done);
    done.focus();
  });
}

export async function render(root, ctx) {
  document.title = 'Access tokens · CodeGate';
  const [data, projects] = await Promise.all([get('/tokens'), get('/projects').catch(() => ({ items: [] }))]);
  if (!ctx.isCurrent()) return;
  const names = new Map(projects.items.map((p) => [p.id, p.name]));
  const allowed = ALL_SCOPES.filter((s) => (s === 'admin' ? role.isOwner() : role.canWrite() || s === 'read'));
  const reload = () => render(root, ctx);
  const act = (fn) => async () => {
    try {
      await fn();
      await reload();
    } catch (err) {
      toast(err.message, 'bad');
    }
  };
  const stateOf = (t) => (t.revoked_at ? badge('revoked') : t.expires_at && t.expires_at < Date.now() / 1000 ? badge('expired') : badge('active'));
  const cols = [
    ['Name', (t) => t.name],
    ['Token', (t) => h('code', null, `${t.display_prefix || 'cgp_'}…`)],
    ['Scopes', (t) => (t.scopes || []).join(', ')],
    ['Project', (t) => (t.project_id ? names.get(t.project_id) || t.project_id : 'all')],
    ['State', stateOf],
    ['Expires', (t) => fmtTimeEl(t.expires_at), 'hide-narrow'],
    ['Last used', (t) => fmtTimeEl(t.last_used_at)],
    [
      '',
      (t) =>
        t.revoked_at
          ? []
          : [
              h('button', { type: 'button', class: 'small', onclick: act(async () => {
                if (!(await confirmAction('Rotate token', `Issue a new token for “${t.name}”? The current one stops working at once.`, { confirmLabel: 'Rotate', danger: false }))) return;
                await tokenDialog(await post(`/tokens/${t.id}/rotate`), 'New token');
              }) }, 'Rotate'),
              h('button', { type: 'button', class: 'small danger', onclick: act(async () => {
                if (!(await confirmAction('Revoke token', `Revoke “${t.name}”? Scripts using it are refused at once.`, { confirmLabel: 'Revoke' }))) return;
                await del(`/tokens/${t.id}`);
                toast('Token revoked', 'ok');
              }) }, 'Revoke'),
            ],
      'row-actions',
    ],
  ];

  const name = h('input', { name: 'name', required: true, maxlength: 100, placeholder: 'e.g. CI deploy' });
  const scopeBoxes = allowed.map((s) => h('input', { type: 'checkbox', name: 'scope', value: s, checked: s === 'read' }));
  const project = h('select', { name: 'project_id' }, h('option', { value: '' }, 'All projects'), projects.items.map((p) => h('option', { value: p.id }, p.name)));
  const expires = h('input', { type: 'datetime-local', name: 'expires_at' });
  const err = errorBox();
  const form = h(
    'form',
    { class: 'stack', 'aria-label': 'Create token' },
    err,
    h('div', { class: 'form-grid' }, field('Name', name), field('Project', project, 'optional restriction'), field('Expires', expires, 'optional')),
    h('fieldset', { class: 'actions' }, h('legend', null, 'Scopes'), scopeBoxes.map((b) => field(b.value, b))),
    h('div', null, h('button', { type: 'submit', class: 'primary' }, 'Create token')),
  );
  onSubmit(
    form,
    async () => {
      const scopes = scopeBoxes.filter((b) => b.checked).map((b) => b.value);
      if (!scopes.length) throw new Error('Choose at least one scope.');
      const body = { name: name.value.trim(), scopes };
      if (project.value) body.project_id = project.value;
      const exp = fromLocalInput(expires.value);
      if (exp) body.expires_at = exp;
      const t = await post('/tokens', body);
      await tokenDialog(t, 'Token created');
      await reload();
    },
    err,
  );
  clear(
    root,
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Personal access tokens'), h('div', { class: 'sub' }, 'Bearer tokens for scripts, CI and curl. They act as you, limited to their scopes.'))),
    h('section', { class: 'panel' }, h('h2', null, 'New token'), form),
    table(cols, data.items || [], 'No tokens yet.'),
  );
}
