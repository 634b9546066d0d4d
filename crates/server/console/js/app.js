// The console shell: who is logged in, the navigation, and a small
// history-API router that maps paths to page modules.
import { get, post, setCsrf, onAuthProblem } from './api.js';
import { h, clear, pageError } from './ui.js';
import * as login from './pages/login.js';
import * as dashboard from './pages/dashboard.js';
import * as projects from './pages/projects.js';
import * as project from './pages/project.js';
import * as code from './pages/code.js';
import * as tokens from './pages/tokens.js';
import * as users from './pages/users.js';
import * as audit from './pages/audit.js';
import * as verify from './pages/verify.js';

const routes = [
  [/^\/$/, dashboard, 'dashboard'],
  [/^\/projects$/, projects, 'projects'],
  [/^\/projects\/([0-9a-f]{32})\/codes\/([0-9a-f]{32})$/, code, 'projects'],
  [/^\/projects\/([0-9a-f]{32})(?:\/(codes|keys|transfer|batches|redemptions|settings))?$/, project, 'projects'],
  [/^\/verify$/, verify, 'verify'],
  [/^\/tokens$/, tokens, 'tokens'],
  [/^\/users$/, users, 'users'],
  [/^\/audit$/, audit, 'audit'],
];

const session = { me: null };

export const role = {
  canWrite: () => ['owner', 'admin'].includes(session.me?.role),
  isOwner: () => session.me?.role === 'owner',
  me: () => session.me,
};

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

/** Updates the query string without re-rendering (filters, paging). */
export function setQuery(params) {
  const url = new URL(location.href);
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '' || (k === 'page' && v === 1)) url.searchParams.delete(k);
    else url.searchParams.set(k, String(v));
  }
  history.replaceState(null, '', url.pathname + url.search);
}

async function loadSession() {
  try {
    const me = await get('/auth/me', { quiet: true });
    session.me = me;
    setCsrf(me.csrf_token);
  } catch (err) {
    // No session (401), or one that cannot even read itself: sign in again.
    if (err.status !== 401 && err.code !== 'PASSWORD_CHANGE_REQUIRED') throw err;
    session.me = null;
    setCsrf(null);
  }
}

export async function afterLogin(me, csrf) {
  session.me = me;
  setCsrf(csrf);
  // Back to where the person was going: ?next=, or the page they opened.
  const next = new URLSearchParams(location.search).get('next');
  const here = location.pathname === '/login' ? '/' : location.pathname + location.search;
  const target = next && next.startsWith('/') && !next.startsWith('//') ? next : here;
  navigate(target, { replace: true });
}

async function logout() {
  try {
    await post('/auth/logout');
  } finally {
    session.me = null;
    setCsrf(null);
    navigate('/login', { replace: true });
  }
}

function navLink(href, label, key, current) {
  return h('a', { href, 'aria-current': key === current ? 'page' : null }, label);
}

function shell(current) {
  const me = session.me;
  const nav = h(
    'nav',
    { class: 'nav', 'aria-label': 'Main' },
    navLink('/', 'Dashboard', 'dashboard', current),
    navLink('/projects', 'Projects', 'projects', current),
    navLink('/verify', 'Verify a code', 'verify', current),
    navLink('/tokens', 'Access tokens', 'tokens', current),
    role.isOwner() && navLink('/users', 'Users', 'users', current),
    role.isOwner() && navLink('/audit', 'Audit log', 'audit', current),
  );
  const sidebar = h(
    'aside',
    { class: 'sidebar', id: 'sidebar' },
    h('a', { class: 'brand', href: '/' }, h('img', { src: '/assets/favicon.svg', alt: '' }), 'CodeGate'),
    nav,
    h(
      'div',
      { class: 'who' },
      h('div', { class: 'name', 'data-testid': 'whoami' }, me.username),
      h('div', null, `Role: ${me.role}`),
      h('button', { type: 'button', class: 'small', onclick: logout }, 'Log out'),
    ),
  );
  const menu = h('button', { type: 'button', class: 'small', 'aria-controls': 'sidebar', 'aria-expanded': 'false' }, 'Menu');
  menu.addEventListener('click', () => {
    const open = sidebar.classList.toggle('open');
    menu.setAttribute('aria-expanded', String(open));
  });
  const topbar = h('header', { class: 'topbar' }, h('a', { class: 'brand', href: '/' }, h('img', { src: '/assets/favicon.svg', alt: '' }), 'CodeGate'), menu);
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  clear(document.getElementById('app'), topbar, sidebar, main);
  return main;
}

let renderSeq = 0;
export async function render() {
  const seq = ++renderSeq;
  const path = location.pathname.replace(/\/+$/, '') || '/';
  const app = document.getElementById('app');
  if (!session.me || path === '/login') {
    if (session.me && !session.me.must_change_password) return navigate('/', { replace: true });
    const root = h('div', { class: 'login-wrap' });
    clear(app, root);
    document.title = 'Sign in · CodeGate';
    return login.render(root, { me: session.me });
  }
  if (session.me.must_change_password) return navigate('/login', { replace: true });
  const match = routes.map(([re, mod, key]) => [path.match(re), mod, key]).find(([m]) => m);
  if (!match) {
    const main = shell('');
    return clear(main, h('h1', null, 'Page not found'), h('p', null, h('a', { href: '/' }, 'Back to the dashboard')));
  }
  const [m, mod, key] = match;
  const main = shell(key);
  main.append(h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  try {
    await mod.render(main, { params: m.slice(1), query: new URLSearchParams(location.search), isCurrent: () => seq === renderSeq });
    // Keyboard users start on the new page, unless the page focused a field.
    if (seq === renderSeq && document.activeElement === document.body) main.focus({ preventScroll: true });
  } catch (err) {
    if (seq === renderSeq) pageError(main, err);
  }
}

// Same-origin links navigate inside the console; downloads and the API do not.
document.addEventListener('click', (ev) => {
  const a = ev.target.closest && ev.target.closest('a[href]');
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  if (a.hasAttribute('download') || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/assets/')) return;
  ev.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', render);

onAuthProblem('unauthorized', () => {
  if (!session.me) return;
  session.me = null;
  setCsrf(null);
  const next = location.pathname + location.search;
  navigate(`/login?next=${encodeURIComponent(next)}`, { replace: true });
});
onAuthProblem('passwordRequired', () => {
  if (session.me) session.me.must_change_password = true;
  navigate('/login', { replace: true });
});

loadSession().then(render, (err) => pageError(document.getElementById('main') || document.getElementById('app'), err));
