// DOM helpers. Everything shown comes from the API, so text is only ever set as text (text
// nodes, textContent); no code path here or elsewhere assigns HTML.

/** h builds an element: attrs (on* → listeners, class, dataset, boolean props) and children. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (typeof v === 'boolean' || k === 'value') el[k] = v;
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** set replaces an element's children. */
export function set(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

const nf = new Intl.NumberFormat();
export const num = (n) => nf.format(n);

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  const u = ['KiB', 'MiB', 'GiB', 'TiB'];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
  return `${n.toFixed(n < 10 ? 1 : 0)} ${u[i]}`;
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const df = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
export function ago(iso) {
  const s = (new Date(iso).getTime() - Date.now()) / 1000;
  const a = Math.abs(s);
  if (a < 45) return rtf.format(Math.round(s), 'second');
  if (a < 2700) return rtf.format(Math.round(s / 60), 'minute');
  if (a < 64800) return rtf.format(Math.round(s / 3600), 'hour');
  return df.format(new Date(iso));
}

/** toast shows a short message in the live region. */
export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  const t = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : null }, text);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 9000 : 4000);
}

/** confirmDialog asks a yes/no question in a modal dialog; resolves true on confirm. */
export function confirmDialog(title, text, action = 'Delete') {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: 'danger', value: 'ok' }, action);
    const cancel = h('button', { type: 'button', value: 'cancel' }, 'Cancel');
    const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': 'dlg-title' },
      h('h2', { id: 'dlg-title' }, title), h('p', null, text), h('div', { class: 'row end' }, cancel, ok));
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

/** promptDialog asks for one line of text; resolves the text or null. */
export function promptDialog(title, label, value) {
  return new Promise((resolve) => {
    const input = h('input', { type: 'text', id: 'dlg-input', maxlength: 200, value });
    const form = h('form', { method: 'dialog' },
      h('h2', null, title), h('label', { for: 'dlg-input' }, label), input,
      h('div', { class: 'row end' },
        h('button', { type: 'button', onclick: () => done(null) }, 'Cancel'),
        h('button', { type: 'submit', class: 'primary' }, 'Save')));
    const dlg = h('dialog', { class: 'dialog' }, form);
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    form.addEventListener('submit', (e) => { e.preventDefault(); done(input.value); });
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); done(null); });
    document.body.append(dlg);
    dlg.showModal();
    input.select();
  });
}
