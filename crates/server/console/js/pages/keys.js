// HMAC API keys of a project: the secret is shown once, with a Python snippet.
import { get, post, patch, del } from '../api.js';
import { h, field, errorBox, onSubmit, modal, confirmAction, badge, fmtTimeEl, table, toast, copyButton } from '../ui.js';

function pythonSnippet(p, key) {
  return [
    'from codegate_sdk import CodeGateClient',
    '',
    'client = CodeGateClient(',
    `    api_key="${key.api_key}",`,
    `    secret="${key.secret}",`,
    `    project_id="${p.id}",`,
    `    base_url="${location.origin}",`,
    ')',
    'result = client.verify_code("THE-CODE", verified_by="user-42")',
    'print(result["success"], result.get("error_code"), result.get("metadata"))',
  ].join('\n');
}

/** The secret, once: closing the dialog removes it from the page for good. */
function secretDialog(p, key, title) {
  return new Promise((resolve) => {
    const m = modal(title, { onClose: resolve, wide: true });
    const row = (label, value, testid) => h('div', { class: 'secret-row' }, h('span', { class: 'k' }, label), h('code', { 'data-testid': testid }, value), copyButton(value));
    const snippet = pythonSnippet(p, key);
    m.body.append(
      h('p', { class: 'notice' }, 'Copy the secret now: it is shown only this once. CodeGate keeps it encrypted and cannot show it again.'),
      row('API key', key.api_key, 'api-key'),
      row('Secret', key.secret, 'api-secret'),
      row('Project id', p.id, 'project-id'),
      h('div', { class: 'page-head' }, h('h3', null, 'Python (codegate-sdk)'), copyButton(snippet, 'Copy snippet')),
      h('pre', { 'data-testid': 'python-snippet' }, snippet),
    );
    const done = h('button', { type: 'button', class: 'primary', onclick: m.close }, 'I have saved the secret');
    m.foot.append(done);
    done.focus();
  });
}

export async function keysTab(body, p) {
  const slot = h('div');
  const load = async () => {
    const data = await get(`/projects/${p.id}/api-keys`);
    const act = (fn) => async () => {
      try {
        await fn();
        await load();
      } catch (err) {
        toast(err.message, 'bad');
      }
    };
    const active = (k) => k.is_active ?? k.enabled ?? true;
    const cols = [
      ['Name', (k) => k.name || h('span', { class: 'muted' }, '(unnamed)')],
      ['API key', (k) => h('code', null, k.api_key)],
      ['Status', (k) => (active(k) ? badge('active') : badge('disabled'))],
      ['Last used', (k) => fmtTimeEl(k.last_used_at)],
      ['Created', (k) => fmtTimeEl(k.created_at), 'hide-narrow'],
      [
        '',
        (k) => [
          h('button', { type: 'button', class: 'small', onclick: act(() => patch(`/projects/${p.id}/api-keys/${k.id}`, { enabled: !active(k) })) }, active(k) ? 'Disable' : 'Enable'),
          h(
            'button',
            {
              type: 'button',
              class: 'small',
              onclick: act(async () => {
                const ok = await confirmAction('Rotate secret', `Issue a new secret for “${k.name || k.api_key}”? The old secret keeps working for 24 hours, then stops.`, { confirmLabel: 'Rotate', danger: false });
                if (!ok) return;
                const fresh = await post(`/projects/${p.id}/api-keys/${k.id}/rotate`, { grace_seconds: 86400 });
                await secretDialog(p, fresh, 'New secret');
              }),
            },
            'Rotate',
          ),
          h(
            'button',
            {
              type: 'button',
              class: 'small danger',
              onclick: act(async () => {
                if (!(await confirmAction('Delete API key', `Delete “${k.name || k.api_key}”? Backends using it are refused at once.`))) return;
                await del(`/projects/${p.id}/api-keys/${k.id}`);
                toast('API key deleted', 'ok');
              }),
            },
            'Delete',
          ),
        ],
        'row-actions',
      ],
    ];
    slot.replaceChildren(table(cols, data.items || [], 'No API keys yet.'));
  };
  const name = h('input', { name: 'name', maxlength: 100, placeholder: 'e.g. checkout backend' });
  const err = errorBox();
  const form = h('form', { class: 'filters', 'aria-label': 'Create API key' }, h('div', { class: 'grow' }, field('Name', name)), h('button', { type: 'submit', class: 'primary' }, 'Create API key'));
  onSubmit(
    form,
    async () => {
      const key = await post(`/projects/${p.id}/api-keys`, name.value.trim() ? { name: name.value.trim() } : {});
      name.value = '';
      await load();
      await secretDialog(p, key, 'API key created');
    },
    err,
  );
  body.append(
    h('section', { class: 'panel' }, h('h2', null, 'API keys'), h('p', { class: 'muted' }, 'Backends sign their verify calls with a key and its secret. A key works for this project only.'), err, form, slot),
  );
  await load();
}
