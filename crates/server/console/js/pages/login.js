// Sign in, then the forced first password change.
import { post, get, setCsrf } from '../api.js';
import { h, clear, field, errorBox, onSubmit } from '../ui.js';
import { afterLogin } from '../app.js';

const brand = () => h('div', { class: 'brand' }, h('img', { src: '/assets/favicon.svg', alt: '' }), 'CodeGate');

export function render(root, { me }) {
  if (me && me.must_change_password) return changePassword(root, null);
  const username = h('input', { name: 'username', autocomplete: 'username', required: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const err = errorBox();
  const form = h(
    'form',
    { class: 'stack', 'aria-label': 'Sign in' },
    h('h1', null, 'Sign in'),
    err,
    field('Username', username),
    field('Password', password),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
  );
  onSubmit(
    form,
    async () => {
      const answer = await post('/auth/login', { username: username.value.trim(), password: password.value }, { quiet: true });
      if (answer.user.must_change_password) return changePassword(root, password.value, answer);
      await afterLogin(answer.user, answer.csrf_token);
    },
    err,
  );
  clear(root, h('div', { class: 'login panel' }, brand(), form));
  username.focus();
}

/** `current` is the password just typed at sign-in (so it is not asked twice). */
function changePassword(root, current, login) {
  const currentInput = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 10, name: 'new_password' });
  const again = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 10, name: 'confirm_password' });
  const err = errorBox();
  const form = h(
    'form',
    { class: 'stack', 'aria-label': 'Choose a new password' },
    h('h1', null, 'Choose a new password'),
    h('p', { class: 'notice' }, 'This is your first sign-in: replace the generated password before you continue.'),
    err,
    current === null && field('Current password', currentInput),
    field('New password', next, 'at least 10 characters'),
    field('Repeat the new password', again),
    h('button', { type: 'submit', class: 'primary' }, 'Save and continue'),
  );
  onSubmit(
    form,
    async () => {
      if (next.value !== again.value) throw new Error('The two new passwords differ.');
      if (next.value.length < 10) throw new Error('The new password needs at least 10 characters.');
      // The session exists already; its CSRF token guards this call.
      if (login) setCsrf(login.csrf_token);
      await post('/auth/password', { current_password: current ?? currentInput.value, new_password: next.value });
      const me = await get('/auth/me');
      await afterLogin(me, me.csrf_token);
    },
    err,
  );
  clear(root, h('div', { class: 'login panel' }, brand(), form));
  (current === null ? currentInput : next).focus();
}
