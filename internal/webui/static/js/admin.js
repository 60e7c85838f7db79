// Stack health (admin keys): the server's own view of Ollama and the vector store (its
// background probes), the models Ollama holds, the ingest queue and Ollama's slots per lane.
import { get } from './api.js';
import { h, set, num, bytes, ago } from './dom.js';

const NAMES = { ollama: 'Ollama', vector: 'Vector store', store: 'Database' };

export function mount(root) {
  let alive = true;
  let timer = 0;
  const updated = h('p', { class: 'muted', 'aria-live': 'polite' });
  const body = h('div', { class: 'admin' });

  // A pool's servers are listed as ollama/<index> beside the whole.
  const label = (name) => NAMES[name] || (name.startsWith('ollama/') ? `Ollama server ${name.slice(7)}` : name);

  function dep(name, r, extra) {
    const up = r && r.ok;
    return h('section', { class: `card dep ${up ? 'up' : 'down'}`, 'aria-labelledby': `dep-${name.replace('/', '-')}` },
      h('h2', { id: `dep-${name.replace('/', '-')}` }, label(name), extra ? h('span', { class: 'muted' }, ` (${extra})`) : null),
      h('p', { class: 'big' }, h('span', { class: `badge ${up ? 'ready' : 'failed'}` }, up ? 'reachable' : 'unreachable')),
      r ? h('p', { class: 'muted' }, r.checkedAt && !r.checkedAt.startsWith('0001') ? `checked ${ago(r.checkedAt)} in ${num(r.latencyMs)} ms` : 'not checked yet') : null,
      r && r.error ? h('p', { class: 'error' }, r.error) : null);
  }

  function draw(s) {
    const loaded = new Set(s.models.loaded.map((m) => m.name));
    const laneRow = (p) => h('tr', null, h('th', { scope: 'row' }, p.pool === 'chat' ? 'Chat (answers, summaries, tags)' : 'Embeddings'),
      h('td', { class: 'num' }, p.capacity ? num(p.capacity) : 'unbounded'),
      h('td', { class: 'num' }, num(p.in_flight.interactive)), h('td', { class: 'num' }, num(p.in_flight.background)),
      h('td', { class: 'num' }, num(p.queued.interactive)), h('td', { class: 'num' }, num(p.queued.background)),
      h('td', { class: 'num' }, num(p.background_max)), h('td', { class: 'num' }, num(p.holds)));
    set(body,
      h('div', { class: 'grid' },
        dep('ollama', s.dependencies.ollama),
        Object.keys(s.dependencies).filter((k) => k.startsWith('ollama/')).sort()
          .map((k) => dep(k, s.dependencies[k], s.dependencies[k].address)),
        dep('vector', s.dependencies.vector, s.vector_store),
        dep('store', s.dependencies.store),
        h('section', { class: 'card', 'aria-labelledby': 'queue-title' },
          h('h2', { id: 'queue-title' }, 'Ingest queue'),
          h('p', { class: 'big' }, num(s.queue_depth), h('span', { class: 'muted' }, ` of ${num(s.max_queued)}`)),
          h('meter', { min: 0, max: s.max_queued || 1, value: s.queue_depth, high: (s.max_queued || 1) * 0.8, 'aria-label': 'Queue fill' }),
          h('p', { class: 'muted' }, Object.entries(s.documents).map(([k, v]) => `${num(v)} ${k}`).join(' · ')))),
      h('section', { class: 'card', 'aria-labelledby': 'models-title' },
        h('h2', { id: 'models-title' }, 'Models'),
        h('div', { class: 'table-wrap' }, h('table', null,
          h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Task'), h('th', { scope: 'col' }, 'Model'), h('th', { scope: 'col' }, 'In memory'))),
          h('tbody', null, Object.entries(s.models.configured).sort().map(([task, m]) => h('tr', null,
            h('th', { scope: 'row' }, task), h('td', null, h('code', null, m)),
            h('td', null, loaded.has(m) ? h('span', { class: 'badge ready' }, 'loaded') : h('span', { class: 'badge pending' }, 'not loaded'))))))),
        s.models.loaded_error ? h('p', { class: 'error' }, `Ollama did not say which models it holds: ${s.models.loaded_error}`) : null,
        s.models.loaded.length ? h('ul', { class: 'plain' }, s.models.loaded.map((m) => h('li', null, h('code', null, m.name),
          ` — ${bytes(m.size)} in memory${m.size_vram ? `, ${bytes(m.size_vram)} on the GPU` : ', on the CPU'}`,
          m.context_length ? `, context ${num(m.context_length)}` : '',
          m.expires_at && !m.expires_at.startsWith('0001') ? `, unloads ${ago(m.expires_at)}` : ''))) : null),
      h('section', { class: 'card', 'aria-labelledby': 'lanes-title' },
        h('h2', { id: 'lanes-title' }, 'Lanes in use'),
        h('p', { class: 'muted' }, 'Calls at Ollama now (in flight) and waiting for a slot (queued). Questions go ahead of background work; background never takes the last chat slot.'),
        h('div', { class: 'table-wrap' }, h('table', null,
          h('thead', null,
            h('tr', null, h('th', { scope: 'col', rowspan: 2 }, 'Pool'), h('th', { scope: 'col', rowspan: 2 }, 'Slots'),
              h('th', { scope: 'colgroup', colspan: 2 }, 'In flight'), h('th', { scope: 'colgroup', colspan: 2 }, 'Queued'),
              h('th', { scope: 'col', rowspan: 2 }, 'Background max'), h('th', { scope: 'col', rowspan: 2 }, 'Holds')),
            h('tr', null, ['interactive', 'background', 'interactive', 'background'].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', null, s.pools.map(laneRow))))));
  }

  async function load() {
    try {
      const s = await get('/api/admin/status');
      if (!alive) return;
      draw(s);
      set(updated, `Updated ${new Date().toLocaleTimeString()}; refreshes every 5 seconds.`);
    } catch (e) {
      if (alive) set(updated, h('span', { class: 'error' }, e.message));
    }
    if (alive) timer = setTimeout(load, 5000);
  }
  set(root, h('h1', null, 'Stack health'), updated, body);
  load();
  return () => { alive = false; clearTimeout(timer); };
}
