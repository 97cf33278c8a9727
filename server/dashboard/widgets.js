// The in-page confirmation dialog and the toasts. The dialog replaces
// window.confirm so that it matches the page and a browser test can click it.

import {byId, el} from './util.js';

let pending = null;  // {resolve, previousFocus} while the dialog is open

// Resolves true when the user confirms, false on cancel, Escape or a click
// outside the dialog.
export function confirmAction({title, body, confirmLabel = 'Confirm', danger = true}) {
  if (pending) finish(false);
  byId('confirm-title').textContent = title;
  byId('confirm-body').textContent = body;
  const ok = byId('confirm-ok');
  ok.textContent = confirmLabel;
  ok.classList.toggle('btn-danger', danger);
  ok.classList.toggle('btn-primary', !danger);
  byId('confirm-dialog').hidden = false;
  return new Promise((resolve) => {
    pending = {resolve, previousFocus: document.activeElement};
    ok.focus();
  });
}

function finish(result) {
  if (!pending) return;
  const {resolve, previousFocus} = pending;
  pending = null;
  byId('confirm-dialog').hidden = true;
  if (previousFocus && previousFocus.isConnected) previousFocus.focus();
  resolve(result);
}

export function closeConfirm() {
  finish(false);
}

export function installConfirm() {
  byId('confirm-ok').addEventListener('click', () => finish(true));
  byId('confirm-cancel').addEventListener('click', () => finish(false));
  byId('confirm-dialog').addEventListener('click', (e) => {
    if (e.target === e.currentTarget) finish(false);
  });
  document.addEventListener('keydown', (e) => {
    if (pending && e.key === 'Escape') finish(false);
  });
}

const kToastMs = {info: 4000, ok: 6000, error: 9000};
const kMaxToasts = 5;

// kind: 'info' | 'ok' | 'error'; type names the frame that caused it, for tests.
export function toast({kind = 'info', title, message = '', type = '', code = ''}) {
  const box = byId('toasts');
  const close = el('button', {type: 'button', class: 'toast-close', 'aria-label': 'Dismiss'}, '×');
  const node = el('div', {class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status',
                          'data-testid': 'toast', 'data-kind': kind, 'data-type': type,
                          'data-code': code || null},
                  el('div', {class: 'toast-text'},
                     el('strong', {class: 'toast-title'}, title),
                     message ? el('span', {class: 'toast-message'}, message) : null),
                  close);
  const remove = () => {
    node.classList.add('toast-leaving');
    setTimeout(() => node.remove(), 200);
  };
  close.addEventListener('click', remove);
  box.append(node);
  while (box.children.length > kMaxToasts) box.firstElementChild.remove();
  setTimeout(remove, kToastMs[kind] ?? 5000);
  return node;
}
