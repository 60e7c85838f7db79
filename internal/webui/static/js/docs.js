// Documents: upload (file picker and drag-and-drop, one request per file with its own
// progress and outcome), the list (live status, filters, paging for thousands) and one
// document's details. What a key sees is what the API returns for it: nothing is filtered here.
import { get, request, upload, explain, ApiError } from './api.js';
import { h, set, num, bytes, ago, toast, confirmDialog } from './dom.js';

const STATUSES = ['pending', 'processing', 'ready', 'failed', 'deleting'];
const FINAL = new Set(['ready', 'failed']);
const PAGE_SIZES = [50, 100, 500, 1000];

export function mount(root, ctx, rest) {
  const me = ctx.me;
  const state = { offset: 0, limit: 50, status: '', tag: '', name: '', total: 0, docs: [], rows: new Map() };
  let timer = 0;
  let alive = true;
  let loading = null;
  const follow = new Map(); // uploaded id → its item's status line

  // Upload ------------------------------------------------------------------------------------
  const picker = h('input', { type: 'file', id: 'files', multiple: true, class: 'visually-hidden' });
  const tagsIn = h('input', { type: 'text', id: 'upload-tags', placeholder: me.tags.length ? me.tags.join(', ') : 'e.g. hr, policies', autocomplete: 'off' });
  const uploads = h('ul', { class: 'uploads', 'aria-label': 'Uploads' });
  const drop = h('div', { class: 'drop', id: 'drop' },
    h('p', null, h('strong', null, 'Drop files here'), ' or ',
      h('button', { type: 'button', class: 'primary', onclick: () => picker.click() }, 'Choose files…')),
    h('p', { class: 'hint' }, 'txt, md, html, csv, pdf, docx — many at once. Each file is checked and refused on its own.'));
  for (const ev of ['dragenter', 'dragover']) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add('over'); });
  }
  for (const ev of ['dragleave', 'drop']) drop.addEventListener(ev, () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) enqueue([...e.dataTransfer.files]);
  });
  picker.addEventListener('change', () => { enqueue([...picker.files]); picker.value = ''; });

  const queue = [];
  let running = 0;
  function enqueue(files) {
    for (const file of files) {
      const bar = h('progress', { max: 1, value: 0, 'aria-label': `Upload of ${file.name}` });
      const line = h('span', { class: 'outcome' }, 'Waiting…');
      const li = h('li', { class: 'upload' }, h('span', { class: 'fname' }, file.name), h('span', { class: 'muted' }, bytes(file.size)), bar, line);
      uploads.prepend(li);
      queue.push({ file, bar, line, li });
    }
    pump();
  }
  function pump() {
    while (alive && running < 3 && queue.length) {
      const job = queue.shift();
      running++;
      set(job.line, 'Uploading…');
      upload(job.file, tagsIn.value.trim(), (p) => { job.bar.value = p; }).then((r) => {
        running--;
        job.bar.value = 1;
        outcome(job, r);
        pump();
        refreshSoon();
      });
    }
  }
  function outcome(job, r) {
    job.li.classList.remove('ok', 'bad', 'warn');
    if (r.status === 202) {
      job.li.classList.add('ok');
      set(job.line, 'Accepted — ', h('a', { href: `#/documents/${encodeURIComponent(r.id)}` }, 'queued for processing'));
      follow.set(r.id, job);
      return;
    }
    if (r.status === 409 && r.existingId) {
      job.li.classList.add('warn');
      set(job.line, 'Not added: the same content is already here as ',
        h('a', { href: `#/documents/${encodeURIComponent(r.existingId)}` }, 'an existing document'), '.');
      return;
    }
    job.li.classList.add('bad');
    if (r.status === -1) { set(job.line, 'Cancelled.'); return; }
    const words = {
      413: 'Refused: the file is larger than this server accepts.',
      415: 'Refused: this type of file is not accepted, or its content does not match its name.',
      422: 'Refused: the file could not be read.',
    }[r.status];
    set(job.line, words ? `${words} ${r.error ? `(${r.error})` : ''}` : explain(r.status, r.error, r.retryAfter));
  }

  // List ----------------------------------------------------------------------------------------
  const statusSel = h('select', { id: 'f-status' }, h('option', { value: '' }, 'Any status'), STATUSES.map((s) => h('option', { value: s }, s)));
  const tagSel = h('input', { type: 'search', id: 'f-tag', list: 'f-tags', autocomplete: 'off', placeholder: 'any tag' });
  const tagList = h('datalist', { id: 'f-tags' }, me.tags.map((t) => h('option', { value: t })));
  const nameIn = h('input', { type: 'search', id: 'f-name', autocomplete: 'off', placeholder: 'part of a name' });
  const sizeSel = h('select', { id: 'f-size' }, PAGE_SIZES.map((n) => h('option', { value: n }, `${n} per page`)));
  const summary = h('p', { class: 'muted', id: 'list-summary', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', onclick: () => page(-1) }, '← Previous');
  const next = h('button', { type: 'button', onclick: () => page(1) }, 'Next →');
  // A grid of rows rather than a <table>: each row skips layout and paint while off screen
  // (content-visibility), which a table's rows cannot, so a page of 1,000 stays light.
  const tbody = h('div', { role: 'rowgroup', class: 'drows' });
  const table = h('div', { role: 'table', class: 'docs', 'aria-label': 'Documents' },
    h('div', { role: 'rowgroup', class: 'dhead' }, h('div', { role: 'row', class: 'drow' },
      ['Name', 'Status', 'Pages', 'Chunks', 'Tags', 'Summary', 'Added', 'Actions'].map((c, i) => h('div', { role: 'columnheader', class: i === 7 ? 'visually-hidden-text' : null }, c)))),
    tbody);
  const detail = h('aside', { class: 'detail', id: 'detail', 'aria-label': 'Document details', hidden: true });

  let nameTimer = 0;
  const filter = () => { state.offset = 0; load(); };
  statusSel.addEventListener('change', () => { state.status = statusSel.value; filter(); });
  tagSel.addEventListener('change', () => { state.tag = tagSel.value.trim(); filter(); });
  nameIn.addEventListener('input', () => { clearTimeout(nameTimer); nameTimer = setTimeout(() => { state.name = nameIn.value.trim(); filter(); }, 300); });
  sizeSel.addEventListener('change', () => { state.limit = +sizeSel.value; filter(); });

  function page(dir) {
    state.offset = Math.max(0, state.offset + dir * state.limit);
    load().then(() => table.scrollIntoView({ block: 'nearest' }));
  }

  const canModify = (d) => me.role === 'admin' || (d.owner === me.name && d.tags.some((t) => me.tags.includes(t)));

  function statusCell(d) {
    const td = h('div', { role: 'cell', class: 'status' }, h('span', { class: `badge ${d.status}` }, d.status === 'processing' || d.status === 'pending' ? `${d.status}…` : d.status));
    if (d.status === 'failed' && d.error) td.append(h('span', { class: 'reason' }, d.error));
    return td;
  }
  function summaryText(d) {
    const e = d.enrichment;
    if (!e) return '';
    if (e.summary) return e.summary.length > 160 ? `${e.summary.slice(0, 159)}…` : e.summary;
    if (e.status === 'failed') return 'summary failed';
    return e.status === 'done' ? '' : 'summary pending';
  }
  function row(d) {
    const tr = h('div', { role: 'row', class: 'drow', dataset: { id: d.id, v: `${d.updatedAt}|${d.status}|${d.enrichment ? d.enrichment.status : ''}` } },
      h('div', { role: 'rowheader', class: 'name' }, h('a', { href: `#/documents/${encodeURIComponent(d.id)}` }, d.name)),
      statusCell(d),
      h('div', { role: 'cell', class: 'num', 'data-label': 'Pages' }, d.pages ? num(d.pages) : '—'),
      h('div', { role: 'cell', class: 'num', 'data-label': 'Chunks' }, d.status === 'ready' ? num(d.chunks) : '—'),
      h('div', { role: 'cell', class: 'tags' }, d.tags.map((t) => h('span', { class: 'tag' }, t))),
      h('div', { role: 'cell', class: 'summary' }, summaryText(d)),
      h('div', { role: 'cell', class: 'when' }, h('time', { datetime: d.createdAt }, ago(d.createdAt))),
      h('div', { role: 'cell', class: 'actions' }, canModify(d) && d.status !== 'deleting'
        ? h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete ${d.name}`, onclick: () => remove(d) }, 'Delete') : null));
    return tr;
  }

  let drawGen = 0;
  function draw() {
    const ids = state.docs.map((d) => d.id);
    const rows = tbody.children;
    const same = ids.length === rows.length && ids.every((id, i) => rows[i].dataset.id === id);
    if (same) {
      state.docs.forEach((d, i) => {
        const old = rows[i];
        const v = `${d.updatedAt}|${d.status}|${d.enrichment ? d.enrichment.status : ''}`;
        if (old.dataset.v !== v) old.replaceWith(row(d));
      });
    } else {
      // Rows are built in slices of 100, each its own task, so a page of 1,000 never blocks
      // the main thread long enough to freeze the page.
      const gen = ++drawGen;
      const docs = state.docs;
      let i = 0;
      const slice = () => {
        if (gen !== drawGen || !alive) return;
        const frag = document.createDocumentFragment();
        for (const end = Math.min(i + 100, docs.length); i < end; i++) frag.append(row(docs[i]));
        if (i <= 100) tbody.replaceChildren(frag);
        else tbody.append(frag);
        if (i < docs.length) setTimeout(slice, 0);
      };
      slice();
    }
    if (!state.docs.length) tbody.replaceChildren(h('div', { role: 'row', class: 'empty' }, h('div', { role: 'cell' },
      state.total || state.status || state.tag || state.name ? 'No document matches these filters.' : 'No documents yet: upload some above.')));
    const from = state.total ? state.offset + 1 : 0;
    set(summary, state.total ? `Showing ${num(from)}–${num(state.offset + state.docs.length)} of ${num(state.total)} documents` : '');
    prev.disabled = state.offset === 0;
    next.disabled = state.offset + state.docs.length >= state.total;
  }

  async function load() {
    const q = new URLSearchParams({ limit: state.limit, offset: state.offset });
    if (state.status) q.set('status', state.status);
    if (state.tag) q.set('tag', state.tag);
    if (state.name) q.set('name', state.name);
    const p = (async () => {
      try {
        const r = await get(`/api/documents?${q}`);
        if (!alive) return;
        state.docs = r.documents;
        state.total = r.total;
        if (state.offset > 0 && state.offset >= r.total) { state.offset = Math.max(0, r.total - state.limit); return load(); }
        draw();
        // For the UI benchmark (test/benchui): the list is on screen and usable.
        performance.mark('rag:documents-rendered');
      } catch (e) {
        if (alive && e.status !== 401) set(summary, e.message);
      }
    })();
    loading = p;
    await p;
    if (loading === p) schedule();
  }

  async function followUploads() {
    const ids = [...follow.keys()].slice(0, 20);
    await Promise.all(ids.map(async (id) => {
      const job = follow.get(id);
      try {
        const d = await get(`/api/documents/${encodeURIComponent(id)}`);
        if (d.status === 'ready') set(job.line, h('a', { href: `#/documents/${encodeURIComponent(id)}` }, `Ready: ${num(d.chunks)} chunk${d.chunks === 1 ? '' : 's'}${d.pages ? `, ${num(d.pages)} page${d.pages === 1 ? '' : 's'}` : ''}`));
        else if (d.status === 'failed') { job.li.classList.replace('ok', 'bad'); set(job.line, `Failed while processing: ${d.error}`); }
        else set(job.line, 'Accepted — ', h('a', { href: `#/documents/${encodeURIComponent(id)}` }, `${d.status}…`));
        if (FINAL.has(d.status)) follow.delete(id);
      } catch (e) {
        if (e.status === 404) follow.delete(id);
      }
    }));
  }

  function schedule() {
    clearTimeout(timer);
    if (!alive) return;
    const busy = follow.size || running || queue.length || state.docs.some((d) => !FINAL.has(d.status));
    timer = setTimeout(tick, busy ? 1500 : 8000);
  }
  async function tick() {
    if (!alive) return;
    if (document.hidden) { schedule(); return; }
    await followUploads();
    await load();
    if (openId) showDetail(openId, true);
  }
  function refreshSoon() { clearTimeout(timer); timer = setTimeout(tick, 300); }

  async function remove(d) {
    if (!await confirmDialog(`Delete “${d.name}”?`, 'Its file, its chunks and its search entries are removed. This cannot be undone.')) return;
    try {
      const r = await request('DELETE', `/api/documents/${encodeURIComponent(d.id)}`);
      toast(r && r.status === 'deleting' ? `“${d.name}” is being deleted; it finishes when the vector store answers again.` : `Deleted “${d.name}”.`);
      if (openId === d.id) location.hash = '#/documents';
      load();
    } catch (e) {
      toast(e.message, 'error');
    }
  }

  // Details ------------------------------------------------------------------------------------
  let openId = '';
  async function showDetail(id, quiet) {
    openId = id;
    let d;
    try {
      d = await get(`/api/documents/${encodeURIComponent(id)}`);
    } catch (e) {
      if (openId !== id) return;
      set(detail, h('h2', null, 'Document'), h('p', { class: 'error' }, e.message), closeBtn());
      detail.hidden = false;
      return;
    }
    if (openId !== id || !alive) return;
    const e = d.enrichment;
    const field = (k, ...v) => [h('dt', null, k), h('dd', null, ...v)];
    const focusInside = detail.contains(document.activeElement);
    set(detail,
      h('div', { class: 'row' }, h('h2', { id: 'detail-title', tabindex: -1 }, d.name), h('span', { class: 'spacer' }), closeBtn()),
      h('dl', null,
        field('Status', h('span', { class: `badge ${d.status}` }, d.status)),
        d.error ? field('Reason', h('span', { class: 'error' }, d.error)) : null,
        field('Pages', d.pages ? num(d.pages) : '—'),
        field('Chunks', num(d.chunks)),
        field('Size', bytes(d.size)),
        field('Tags', d.tags.length ? d.tags.map((t) => h('span', { class: 'tag' }, t)) : 'none'),
        e && e.autoTags && e.autoTags.length ? field('Suggested tags', e.autoTags.map((t) => h('span', { class: 'tag auto' }, t))) : null,
        field('Uploaded by', d.owner || '—'),
        field('Added', new Date(d.createdAt).toLocaleString()),
        field('SHA-256', h('code', null, d.sha256))),
      h('h3', null, 'Summary'),
      h('p', { class: 'prose' }, e ? (e.summary || (e.status === 'failed' ? `No summary: ${e.error}` : e.status === 'done' ? 'No summary.' : 'Being written…')) : 'Summaries are off on this server.'),
      canModify(d) ? h('div', { class: 'row' },
        h('button', { type: 'button', onclick: () => reprocess(d) }, 'Reprocess'),
        h('button', { type: 'button', class: 'danger', onclick: () => remove(d) }, 'Delete')) : null);
    detail.hidden = false;
    if (!quiet || focusInside) detail.querySelector('#detail-title').focus();
  }
  function closeBtn() {
    return h('button', { type: 'button', class: 'ghost', 'aria-label': 'Close details', onclick: () => { location.hash = '#/documents'; } }, '✕ Close');
  }
  async function reprocess(d) {
    try {
      await request('POST', `/api/documents/${encodeURIComponent(d.id)}/reprocess`);
      toast(`“${d.name}” is queued to be processed again.`);
      refreshSoon();
    } catch (e) {
      toast(e.message, 'error');
    }
  }
  function update(parts) {
    const id = parts && parts[0] ? decodeURIComponent(parts[0]) : '';
    if (id) showDetail(id);
    else { openId = ''; detail.hidden = true; set(detail); }
  }
  const onKey = (e) => { if (e.key === 'Escape' && openId && !document.querySelector('dialog[open]')) location.hash = '#/documents'; };
  document.addEventListener('keydown', onKey);

  set(root,
    h('h1', { class: 'visually-hidden' }, 'Documents'),
    h('section', { class: 'card', 'aria-labelledby': 'up-title' },
      h('h2', { id: 'up-title' }, 'Upload'),
      drop, picker, h('label', { for: 'files', class: 'visually-hidden' }, 'Files to upload'),
      h('div', { class: 'field' }, h('label', { for: 'upload-tags' }, 'Tags for these uploads'), tagsIn,
        h('span', { class: 'hint' }, me.role === 'admin' ? 'Comma-separated; optional.' : `Comma-separated, from your key's tags (${me.tags.join(', ')}); none given: all of them.`)),
      uploads),
    h('div', { class: 'split' },
      h('section', { class: 'card grow', 'aria-labelledby': 'list-title' },
        h('h2', { id: 'list-title' }, 'Documents'),
        h('div', { class: 'filters' },
          h('div', { class: 'field' }, h('label', { for: 'f-status' }, 'Status'), statusSel),
          h('div', { class: 'field' }, h('label', { for: 'f-tag' }, 'Tag'), tagSel, tagList),
          h('div', { class: 'field' }, h('label', { for: 'f-name' }, 'Name'), nameIn),
          h('div', { class: 'field' }, h('label', { for: 'f-size' }, 'Page size'), sizeSel)),
        summary,
        h('div', { class: 'table-wrap' }, table),
        h('div', { class: 'row pager' }, prev, next)),
      detail));

  load();
  update(rest);
  const unmount = () => { alive = false; clearTimeout(timer); document.removeEventListener('keydown', onKey); };
  unmount.update = update;
  return unmount;
}

export { ApiError };
