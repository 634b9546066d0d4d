// Import (CSV / JSON Lines upload with a per-row rejection report) and export.
import { get, api, qs, apiUrl } from '../api.js';
import { h, field, errorBox, onSubmit, fmtNum, table, toast } from '../ui.js';
import { role } from '../app.js';
import { STATES } from './codes.js';

function contentTypeOf(name, text) {
  if (/\.csv$/i.test(name)) return 'text/csv';
  if (/\.(jsonl|ndjson|json)$/i.test(name)) return 'application/x-ndjson';
  return text.trimStart().startsWith('{') ? 'application/x-ndjson' : 'text/csv';
}

export async function transferTab(body, p) {
  if (role.canWrite()) body.append(importPanel(p));
  body.append(await exportPanel(p));
}

function importPanel(p) {
  const file = h('input', { type: 'file', name: 'file', accept: '.csv,.jsonl,.ndjson,.json,text/csv,application/x-ndjson' });
  const pasted = h('textarea', { name: 'pasted', rows: 5, spellcheck: 'false', placeholder: 'code,max_uses,metadata\nWELCOME-2025,1,"{""plan"":""pro""}"' });
  const err = errorBox();
  const report = h('div', { 'data-testid': 'import-report' });
  const form = h(
    'form',
    { class: 'stack', 'aria-label': 'Import codes' },
    h('p', { class: 'muted' }, 'CSV with a header row (code, and optionally expires_at, max_uses, metadata, disabled), or JSON Lines with one object per line. Rows that cannot be imported are listed below; the others are imported.'),
    err,
    field('File', file),
    field('…or paste rows', pasted),
    h('div', null, h('button', { type: 'submit', class: 'primary' }, 'Import')),
  );
  onSubmit(
    form,
    async () => {
      const f = file.files[0];
      const text = f ? null : pasted.value;
      if (!f && !text.trim()) throw new Error('Choose a file or paste some rows.');
      const type = f ? contentTypeOf(f.name, '') || f.type : contentTypeOf('', text);
      const payload = f || text;
      const r = await api('POST', `/projects/${p.id}/codes/import`, payload, { contentType: type });
      const rejected = r.rejected || [];
      report.replaceChildren(
        h('div', { class: rejected.length ? 'notice' : 'success-box', role: 'status' }, `Imported ${fmtNum(r.imported)} codes; ${fmtNum(rejected.length)} rows rejected.`),
        rejected.length
          ? table(
              [
                ['Line', (x) => x.line, 'num'],
                ['Code', (x) => h('code', null, x.code ?? '')],
                ['Reason', (x) => x.reason],
              ],
              rejected,
            )
          : null,
      );
      toast(`Imported ${fmtNum(r.imported)} codes`, 'ok');
      file.value = '';
    },
    err,
  );
  return h('section', { class: 'panel' }, h('h2', null, 'Import codes'), form, report);
}

async function exportPanel(p) {
  const format = h('select', { name: 'format' }, h('option', { value: 'csv' }, 'CSV'), h('option', { value: 'jsonl' }, 'JSON Lines'));
  const status = h('select', { name: 'status' }, h('option', { value: '' }, 'All states'), STATES.map((s) => h('option', { value: s }, s)));
  const batch = h('select', { name: 'batch_id' }, h('option', { value: '' }, 'All batches'));
  const search = h('input', { type: 'search', name: 'search', placeholder: 'Part of a code' });
  try {
    const b = await get(`/projects/${p.id}/batches`);
    for (const x of b.items || []) batch.append(h('option', { value: x.id }, `${x.name || x.id.slice(0, 8)} (${fmtNum(x.code_count)})`));
  } catch {
    /* exporting works without the batch list */
  }
  const link = h('a', { class: 'button primary', 'data-testid': 'export-link' }, 'Download');
  const update = () => {
    link.href = apiUrl(`/projects/${p.id}/codes/export${qs({ format: format.value, status: status.value, batch_id: batch.value, search: search.value.trim() })}`);
    link.download = `${p.name.replace(/[^\w.-]+/g, '_')}-codes.${format.value}`;
  };
  for (const el of [format, status, batch, search]) el.addEventListener('input', update);
  update();
  return h(
    'section',
    { class: 'panel' },
    h('h2', null, 'Export codes'),
    h('p', { class: 'muted' }, 'The file is streamed by the server, one row per code: exporting a million codes does not load them in the browser.'),
    h('div', { class: 'filters' }, field('Format', format), field('State', status), field('Batch', batch), h('div', { class: 'grow' }, field('Search', search)), link),
  );
}
