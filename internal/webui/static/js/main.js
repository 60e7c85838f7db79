// The shell: sign-in, sign-out, the header, the theme and the router (#/documents, #/chat,
// #/admin). Each view module exports mount(container, ctx) returning an unmount function.
import { session, request, onUnauthorized } from './api.js';
import { $, set, toast } from './dom.js';

const views = {
  documents: () => import('./docs.js'),
  chat: () => import('./chat.js'),
  admin: () => import('./admin.js'),
};

const ctx = { me: null, authOff: false };
let unmount = null;
let mounted = '';

function route() {
  const [, view = 'documents', ...rest] = location.hash.split('/');
  return { view: views[view] ? view : 'documents', rest };
}

async function render() {
  if (!ctx.me) return;
  const { view, rest } = route();
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const box = $('#view');
  if (mounted === view && unmount && unmount.update) {
    unmount.update(rest);
    return;
  }
  if (unmount) unmount();
  unmount = null;
  mounted = view;
  set(box);
  const mod = await views[view]();
  if (mounted !== view || !ctx.me) return;
  unmount = mod.mount(box, ctx, rest) || null;
  document.title = `${{ documents: 'Documents', chat: 'Chat', admin: 'Stack health' }[view]} · RAG server`;
}

function signedIn(me) {
  ctx.me = me;
  $('#signin').hidden = true;
  $('#top').hidden = false;
  $('#nav-admin').hidden = me.role !== 'admin';
  set($('#who'), `${me.name} · ${me.role}${me.tags.length ? ` · tags: ${me.tags.join(', ')}` : ''}`);
  $('#signout').hidden = ctx.authOff;
  const banner = $('#banner');
  banner.hidden = !ctx.authOff;
  if (ctx.authOff) set(banner, 'Authentication is off on this server (--insecure-no-auth): everyone who can reach it is an admin.');
  if (!location.hash) history.replaceState(null, '', '#/documents');
  render();
}

function signOut(message) {
  session.key = '';
  ctx.me = null;
  if (unmount) unmount();
  unmount = null;
  mounted = '';
  set($('#view'));
  $('#top').hidden = true;
  $('#banner').hidden = true;
  $('#signin').hidden = false;
  set($('#signin-error'), message || '');
  const key = $('#key');
  key.value = '';
  key.focus();
}

async function signIn(e) {
  e.preventDefault();
  const key = $('#key').value.trim();
  const err = $('#signin-error');
  if (!key) {
    set(err, 'Enter an API key.');
    return;
  }
  const btn = e.submitter || $('#signin-form button');
  btn.disabled = true;
  try {
    const me = await request('GET', '/api/me', { key });
    session.key = key;
    $('#key').value = '';
    set(err);
    signedIn(me);
  } catch (ex) {
    set(err, ex.status === 401 ? 'This key is not accepted by the server. Check it and try again.' : ex.message);
  } finally {
    btn.disabled = false;
  }
}

const themes = ['auto', 'light', 'dark'];
function applyTheme(t) {
  if (t === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
  const b = $('#theme');
  b.textContent = { auto: '◐ Auto', light: '☀ Light', dark: '☾ Dark' }[t];
  b.setAttribute('aria-label', `Colour theme: ${t === 'auto' ? 'automatic' : t}. Change`);
}

async function start() {
  let theme = localStorage.getItem('rag.theme') || 'auto';
  applyTheme(theme);
  $('#theme').addEventListener('click', () => {
    theme = themes[(themes.indexOf(theme) + 1) % themes.length];
    localStorage.setItem('rag.theme', theme);
    applyTheme(theme);
  });
  $('#signin-form').addEventListener('submit', signIn);
  $('#signout').addEventListener('click', () => signOut('Signed out.'));
  onUnauthorized(() => { if (ctx.me && !ctx.authOff) signOut('The server no longer accepts this key. Sign in again.'); });
  window.addEventListener('hashchange', render);
  // A server started with --insecure-no-auth answers without a key.
  try {
    const me = await request('GET', '/api/me', { key: '' });
    ctx.authOff = true;
    signedIn(me);
    return;
  } catch { /* a key is needed */ }
  if (session.key) {
    try {
      signedIn(await request('GET', '/api/me'));
      return;
    } catch (ex) {
      if (ex.status !== 401) toast(ex.message, 'error');
    }
  }
  signOut();
}

start();
