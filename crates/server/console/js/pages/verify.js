// Check or redeem a code by hand (a support desk tool).
import { get, post } from '../api.js';
import { h, clear, field, errorBox, onSubmit, badge, fmtTimeEl } from '../ui.js';
import { role } from '../app.js';

export async function render(root, ctx) {
  document.title = 'Verify a code · CodeGate';
  const projects = await get('/projects');
  if (!ctx.isCurrent()) return;
  const write = role.canWrite();
  const project = h('select', { name: 'project', required: true }, projects.items.map((p) => h('option', { value: p.id }, p.name)));
  if (ctx.query.get('project')) project.value = ctx.query.get('project');
  const code = h('input', { name: 'code', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'ABCD-EFGH-JKLM' });
  const by = h('input', { name: 'verified_by', value: role.me().username, maxlength: 255 });
  const err = errorBox();
  const out = h('div', { role: 'status', 'aria-live': 'polite', 'data-testid': 'verify-result' });
  let mode = 'lookup';
  const lookupBtn = h('button', { type: 'submit', onclick: () => (mode = 'lookup') }, 'Look up');
  const redeemBtn = write && h('button', { type: 'submit', class: 'primary', onclick: () => (mode = 'redeem') }, 'Redeem now');
  const form = h(
    'form',
    { class: 'stack', 'aria-label': 'Verify a code' },
    err,
    h('div', { class: 'form-grid' }, field('Project', project), field('Code', code), write && field('Redeemed by', by)),
    h('p', { class: 'muted' }, write ? 'Look up shows the state without changing it. Redeem uses the code once, exactly as a backend would.' : 'Look up shows the state of a code.'),
    h('div', { class: 'actions' }, lookupBtn, write && redeemBtn),
  );
  onSubmit(
    form,
    async () => {
      const pid = project.value;
      const value = code.value.trim();
      if (mode === 'redeem') {
        const r = await post(`/projects/${pid}/codes/verify`, { code: value, verified_by: by.value.trim() || undefined });
        out.replaceChildren(
          h(
            'div',
            { class: `verify-result ${r.success ? 'success-box' : 'error'}` },
            r.success ? `Redeemed ${r.code}.` : `Not redeemed: ${r.error_code} — ${r.message || ''}`,
          ),
          r.success && r.metadata != null ? h('div', null, h('h3', null, 'Metadata'), h('pre', null, JSON.stringify(r.metadata, null, 2))) : null,
        );
      } else {
        try {
          const c = await get(`/projects/${pid}/codes/by-code/${encodeURIComponent(value)}`);
          const state = c.state || (c.is_disabled ? 'disabled' : c.status ? 'used' : c.is_expired ? 'expired' : 'unused');
          out.replaceChildren(
            h(
              'div',
              { class: 'panel' },
              h('h2', null, h('a', { href: `/projects/${pid}/codes/${c.id}`, class: 'mono' }, c.code), ' ', badge(state)),
              h('p', null, 'Last redeemed: ', fmtTimeEl(c.verified_at), c.verified_by ? ` by ${c.verified_by}` : ''),
              c.metadata != null ? h('pre', null, JSON.stringify(c.metadata, null, 2)) : null,
            ),
          );
        } catch (e) {
          if (e.status !== 404) throw e;
          out.replaceChildren(h('div', { class: 'verify-result error' }, `No code “${value}” in this project.`));
        }
      }
    },
    err,
  );
  clear(
    root,
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Verify a code'), h('div', { class: 'sub' }, 'Check a code someone reads out to you, or redeem it on their behalf.'))),
    projects.items.length ? h('section', { class: 'panel' }, form) : h('p', { class: 'notice' }, 'Create a project first.'),
    out,
  );
  code.focus();
}
