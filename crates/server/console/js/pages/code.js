// One code: its fields, metadata (editable), expiry and redemption log.
import { get, patch } from '../api.js';
import { h, clear, badge, fmtNum, fmtTimeEl, table, field, errorBox, onSubmit, toast, toLocalInput, fromLocalInput } from '../ui.js';
import { role, navigate, render as rerender } from '../app.js';
import { codeActions } from './codes.js';

export async function render(root, ctx) {
  const [pid, cid] = ctx.params;
  const [p, c] = await Promise.all([get(`/projects/${pid}`), get(`/projects/${pid}/codes/${cid}`)]);
  if (!ctx.isCurrent()) return;
  document.title = `${c.code} · CodeGate`;
  const state = c.state || (c.is_disabled ? 'disabled' : c.status ? 'used' : c.is_expired ? 'expired' : 'unused');
  const props = h(
    'dl',
    { class: 'props' },
    ['Code', h('code', null, c.code)],
    ['State', badge(state)],
    ['Uses', `${fmtNum(c.use_count ?? (c.status ? 1 : 0))} of ${fmtNum(c.max_uses ?? 1)}`],
    ['Expires', c.expires_at ? fmtTimeEl(c.expires_at) : 'never (or with the project)'],
    ['Last redeemed', c.verified_at ? [fmtTimeEl(c.verified_at), c.verified_by ? ` by ${c.verified_by}` : ''] : '—'],
    ['Batch', c.batch_id ? h('a', { href: `/projects/${pid}?batch_id=${c.batch_id}`, class: 'mono' }, c.batch_id) : '—'],
    ['Created', fmtTimeEl(c.created_at)],
    ['Id', h('span', { class: 'mono' }, c.id)],
  );
  // dl children must be dt/dd pairs.
  const pairs = [...props.childNodes];
  props.replaceChildren();
  for (let i = 0; i < pairs.length; i += 2) props.append(h('dt', null, pairs[i]), h('dd', null, pairs[i + 1]));

  const logs = c.verification_logs || [];
  const logCols = [
    ['When', (l) => fmtTimeEl(l.verified_at)],
    ['Action', (l) => l.action || 'verify'],
    ['Result', (l) => badge(l.result)],
    ['By', (l) => l.verified_by || '—'],
    ['Reason', (l) => l.reason || '—'],
    ['IP address', (l) => l.ip_address || '—'],
  ];

  clear(
    root,
    h(
      'div',
      { class: 'page-head' },
      h(
        'div',
        null,
        h('div', { class: 'crumbs' }, h('a', { href: '/projects' }, 'Projects'), ' / ', h('a', { href: `/projects/${pid}` }, p.name), ' / '),
        h('h1', { class: 'mono' }, c.code, ' ', badge(state)),
      ),
      h('div', { class: 'actions' }, codeActions(p, c, (action) => (action === 'delete' ? navigate(`/projects/${pid}`) : rerender()))),
    ),
    h(
      'div',
      { class: 'grid2' },
      h('section', { class: 'panel' }, h('h2', null, 'Details'), props),
      h('section', { class: 'panel' }, h('h2', null, 'Metadata'), role.canWrite() ? editForm(pid, c) : h('pre', null, JSON.stringify(c.metadata ?? null, null, 2))),
    ),
    h('section', { class: 'panel' }, h('h2', null, `Redemption log (${fmtNum(logs.length)})`), table(logCols, logs, 'Never redeemed.')),
  );
}

function editForm(pid, c) {
  const meta = h('textarea', { name: 'metadata', rows: 6, spellcheck: 'false' });
  meta.value = c.metadata == null ? '' : JSON.stringify(c.metadata, null, 2);
  const expires = h('input', { type: 'datetime-local', name: 'expires_at', value: toLocalInput(c.expires_at) });
  const err = errorBox();
  const form = h('form', { class: 'stack' }, err, field('Metadata (JSON)', meta, 'what this code unlocks'), field('Expires', expires, 'empty: no own expiry'), h('div', null, h('button', { type: 'submit', class: 'primary' }, 'Save')));
  onSubmit(
    form,
    async () => {
      let metadata = null;
      if (meta.value.trim()) {
        try {
          metadata = JSON.parse(meta.value);
        } catch (e) {
          throw new Error(`Metadata is not valid JSON: ${e.message}`);
        }
      }
      await patch(`/projects/${pid}/codes/${c.id}`, { metadata, expires_at: fromLocalInput(expires.value) });
      toast('Code saved', 'ok');
      rerender();
    },
    err,
  );
  return form;
}
