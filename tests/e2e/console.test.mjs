// The admin console in a real browser against the real server. The tests run
// in order and share one server: each builds on what the previous one made
// (the project, its 10,000 codes), as a person working through the console would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash, createHmac } from 'node:crypto';
import { startServer } from './server.mjs';
import { openBrowser, screenshot } from './browser.mjs';

const NEW_PASSWORD = 'a much better passphrase 42';
let server;
let browser;
let page;
const state = {};

before(async () => {
  server = await startServer();
  browser = await openBrowser();
  page = browser.page;
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const go = (path) => page.goto(`${server.base}${path}`);
const readDownload = async (download) => readFileSync(await download.path(), 'utf8');

async function codeRow(code) {
  return page.locator('[data-testid=codes] tbody tr', { has: page.getByRole('link', { name: code, exact: true }) });
}

test('the console is served with a strict CSP and falls back to index.html', async () => {
  const root = await fetch(`${server.base}/`);
  assert.equal(root.status, 200);
  assert.match(root.headers.get('content-type'), /^text\/html/);
  assert.match(root.headers.get('content-security-policy'), /^default-src 'self'/);
  const deep = await fetch(`${server.base}/projects/0123456789abcdef0123456789abcdef`);
  assert.equal(deep.status, 200);
  assert.equal(await deep.text(), await root.text());
  const js = await fetch(`${server.base}/assets/js/app.js`);
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  const api404 = await fetch(`${server.base}/api/v1/no-such-route`);
  assert.equal(api404.status, 404);
  assert.match(api404.headers.get('content-type'), /problem\+json/);
});

test('login, then the forced first password change', async () => {
  await go('/');
  await page.getByLabel('Username').fill(server.admin.username);
  await page.getByLabel('Password').fill('wrong password');
  await page.keyboard.press('Enter');
  await page.getByRole('alert').filter({ hasText: /./ }).waitFor();
  await screenshot(page, 'login');

  await page.getByLabel('Password').fill(server.admin.password);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
  await page.getByLabel(/^New password/).fill(NEW_PASSWORD);
  await page.getByLabel('Repeat the new password', { exact: true }).fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Save and continue' }).click();
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  assert.equal(await page.getByTestId('whoami').textContent(), server.admin.username);

  // The old password is gone, the new one works.
  const login = (password) =>
    fetch(`${server.base}/api/v1/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: server.admin.username, password }) });
  assert.equal((await login(server.admin.password)).status, 401);
  const ok = await login(NEW_PASSWORD);
  assert.equal(ok.status, 200);
  assert.equal((await ok.json()).user.must_change_password, false);

  // A reload keeps the session.
  await page.reload();
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
});

test('create a project', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Projects' }).click();
  await page.getByRole('button', { name: 'New project' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Name').fill('Spring promo');
  await dialog.getByLabel('Description').fill('Gift codes for the spring newsletter');
  await dialog.getByLabel('Name').press('Enter');
  await page.getByRole('heading', { name: /Spring promo/ }).waitFor();
  state.pid = page.url().match(/projects\/([0-9a-f]{32})/)[1];
  const p = await server.api('GET', `/projects/${state.pid}`);
  assert.equal(p.status, 200);
  assert.equal(p.body.description, 'Gift codes for the spring newsletter');
  await go('/projects');
  await page.getByRole('link', { name: 'Spring promo' }).waitFor();
  await screenshot(page, 'projects');
});

test('generate 10,000 codes and download them by batch', async () => {
  await go(`/projects/${state.pid}`);
  await page.getByRole('button', { name: 'Generate codes' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('How many').fill('10000');
  await dialog.getByLabel('Batch name').fill('newsletter');
  await dialog.getByLabel('Group every').fill('4');
  await dialog.getByLabel('Metadata (JSON)').fill('{"plan": "pro", "months": 12}');
  await screenshot(page, 'generate');
  await dialog.getByRole('button', { name: 'Generate' }).click();
  await dialog.getByTestId('generate-result').filter({ hasText: 'Generated 10,000 codes' }).waitFor({ timeout: 60000 });

  const [download] = await Promise.all([page.waitForEvent('download'), dialog.getByTestId('download-csv').click()]);
  const lines = (await readDownload(download)).trim().split(/\r?\n/);
  assert.equal(lines.length, 10001, 'a header and 10,000 rows');
  assert.ok(lines[0].startsWith('id,code,state'), lines[0]);
  const codes = new Set(lines.slice(1).map((l) => l.split(',')[1]));
  assert.equal(codes.size, 10000, 'distinct codes');
  for (const c of codes) assert.match(c, /^[A-Z0-9]{4}(-[A-Z0-9]{4})+$/);

  await dialog.getByRole('button', { name: 'Done' }).click();
  await page.getByTestId('pager-info').filter({ hasText: '10,000 codes' }).waitFor();
  const stats = await server.api('GET', `/projects/${state.pid}/statistics`);
  assert.equal(stats.body.total_codes, 10000);
});

test('filter by state and search', async () => {
  const list = await server.api('GET', `/projects/${state.pid}/codes?page_size=3`);
  assert.equal(list.status, 200);
  const [a, b] = list.body.items;
  state.codeA = a;
  state.codeB = b;
  // Redeem one through the API, so the "used" filter has exactly one row.
  const v = await server.api('POST', `/projects/${state.pid}/codes/verify`, { code: a.code, verified_by: 'user-42' });
  assert.equal(v.body.success, true);

  await go(`/projects/${state.pid}`);
  await page.getByTestId('pager-info').filter({ hasText: '10,000 codes' }).waitFor();
  await page.getByLabel('State').selectOption('used');
  await page.getByTestId('pager-info').filter({ hasText: '· 1 codes' }).waitFor();
  await (await codeRow(a.code)).waitFor();
  await page.getByLabel('State').selectOption('unused');
  await page.getByTestId('pager-info').filter({ hasText: '9,999 codes' }).waitFor();
  assert.match(page.url(), /status=unused/);

  await page.getByLabel('State').selectOption('');
  await page.getByLabel('Search').fill(b.code.slice(0, 9));
  await page.getByLabel('Search').press('Enter');
  // b is on the unfiltered first page too: wait for the narrowed answer.
  await page.getByTestId('pager-info').filter({ hasText: /Page 1 of 1 ·/ }).waitFor();
  await (await codeRow(b.code)).waitFor();
  const rows = await page.locator('[data-testid=codes] tbody tr').count();
  assert.ok(rows >= 1 && rows < 20, `search narrows the table (${rows} rows)`);

  // Paging: the last page is reachable without loading everything.
  await page.getByLabel('Search').fill('');
  await page.getByLabel('Search').press('Enter');
  await page.getByTestId('pager-info').filter({ hasText: 'Page 1 of 500' }).waitFor();
  await page.getByRole('button', { name: 'Last' }).click();
  await page.getByTestId('pager-info').filter({ hasText: 'Page 500 of 500' }).waitFor();
  await page.getByRole('button', { name: 'First' }).click();
  await page.getByTestId('pager-info').filter({ hasText: 'Page 1 of 500' }).waitFor();
  await screenshot(page, 'project');
});

test('disable and reactivate a code', async () => {
  const { codeA, codeB } = state;
  await go(`/projects/${state.pid}?search=${encodeURIComponent(codeA.code)}`);
  let row = await codeRow(codeA.code);
  await row.getByText('used', { exact: true }).waitFor();
  await row.getByRole('button', { name: 'Reactivate' }).click();
  row = await codeRow(codeA.code);
  await row.getByText('unused', { exact: true }).waitFor();
  let c = await server.api('GET', `/projects/${state.pid}/codes/${codeA.id}`);
  assert.equal(c.body.status, false, 'reactivated: unused again');

  await go(`/projects/${state.pid}?search=${encodeURIComponent(codeB.code)}`);
  row = await codeRow(codeB.code);
  await row.getByRole('button', { name: 'Disable' }).click();
  await (await codeRow(codeB.code)).getByText('disabled', { exact: true }).waitFor();
  c = await server.api('GET', `/projects/${state.pid}/codes/${codeB.id}`);
  assert.equal(c.body.is_disabled, true);

  // The code page shows the redemption log: the redemption and the reactivation.
  await go(`/projects/${state.pid}/codes/${codeA.id}`);
  await page.getByRole('heading', { name: /Redemption log \(2\)/ }).waitFor();
  await page.getByRole('cell', { name: 'user-42' }).waitFor();
  await page.getByText('reactivated', { exact: true }).first().waitFor();
  assert.deepEqual(JSON.parse(await page.getByLabel(/Metadata/).inputValue()), { plan: 'pro', months: 12 });
  await screenshot(page, 'code');
});

test('bulk disable by filter', async () => {
  // Search ignores dashes, so a plain 'BULK-' also matches any of the 10,000 random codes that
  // hold B-U-L-K in a row (about one run in twelve). '1' is outside the default charset, so
  // 'BULK1' can only match these five.
  const gen = await server.api('POST', `/projects/${state.pid}/codes/generate`, { count: 5, prefix: 'BULK1-', batch_name: 'bulk' });
  assert.equal(gen.status, 201);
  await go(`/projects/${state.pid}?search=BULK1-`);
  await page.getByTestId('pager-info').filter({ hasText: '· 5 codes' }).waitFor();
  await page.getByRole('button', { name: 'Disable all matching' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByText('Disable all 5 codes').waitFor();
  await dialog.getByRole('button', { name: 'Disable them' }).click();
  await page.getByText('5 codes disabled').waitFor();
  const disabled = await server.api('GET', `/projects/${state.pid}/codes?status=disabled&search=BULK1-`);
  assert.equal(disabled.body.total, 5);
  const others = await server.api('GET', `/projects/${state.pid}/codes?status=disabled`);
  assert.equal(others.body.total, 6, 'only the matching codes (plus the one disabled before)');
});

test('export download and import with a rejection report', async () => {
  await go(`/projects/${state.pid}/transfer`);
  const exportPanel = page.locator('section', { has: page.getByRole('heading', { name: 'Export codes' }) });
  await exportPanel.getByLabel('State').selectOption('disabled');
  await exportPanel.getByLabel('Search').fill(state.codeB.code);
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-link').click()]);
  const lines = (await readDownload(download)).trim().split(/\r?\n/);
  assert.equal(lines.length, 2, lines.join('\n'));
  assert.ok(lines[1].includes(state.codeB.code) && lines[1].includes('disabled'), lines[1]);

  const importPanel = page.locator('section', { has: page.getByRole('heading', { name: 'Import codes' }) });
  await importPanel.getByLabel('…or paste rows').fill(`code,max_uses\nIMPORTED-ONE,1\nIMPORTED-TWO,3\n${state.codeA.code},1\n`);
  await importPanel.getByRole('button', { name: 'Import' }).click();
  const report = page.getByTestId('import-report');
  await report.getByText('Imported 2 codes; 1 rows rejected.').waitFor();
  await report.getByRole('cell', { name: state.codeA.code }).waitFor();
  const two = await server.api('GET', `/projects/${state.pid}/codes/by-code/IMPORTED-TWO`);
  assert.equal(two.body.max_uses, 3);
  await screenshot(page, 'import-export');
});

function sign(method, path, body, secret, ts) {
  const bodyHash = createHash('sha256').update(body).digest('hex');
  return createHmac('sha256', secret).update([method, path, '', bodyHash, ts].join('\n')).digest('hex');
}

test('an API key secret is shown once, with a working Python snippet', async () => {
  await go(`/projects/${state.pid}/keys`);
  await page.getByLabel('Name').fill('checkout backend');
  await page.getByLabel('Name').press('Enter');
  const dialog = page.getByRole('dialog');
  const secret = (await dialog.getByTestId('api-secret').textContent()).trim();
  const apiKey = (await dialog.getByTestId('api-key').textContent()).trim();
  assert.match(secret, /^[0-9a-f]{64}$/);
  const snippet = await dialog.getByTestId('python-snippet').textContent();
  assert.ok(snippet.includes('from codegate_sdk import CodeGateClient'));
  assert.ok(snippet.includes(`secret="${secret}"`) && snippet.includes(`project_id="${state.pid}"`));
  await screenshot(page, 'api-key-created');

  // The secret really signs requests.
  const path = `/api/v1/projects/${state.pid}`;
  const ts = String(Math.floor(Date.now() / 1000));
  const signed = await fetch(`${server.base}${path}`, { headers: { 'X-API-Key': apiKey, 'X-Timestamp': ts, 'X-Signature': sign('GET', path, '', secret, ts) } });
  assert.equal(signed.status, 200);

  await dialog.getByRole('button', { name: 'I have saved the secret' }).click();
  // The <dialog> element itself must be gone (a role locator stops matching
  // a closed dialog while it may still be in the DOM).
  await page.waitForFunction(() => !document.querySelector('dialog'));
  await page.getByRole('cell', { name: 'checkout backend' }).waitFor();
  assert.ok(!(await page.content()).includes(secret), 'gone after closing the dialog');
  await screenshot(page, 'api-keys');
  await page.reload();
  await page.getByRole('cell', { name: 'checkout backend' }).waitFor();
  assert.ok(!(await page.content()).includes(secret), 'gone after a reload');

  // Disabling the key stops it.
  const row = page.locator('tr', { has: page.getByRole('cell', { name: 'checkout backend' }) });
  await row.getByRole('button', { name: 'Disable' }).click();
  await row.getByText('disabled', { exact: true }).waitFor();
  const ts2 = String(Math.floor(Date.now() / 1000));
  const refused = await fetch(`${server.base}${path}`, { headers: { 'X-API-Key': apiKey, 'X-Timestamp': ts2, 'X-Signature': sign('GET', path, '', secret, ts2) } });
  assert.equal(refused.status, 401);
});

test('verify a code by hand', async () => {
  await go('/verify');
  await page.getByLabel('Code', { exact: true }).fill(state.codeA.code.toLowerCase());
  await page.getByLabel('Code', { exact: true }).press('Enter'); // Enter looks up, never redeems
  await page.getByTestId('verify-result').getByText('unused', { exact: true }).waitFor();
  await page.getByLabel('Redeemed by').fill('support desk');
  await page.getByRole('button', { name: 'Redeem now' }).click();
  await page.getByTestId('verify-result').getByText(`Redeemed ${state.codeA.code}.`).waitFor();
  await page.getByTestId('verify-result').getByText('"months": 12').waitFor();
  await page.getByRole('button', { name: 'Redeem now' }).click();
  await page.getByTestId('verify-result').getByText(/CODE_ALREADY_USED/).waitFor();
  await screenshot(page, 'verify');
});

test('personal access tokens: created once, then usable', async () => {
  await go('/tokens');
  await page.getByLabel('Name', { exact: true }).fill('ci');
  await page.getByRole('button', { name: 'Create token' }).click();
  const token = (await page.getByRole('dialog').getByTestId('new-token').textContent()).trim();
  assert.match(token, /^cgp_/);
  const res = await fetch(`${server.base}/api/v1/projects`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  await page.getByRole('dialog').getByRole('button', { name: 'Done' }).click();
  await page.waitForFunction(() => !document.querySelector('dialog'));
  await page.getByRole('cell', { name: 'ci', exact: true }).waitFor();
  assert.ok(!(await page.content()).includes(token));
  await screenshot(page, 'tokens');
});

test('the dashboard shows totals, the chart and newest redemptions', async () => {
  await go('/');
  await page.getByTestId('stat-total').getByText('10,007').waitFor();
  const bars = page.locator('[data-testid=redemption-chart] rect.bar');
  assert.equal(await bars.count(), 30);
  const today = Number(await bars.last().getAttribute('data-count'));
  assert.ok(today >= 2, `today's bar counts the redemptions (${today})`);
  await page.getByRole('cell', { name: 'support desk' }).waitFor();
  await screenshot(page, 'dashboard');
});

test('a viewer sees no write actions', async () => {
  const created = await server.api('POST', '/users', { username: 'vera', role: 'viewer', password: 'first password 123' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const viewer = await openBrowser();
  try {
    const v = viewer.page;
    await v.goto(`${server.base}/`);
    await v.getByLabel('Username').fill('vera');
    await v.getByLabel('Password').fill('first password 123');
    await v.getByLabel('Password').press('Enter');
    await v.getByLabel(/^New password/).fill('vera has her own now');
    await v.getByLabel('Repeat the new password', { exact: true }).fill('vera has her own now');
    await v.getByLabel('Repeat the new password', { exact: true }).press('Enter');
    await v.getByRole('heading', { name: 'Dashboard' }).waitFor();

    await v.goto(`${server.base}/projects`);
    await v.getByRole('link', { name: 'Spring promo' }).waitFor();
    assert.equal(await v.getByRole('button', { name: 'New project' }).count(), 0);
    assert.equal(await v.getByRole('button', { name: /Delete|Disable|Edit/ }).count(), 0);

    await v.goto(`${server.base}/projects/${state.pid}`);
    await v.getByTestId('pager-info').filter({ hasText: 'codes' }).waitFor();
    assert.equal(await v.getByRole('button', { name: /Generate|Disable|Reactivate|Delete|Edit|Enable/ }).count(), 0);
    assert.equal(await v.getByRole('link', { name: 'API keys' }).count(), 0);
    assert.equal(await v.getByRole('link', { name: 'Users' }).count(), 0);
    assert.equal(await v.getByRole('link', { name: 'Audit log' }).count(), 0);
    await screenshot(v, 'viewer-project');

    await v.goto(`${server.base}/verify`);
    await v.getByRole('button', { name: 'Look up' }).waitFor();
    assert.equal(await v.getByRole('button', { name: 'Redeem now' }).count(), 0);
    assert.deepEqual(viewer.problems, []);
  } finally {
    await viewer.close();
  }
});

test('users and roles', async () => {
  await go('/users');
  await page.getByRole('cell', { name: 'vera' }).waitFor();
  const form = page.getByRole('form', { name: 'Add user' });
  await form.getByLabel('Username').fill('adam');
  await form.getByLabel('Role').selectOption('admin');
  await form.getByRole('button', { name: 'Add user' }).click();
  const password = (await page.getByRole('dialog').getByTestId('new-user-password').textContent()).trim();
  assert.ok(password.length >= 10);
  await page.getByRole('dialog').getByRole('button', { name: 'Done' }).click();
  await page.getByRole('cell', { name: 'adam' }).waitFor();
  await page.getByLabel('Role of vera').selectOption('admin');
  await page.getByText('vera is now admin').waitFor();
  const users = await server.api('GET', '/users');
  assert.equal(users.body.items.find((u) => u.username === 'vera').role, 'admin');
  assert.equal(users.body.items.find((u) => u.username === 'adam').role, 'admin');
  await screenshot(page, 'users');
});

test('the audit log shows the actions', async () => {
  await go('/audit');
  const log = page.getByTestId('audit');
  await log.getByText('project.create').first().waitFor();
  await log.getByText('codes.generate').first().waitFor();
  await log.getByText('api_key.create').first().waitFor();
  await screenshot(page, 'audit');
  await page.getByLabel('Action').fill('project.create');
  await page.getByLabel('Action').press('Enter');
  await page.getByTestId('pager-info').filter({ hasText: '· 1 entries' }).waitFor();
  await log.getByRole('link', { name: 'Spring promo' }).waitFor();
});

test('the layout works on a phone', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await go(`/projects/${state.pid}`);
  await page.getByTestId('pager-info').waitFor();
  assert.equal(await page.getByRole('navigation', { name: 'Main' }).isVisible(), false, 'menu folded');
  await page.getByRole('button', { name: 'Menu' }).click();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Projects' }).waitFor();
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `no sideways scrolling of the page (${width}px)`);
  await page.getByRole('button', { name: 'Menu' }).click();
  await screenshot(page, 'phone-project');
  await page.setViewportSize({ width: 1366, height: 860 });
});

test('no script errors or CSP violations in the whole session', () => {
  assert.deepEqual(browser.problems, []);
});
