// The generate dialog: every option of the pattern, progress while a large
// run is written, then the new codes as a download (export by batch).
import { get, post, qs, apiUrl } from '../api.js';
import { h, field, errorBox, onSubmit, modal, fmtNum, fromLocalInput, append } from '../ui.js';

const DEFAULT_CHARSET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';

/** Resolves true when codes were generated. */
export function generateDialog(p) {
  return new Promise((resolve) => {
    let generated = false;
    const m = modal(`Generate codes for ${p.name}`, { onClose: () => resolve(generated), wide: true });
    const rules = p.rules || {};
    const num = (name, attrs) => h('input', { type: 'number', name, ...attrs });
    const count = num('count', { min: 1, max: 1000000, required: true, value: 100 });
    const length = num('length', { min: 1, max: 100, placeholder: String(rules.length || 12) });
    const prefix = h('input', { name: 'prefix', maxlength: 40, placeholder: rules.prefix || 'none' });
    const suffix = h('input', { name: 'suffix', maxlength: 40, placeholder: rules.suffix || 'none' });
    const group = num('group', { min: 0, max: 50, placeholder: rules.group ? String(rules.group) : 'none' });
    const charset = h('input', { name: 'charset', placeholder: rules.charset || DEFAULT_CHARSET, spellcheck: 'false' });
    const check = h('input', { type: 'checkbox', name: 'check_char', checked: !!rules.check_char });
    const maxUses = num('max_uses', { min: 1, placeholder: '1' });
    const expires = h('input', { type: 'datetime-local', name: 'expires_at' });
    const batchName = h('input', { name: 'batch_name', maxlength: 100, placeholder: 'e.g. Spring newsletter' });
    const metadata = h('textarea', { name: 'metadata', rows: 3, placeholder: '{"plan": "pro", "months": 12}', spellcheck: 'false' });
    const err = errorBox();
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Generate');
    const form = h(
      'form',
      { class: 'stack', 'aria-label': 'Generate codes' },
      err,
      h(
        'div',
        { class: 'form-grid' },
        field('How many', count, 'up to 1,000,000'),
        field('Batch name', batchName, 'optional'),
        field('Length', length, 'random characters'),
        field('Group every', group, 'adds dashes: XXXX-XXXX'),
        field('Prefix', prefix),
        field('Suffix', suffix),
        field('Max uses per code', maxUses),
        field('Expires', expires, 'optional, local time'),
      ),
      field('Characters', charset, 'empty: the project default'),
      field('Add a check character (catches typos without a lookup)', check),
      field('Metadata (JSON)', metadata, 'what the codes unlock; returned on verify'),
      h('div', { class: 'actions' }, submit),
    );
    const status = h('div', { class: 'stack hidden', role: 'status', 'aria-live': 'polite' });
    onSubmit(
      form,
      async () => {
        const body = { count: parseInt(count.value, 10) };
        const intOf = (el) => (el.value === '' ? undefined : parseInt(el.value, 10));
        if (intOf(length) !== undefined) body.length = intOf(length);
        if (intOf(group) !== undefined) body.group = intOf(group);
        if (intOf(maxUses) !== undefined) body.max_uses = intOf(maxUses);
        for (const [k, el] of [['prefix', prefix], ['suffix', suffix], ['charset', charset], ['batch_name', batchName]]) if (el.value) body[k] = el.value;
        if (check.checked !== !!rules.check_char) body.check_char = check.checked;
        const exp = fromLocalInput(expires.value);
        if (exp) body.expires_at = exp;
        if (metadata.value.trim()) {
          try {
            body.metadata = JSON.parse(metadata.value);
          } catch (e) {
            throw new Error(`Metadata is not valid JSON: ${e.message}`);
          }
        }
        const result = await runWithProgress(p, body, status, form);
        generated = true;
        showResult(p, result, status, m);
      },
      err,
    );
    append(m.body, [form, status]);
    count.focus();
    count.select();
  });
}

/** Posts the request; while it runs, the project's counters show progress. */
async function runWithProgress(p, body, status, form) {
  const bar = h('progress', { max: body.count, 'aria-label': 'Generation progress' });
  const text = h('div', null, `Generating ${fmtNum(body.count)} codes…`);
  status.replaceChildren(text, bar);
  status.classList.remove('hidden');
  let before = null;
  let polling = true;
  const poll = async () => {
    while (polling) {
      try {
        const st = await get(`/projects/${p.id}/statistics`);
        if (before === null) before = st.total_codes;
        const done = Math.max(0, Math.min(body.count, st.total_codes - before));
        if (polling && done) {
          bar.value = done;
          text.textContent = `Generating… ${fmtNum(done)} of ${fmtNum(body.count)} written`;
        }
      } catch {
        /* progress is best effort */
      }
      await new Promise((r) => setTimeout(r, 400));
    }
  };
  // Read the starting count before the request goes out.
  try {
    before = (await get(`/projects/${p.id}/statistics`)).total_codes;
  } catch {
    before = null;
  }
  form.classList.add('hidden');
  const progressLoop = body.count >= 5000 ? poll() : null;
  try {
    return await post(`/projects/${p.id}/codes/generate`, body);
  } catch (e) {
    form.classList.remove('hidden');
    status.classList.add('hidden');
    throw e;
  } finally {
    polling = false;
    await progressLoop;
  }
}

function showResult(p, result, status, m) {
  const href = (format) => apiUrl(`/projects/${p.id}/codes/export${qs({ format, batch_id: result.batch_id })}`);
  const preview = (result.codes || []).slice(0, 10);
  status.replaceChildren(
    h('div', { class: 'success-box', 'data-testid': 'generate-result' }, `Generated ${fmtNum(result.count)} codes (batch ${result.batch_id}).`),
    preview.length ? h('div', null, h('div', { class: 'muted' }, 'First codes:'), h('pre', null, preview.join('\n'))) : null,
    h(
      'div',
      { class: 'actions' },
      h('a', { class: 'button primary', href: href('csv'), download: `codes-${result.batch_id}.csv`, 'data-testid': 'download-csv' }, 'Download CSV'),
      h('a', { class: 'button', href: href('jsonl'), download: `codes-${result.batch_id}.jsonl` }, 'Download JSON Lines'),
      h('button', { type: 'button', onclick: m.close }, 'Done'),
    ),
  );
}
