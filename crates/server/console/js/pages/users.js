// Users and roles (owners only).
import { get, post, patch, del } from '../api.js';
import { h, clear, field, errorBox, onSubmit, modal, confirmAction, badge, fmtTimeEl, table, toast, copyButton } from '../ui.js';
import { role } from '../app.js';

const ROLES = ['owner', 'admin', 'viewer'];

export async function render(root, ctx) {
  document.title = 'Users · CodeGate';
  const data = await get('/users');
  if (!ctx.isCurrent()) return;
  const self = role.me();
  const reload = () => render(root, ctx);
  const act = (fn) => async () => {
    try {
      await fn();
      await reload();
    } catch (err) {
      toast(err.message, 'bad');
      await reload();
    }
  };
  const cols = [
    ['Username', (u) => [u.username, u.id === self.id ? h('span', { class: 'muted' }, ' (you)') : '']],
    [
      'Role',
      (u) => {
        if (u.id === self.id) return badge(u.role);
        const sel = h('select', { 'aria-label': `Role of ${u.username}` }, ROLES.map((r) => h('option', { value: r }, r)));
        sel.value = u.role;
        sel.addEventListener('change', act(async () => {
          await patch(`/users/${u.id}`, { role: sel.value });
          toast(`${u.username} is now ${sel.value}`, 'ok');
        }));
        return sel;
      },
    ],
    ['State', (u) => (u.disabled ? badge('disabled') : u.must_change_password ? badge('must change password', 'expired') : badge('active'))],
    ['Created', (u) => fmtTimeEl(u.created_at), 'hide-narrow'],
    [
      '',
      (u) =>
        u.id === self.id
          ? []
          : [
              h('button', { type: 'button', class: 'small', onclick: act(() => patch(`/users/${u.id}`, { disabled: !u.disabled })) }, u.disabled ? 'Enable' : 'Disable'),
              h('button', { type: 'button', class: 'small danger', onclick: act(async () => {
                if (!(await confirmAction('Delete user', `Delete ${u.username}? Their tokens stop working.`))) return;
                await del(`/users/${u.id}`);
                toast(`${u.username} deleted`, 'ok');
              }) }, 'Delete'),
            ],
      'row-actions',
    ],
  ];
  const username = h('input', { name: 'username', required: true, maxlength: 64, autocomplete: 'off' });
  const newRole = h('select', { name: 'role' }, ROLES.map((r) => h('option', { value: r }, r)));
  newRole.value = 'viewer';
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', minlength: 10 });
  const err = errorBox();
  const form = h(
    'form',
    { class: 'stack', 'aria-label': 'Add user' },
    err,
    h('div', { class: 'form-grid' }, field('Username', username), field('Role', newRole), field('Password', password, 'empty: generate one')),
    h('div', null, h('button', { type: 'submit', class: 'primary' }, 'Add user')),
  );
  onSubmit(
    form,
    async () => {
      const body = { username: username.value.trim(), role: newRole.value };
      if (password.value) body.password = password.value;
      const u = await post('/users', body);
      await new Promise((resolve) => {
        const m = modal(`User ${u.username} added`, { onClose: resolve });
        m.body.append(
          h('p', null, `Role: ${u.role}. They must choose a new password at first sign-in.`),
          u.password && h('div', { class: 'secret-row' }, h('span', { class: 'k' }, 'Password'), h('code', { 'data-testid': 'new-user-password' }, u.password), copyButton(u.password)),
          u.password && h('p', { class: 'notice' }, 'The password is shown only this once.'),
        );
        const done = h('button', { type: 'button', class: 'primary', onclick: m.close }, 'Done');
        m.foot.append(done);
        done.focus();
      });
      await reload();
    },
    err,
  );
  clear(
    root,
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Users'), h('div', { class: 'sub' }, 'Owners manage users and see the audit log; admins manage projects, codes and keys; viewers only read.'))),
    h('section', { class: 'panel' }, h('h2', null, 'Add a user'), form),
    table(cols, data.items || [], 'No users.'),
  );
}
