// Small DOM helpers. Pages build elements with h() and set text with
// textContent only, so nothing from the API is ever parsed as HTML.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  applyAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null && v !== false) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function applyAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// ---- formatting (times in the browser's own time zone) ----
const timeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const numFmt = new Intl.NumberFormat();
export const fmtTime = (unix) => (unix === null || unix === undefined ? '—' : timeFmt.format(new Date(unix * 1000)));
export const fmtNum = (n) => (n === null || n === undefined ? '—' : numFmt.format(n));
export function fmtTimeEl(unix) {
  if (unix === null || unix === undefined) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: new Date(unix * 1000).toISOString(), class: 'nowrap' }, fmtTime(unix));
}

/** `<input type=datetime-local>` value (local time) ↔ Unix seconds. */
export function toLocalInput(unix) {
  if (!unix) return '';
  const d = new Date(unix * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
export function fromLocalInput(value) {
  if (!value) return null;
  const t = new Date(value).getTime();
  return Number.isNaN(t) ? null : Math.floor(t / 1000);
}

export const badge = (text, kind) => h('span', { class: `badge ${kind || String(text).toLowerCase()}` }, text);

// ---- forms ----
let fieldSeq = 0;
/** A labelled input: `field('Name', h('input', …), 'hint')`. */
export function field(label, input, hint) {
  if (!input.id) input.id = `f${++fieldSeq}`;
  const isCheck = input.type === 'checkbox';
  const lab = h('label', { class: isCheck ? 'field check' : 'field', for: input.id });
  if (isCheck) append(lab, [input, h('span', null, label)]);
  else append(lab, [h('span', null, label, hint ? h('span', { class: 'hint' }, ` — ${hint}`) : null), input]);
  return lab;
}

export function errorBox() {
  const box = h('div', { class: 'error hidden', role: 'alert' });
  box.show = (err) => {
    box.textContent = err ? err.message || String(err) : '';
    box.classList.toggle('hidden', !err);
  };
  return box;
}

/**
 * Wires a form: Enter submits, the submit button is disabled while the
 * request runs, and API errors show their `detail` in the form.
 */
export function onSubmit(form, handler, errBox) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const buttons = form.querySelectorAll('button[type=submit]');
    buttons.forEach((b) => (b.disabled = true));
    errBox && errBox.show(null);
    try {
      await handler(ev);
    } catch (err) {
      if (errBox) errBox.show(err);
      else toast(err.message, 'bad');
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  });
}

// ---- dialogs ----
/**
 * Opens a modal `<dialog>` (focus trapped, Escape closes). Returns
 * {dialog, body, foot, close}. The element is removed when closed, so
 * anything shown once (secrets) is gone from the page.
 */
export function modal(title, { onClose, wide } = {}) {
  const body = h('div', { class: 'dlg-body' });
  const foot = h('div', { class: 'dlg-foot' });
  const closeBtn = h('button', { type: 'button', class: 'small', 'aria-label': 'Close' }, '✕');
  const heading = h('h2', { id: `dlg${++fieldSeq}` }, title);
  const dialog = h('dialog', { 'aria-labelledby': heading.id }, h('div', { class: 'dlg-head' }, heading, closeBtn), body, foot);
  if (wide) dialog.style.width = 'min(860px, calc(100vw - 24px))';
  // Removed at once, not on the 'close' event (queued for later): a secret
  // must be gone from the page when the closing click returns.
  let closed = false;
  const finish = () => {
    if (closed) return;
    closed = true;
    dialog.remove();
    onClose && onClose();
  };
  const close = () => {
    if (dialog.open) dialog.close();
    finish();
  };
  closeBtn.addEventListener('click', close);
  dialog.addEventListener('close', finish);
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, body, foot, close };
}

/** Asks before a destructive action; resolves true when confirmed. */
export function confirmAction(title, message, { confirmLabel = 'Delete', danger = true } = {}) {
  return new Promise((resolve) => {
    let answer = false;
    const m = modal(title, { onClose: () => resolve(answer) });
    append(m.body, [h('p', null, message)]);
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const ok = h('button', { type: 'button', class: danger ? 'danger solid' : 'primary' }, confirmLabel);
    cancel.addEventListener('click', m.close);
    ok.addEventListener('click', () => {
      answer = true;
      m.close();
    });
    append(m.foot, [cancel, ok]);
    cancel.focus();
  });
}

// ---- feedback ----
export function toast(message, kind) {
  const t = h('div', { class: `toast ${kind || ''}` }, message);
  document.getElementById('toasts').append(t);
  setTimeout(() => t.remove(), kind === 'bad' ? 7000 : 3500);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Fallback for browsers without the async clipboard in this context.
    const ta = h('textarea', { class: 'hidden' });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    document.execCommand('copy');
    ta.remove();
  }
  toast('Copied to the clipboard', 'ok');
}

export const copyButton = (text, label = 'Copy') =>
  h('button', { type: 'button', class: 'small', onclick: () => copyText(text) }, label);

/** Shows a failed page load in place of the page. */
export function pageError(root, err) {
  clear(root, h('div', { class: 'error', role: 'alert' }, err.message || String(err)));
}

/** A table: `columns` are [header, (row) => cell, className?]. */
export function table(columns, rows, emptyText = 'Nothing here yet.') {
  const thead = h('thead', null, h('tr', null, columns.map(([head, , cls]) => h('th', { class: cls, scope: 'col' }, head))));
  const tbody = h('tbody');
  if (!rows.length) tbody.append(h('tr', { class: 'empty-row' }, h('td', { colspan: columns.length }, emptyText)));
  for (const row of rows) {
    tbody.append(h('tr', null, columns.map(([, cell, cls]) => h('td', { class: cls }, cell(row)))));
  }
  return h('div', { class: 'table-wrap' }, h('table', null, thead, tbody));
}

/** Prev/next paging for `{page, total_pages, total}`; `go(page)` loads one. */
export function pager(data, go, noun = 'items') {
  const page = data.page || 1;
  const pages = data.total_pages || 0;
  const jump = h('input', { type: 'number', min: 1, max: Math.max(pages, 1), value: page, 'aria-label': 'Page number' });
  const jumpForm = h('form', { class: 'controls' }, jump, h('button', { type: 'submit', class: 'small' }, 'Go'));
  jumpForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const n = Math.min(Math.max(1, parseInt(jump.value, 10) || 1), Math.max(pages, 1));
    go(n);
  });
  const btn = (label, target, disabled) =>
    h('button', { type: 'button', class: 'small', disabled, onclick: () => go(target), 'aria-label': label }, label);
  return h(
    'div',
    { class: 'pager' },
    h('span', { 'data-testid': 'pager-info' }, `Page ${fmtNum(pages ? page : 0)} of ${fmtNum(pages)} · ${fmtNum(data.total)} ${noun}`),
    h(
      'div',
      { class: 'controls' },
      btn('First', 1, page <= 1),
      btn('Previous', page - 1, page <= 1),
      btn('Next', page + 1, page >= pages),
      btn('Last', pages, page >= pages),
      jumpForm,
    ),
  );
}

/** Delays `fn` until typing pauses; `.cancel()` drops a pending call. */
export function debounce(fn, ms) {
  let t;
  const run = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
  run.cancel = () => clearTimeout(t);
  return run;
}
