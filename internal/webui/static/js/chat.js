// Chat: sessions (new, rename, delete), a streamed answer with a stop button, citations as
// numbered chips that open the cited chunk beside the answer, and what the token budget cut.
// Answers and chunks are model and document text: shown as text, never as HTML or markdown.
import { get, request, chatStream, ApiError } from './api.js';
import { h, set, num, toast, confirmDialog, promptDialog } from './dom.js';

const bracketRe = /\[([^[\]\n]{1,512})\]/g;
const refRe = /^(?:source(?:\s*id)?\s*:\s*)?([^\s:[\],;]+):(\d{1,9})$/i;

/** parts splits an answer into text and citation refs ({doc, chunk}), as the server parses them. */
export function parts(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(bracketRe)) {
    const items = m[1].split(/[,;]/).map((s) => s.trim());
    const refs = [];
    for (const it of items) {
      const r = refRe.exec(it);
      if (!r) { refs.length = 0; break; }
      refs.push({ doc: r[1], chunk: +r[2] });
    }
    if (!refs.length) continue;
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(...refs);
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

export function mount(root, ctx, rest) {
  let alive = true;
  let current = '';       // session id
  let controller = null;  // the answer streaming now
  let openChip = null;

  const list = h('ul', { class: 'session-list', 'aria-label': 'Sessions' });
  const newBtn = h('button', { type: 'button', class: 'primary', onclick: () => { location.hash = '#/chat'; } }, '+ New chat');
  const title = h('h2', { id: 'chat-title' }, 'New chat');
  const turns = h('div', { class: 'turns', id: 'turns' });
  const question = h('textarea', { id: 'question', rows: 3, maxlength: 8000, placeholder: 'Ask about your documents…', required: true });
  const ask = h('button', { type: 'submit', class: 'primary', id: 'ask' }, 'Ask');
  const stop = h('button', { type: 'button', id: 'stop', disabled: true, onclick: () => controller && controller.abort() }, '■ Stop');
  const form = h('form', { class: 'ask', id: 'ask-form' },
    h('label', { for: 'question' }, 'Your question'), question,
    h('div', { class: 'row' }, h('span', { class: 'hint' }, 'Enter to ask, Shift+Enter for a new line.'), h('span', { class: 'spacer' }), stop, ask));
  const panel = h('aside', { class: 'citation', id: 'citation', 'aria-label': 'Cited passage', hidden: true });

  question.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener('submit', (e) => { e.preventDefault(); send(); });

  async function loadSessions() {
    try {
      const r = await get('/api/sessions?limit=200');
      if (!alive) return;
      set(list, r.sessions.length ? r.sessions.map(sessionItem) : h('li', { class: 'muted' }, 'No sessions yet.'));
    } catch (e) {
      if (alive) set(list, h('li', { class: 'error' }, e.message));
    }
  }
  function sessionItem(s) {
    const name = s.title || 'Untitled';
    return h('li', { class: s.id === current ? 'current' : '' },
      h('a', { href: `#/chat/${encodeURIComponent(s.id)}`, 'aria-current': s.id === current ? 'page' : null },
        h('span', { class: 'stitle' }, name), h('span', { class: 'muted' }, `${num(s.turn_count)} turn${s.turn_count === 1 ? '' : 's'}`)),
      h('span', { class: 'sactions' },
        h('button', { type: 'button', class: 'ghost small', 'aria-label': `Rename ${name}`, onclick: () => rename(s) }, 'Rename'),
        h('button', { type: 'button', class: 'ghost small', 'aria-label': `Delete ${name}`, onclick: () => removeSession(s) }, 'Delete')));
  }
  async function rename(s) {
    const t = await promptDialog('Rename session', 'Title', s.title);
    if (t == null) return;
    try {
      await request('PATCH', `/api/sessions/${encodeURIComponent(s.id)}`, { json: { title: t } });
      if (s.id === current) set(title, t.trim() || 'Untitled');
      loadSessions();
    } catch (e) { toast(e.message, 'error'); }
  }
  async function removeSession(s) {
    if (!await confirmDialog(`Delete “${s.title || 'Untitled'}”?`, 'Its questions and answers are removed. Documents are not affected.')) return;
    try {
      await request('DELETE', `/api/sessions/${encodeURIComponent(s.id)}`);
      if (s.id === current) location.hash = '#/chat';
      loadSessions();
    } catch (e) { toast(e.message, 'error'); }
  }

  async function open(id) {
    if (controller) controller.abort();
    closePanel();
    current = id;
    set(turns);
    if (!id) {
      set(title, 'New chat');
      turns.append(h('p', { class: 'muted empty' }, 'Ask a question: the answer cites the passages it used. Click a number to read the passage.'));
      loadSessions();
      return;
    }
    try {
      const s = await get(`/api/sessions/${encodeURIComponent(id)}`);
      if (!alive || current !== id) return;
      set(title, s.title || 'Untitled');
      for (const t of s.turns) {
        const v = turnView(t.question);
        v.finish({ answer: t.answer, sources: t.sources || [], no_context: t.no_context });
      }
    } catch (e) {
      set(title, 'Session');
      turns.append(h('p', { class: 'error' }, e.message));
    }
    loadSessions();
  }

  function turnView(q) {
    const answer = h('div', { class: 'answer', 'aria-live': 'polite', 'aria-busy': 'true' });
    const notes = h('ul', { class: 'notes' });
    const srcs = h('div', { class: 'sources' });
    const art = h('article', { class: 'turn' }, h('p', { class: 'q' }, h('span', { class: 'visually-hidden' }, 'Question: '), q), answer, srcs, notes);
    turns.append(art);
    let text = '';
    const note = (t, kind = '') => notes.append(h('li', { class: kind, role: kind === 'error' ? 'alert' : null }, t));
    return {
      art,
      token(t) {
        text += t;
        drawAnswer(answer, text, null);
      },
      finish(done) {
        answer.setAttribute('aria-busy', 'false');
        text = done.answer || text;
        drawAnswer(answer, text, done.sources || []);
        set(srcs);
        if ((done.sources || []).length) {
          srcs.append(h('span', { class: 'muted' }, 'Sources: '), ...done.sources.map((s, i) => chip(s, i + 1, true)));
        } else if ((done.context || []).length) {
          // The model cited nothing: say so, and offer the passages it was given instead.
          srcs.append(h('span', { class: 'muted' }, 'No passage cited. Passages the model was given: '), ...done.context.map((s, i) => chip(s, i + 1, true)));
        }
        if (done.no_context) note('No passage of your documents scored high enough, so the model was not asked.', 'info');
        if (done.cached) note('Answered from the cache: the same question was answered before and no document changed since.', 'info');
        const u = done.usage;
        const b = u && u.budget;
        if (b) {
          const cut = [];
          if (b.sources_dropped) cut.push(`${num(b.sources_dropped)} retrieved passage${b.sources_dropped === 1 ? ' was' : 's were'} left out`);
          if (b.truncated) cut.push('the last passage given was cut at a sentence');
          if (b.history_turns_dropped) cut.push(`${num(b.history_turns_dropped)} earlier turn${b.history_turns_dropped === 1 ? ' was' : 's were'} left out of the history`);
          if (cut.length) note(`To fit the token budget (${num(b.num_ctx)} tokens): ${cut.join('; ')}.`, 'warn');
        }
        if (u && u.done_reason === 'length') note(`The answer reached its budget of ${num(b ? b.response : u.completion_tokens)} tokens and was cut off.`, 'warn');
      },
      fail(msg, kind = 'error') {
        answer.setAttribute('aria-busy', 'false');
        drawAnswer(answer, text, []);
        note(msg, kind);
      },
    };
  }

  function drawAnswer(el, text, sources) {
    const idx = new Map((sources || []).map((s, i) => [`${s.document_id}:${s.chunk_index}`, i]));
    const out = [];
    for (const p of parts(text)) {
      if (typeof p === 'string') { out.push(p); continue; }
      const i = idx.get(`${p.doc}:${p.chunk}`);
      if (i !== undefined) out.push(chip(sources[i], i + 1, false));
      else if (!sources) out.push(h('span', { class: 'cite pending', title: 'citation, resolved when the answer is complete' }, '…'));
      // A citation of a passage the model was not shown is not evidence: the server drops it.
    }
    set(el, out);
  }

  function chip(s, n, labelled) {
    const where = [s.name, s.page ? `page ${s.page}` : ''].filter(Boolean).join(', ');
    const b = h('button', {
      type: 'button', class: labelled ? 'cite labelled' : 'cite', 'aria-expanded': 'false', 'aria-controls': 'citation',
      'aria-label': `Source ${n}: ${where}`, title: where, dataset: { doc: s.document_id, chunk: s.chunk_index },
    }, String(n), labelled ? h('span', { class: 'cname' }, where) : null);
    b.addEventListener('click', () => showChunk(s, n, b));
    return b;
  }

  async function showChunk(s, n, btn) {
    if (openChip) openChip.setAttribute('aria-expanded', 'false');
    openChip = btn;
    btn.setAttribute('aria-expanded', 'true');
    const head = h('div', { class: 'row' }, h('h2', { id: 'cite-title', tabindex: -1 }, `Source ${n}`), h('span', { class: 'spacer' }),
      h('button', { type: 'button', class: 'ghost', 'aria-label': 'Close the cited passage', onclick: closePanel }, '✕'));
    const meta = h('p', { class: 'meta' }, h('a', { href: `#/documents/${encodeURIComponent(s.document_id)}`, class: 'docname' }, s.name),
      s.page ? ` · page ${s.page}` : '', s.section ? ` · ${s.section}` : '', ` · passage ${s.chunk_index + 1}`);
    const body = h('blockquote', { class: 'chunk', id: 'chunk-text' }, s.snippet || '');
    set(panel, head, meta, body);
    panel.hidden = false;
    panel.querySelector('#cite-title').focus();
    try {
      const c = await get(`/api/documents/${encodeURIComponent(s.document_id)}/chunks/${s.chunk_index}`);
      if (openChip === btn) set(body, c.text);
    } catch (e) {
      if (openChip === btn) panel.append(h('p', { class: 'error' }, `Showing the snippet recorded with the answer. ${e.message}`));
    }
  }
  function closePanel() {
    if (openChip) { openChip.setAttribute('aria-expanded', 'false'); openChip.focus(); }
    openChip = null;
    panel.hidden = true;
  }

  async function send() {
    const q = question.value.trim();
    if (!q || controller) return;
    const empty = turns.querySelector('.empty');
    if (empty) empty.remove();
    const view = turnView(q);
    view.art.scrollIntoView({ block: 'end' });
    question.value = '';
    controller = new AbortController();
    ask.disabled = true;
    stop.disabled = false;
    try {
      if (!current) {
        const s = await request('POST', '/api/sessions', { json: { title: q.length > 60 ? `${q.slice(0, 59)}…` : q } });
        current = s.id;
        set(title, s.title || 'Untitled');
        history.replaceState(null, '', `#/chat/${encodeURIComponent(s.id)}`);
      }
      const done = await chatStream({ question: q, session_id: current }, (t) => view.token(t), controller.signal);
      if (alive) view.finish(done);
    } catch (e) {
      if (e.name === 'AbortError') view.fail('Stopped. The partial answer above is not kept in the session.', 'info');
      else view.fail(e instanceof ApiError ? e.message : String(e));
    } finally {
      controller = null;
      ask.disabled = false;
      stop.disabled = true;
      if (alive) { loadSessions(); question.focus(); }
    }
  }

  set(root,
    h('h1', { class: 'visually-hidden' }, 'Chat'),
    h('div', { class: 'chat' },
      h('section', { class: 'card sessions', 'aria-labelledby': 'sessions-title' }, h('div', { class: 'row' }, h('h2', { id: 'sessions-title' }, 'Sessions'), h('span', { class: 'spacer' }), newBtn), list),
      h('section', { class: 'card conversation', 'aria-labelledby': 'chat-title' }, title, turns, form),
      panel));

  const update = (p) => {
    const id = p && p[0] ? decodeURIComponent(p[0]) : '';
    if (id !== current || !id) open(id);
  };
  update(rest);
  question.focus();
  const unmount = () => { alive = false; if (controller) controller.abort(); };
  unmount.update = update;
  return unmount;
}
