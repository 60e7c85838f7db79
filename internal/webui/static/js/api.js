// The API client. The key lives in sessionStorage (this tab only, gone when it closes) and
// travels in the Authorization header only: never in a URL, never in a cookie (fetch sends
// none: credentials 'omit'), so no other site can make a request that carries it.

const KEY = 'rag.apiKey';

export const session = {
  get key() { return sessionStorage.getItem(KEY) || ''; },
  set key(k) { k ? sessionStorage.setItem(KEY, k) : sessionStorage.removeItem(KEY); },
};

/** ApiError is a refused or failed request, with a sentence for people. */
export class ApiError extends Error {
  constructor(status, serverText, retryAfter) {
    super(explain(status, serverText, retryAfter));
    this.status = status;
    this.serverText = serverText || '';
    this.retryAfter = retryAfter;
  }
}

const unauthorized = new EventTarget();
/** onUnauthorized runs f when any request answers 401 (the key was revoked or is wrong). */
export const onUnauthorized = (f) => unauthorized.addEventListener('401', f);

function clean(text) {
  text = (text || '').trim();
  if (!text) return '';
  text = text[0].toUpperCase() + text.slice(1);
  return /[.!?…]$/.test(text) ? text : text + '.';
}

function later(retryAfter) {
  const n = parseInt(retryAfter, 10);
  return n > 0 ? `Try again in ${n} second${n === 1 ? '' : 's'}.` : 'Try again shortly.';
}

/** explain turns any status the API can return into a sentence (with the server's own words). */
export function explain(status, serverText, retryAfter) {
  const why = clean(serverText);
  switch (status) {
    case 0: return 'The server could not be reached. Check that it is running and that this device is online.';
    case 400: return `The server refused the request as invalid. ${why}`.trim();
    case 401: return 'This API key is not accepted. Sign in again with a valid key.';
    case 403: return `Your key is not allowed to do this. ${why}`.trim();
    case 404: return 'Not found: it may have been deleted, or your key may not see it.';
    case 409: return `Conflict. ${why}`.trim();
    case 413: return `Too large. ${why}`.trim();
    case 415: return `This type of file or content is not accepted. ${why}`.trim();
    case 422: return `The file could not be read. ${why}`.trim();
    case 429: return `The server is busy. ${why} ${later(retryAfter)}`.replace(/\s+/g, ' ').trim();
    case 500: return 'The server hit an internal error. Try again; if it persists, the server log says why.';
    case 502: return `A service the server relies on did not answer. ${why || 'The language model or the vector store is down.'} Try again shortly.`;
    case 503: return `The server cannot take this now. ${why} ${later(retryAfter)}`.replace(/\s+/g, ' ').trim();
    case 504: return 'The answer took longer than the server allows. Try again, or ask a shorter question.';
    default: return `Unexpected answer from the server (HTTP ${status}). ${why}`.trim();
  }
}

function headers(extra) {
  const h = new Headers(extra);
  if (session.key) h.set('Authorization', `Bearer ${session.key}`);
  return h;
}

/** request sends one API call; JSON in (json) and out. Throws ApiError. */
export async function request(method, path, { json, signal, key } = {}) {
  const h = headers(json !== undefined ? { 'Content-Type': 'application/json' } : {});
  if (key !== undefined) key ? h.set('Authorization', `Bearer ${key}`) : h.delete('Authorization');
  let res;
  try {
    res = await fetch(path, {
      method, headers: h, signal, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
      body: json !== undefined ? JSON.stringify(json) : undefined,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0);
  }
  let data = null;
  if (res.status !== 204) {
    try { data = await res.json(); } catch { data = null; }
  }
  if (!res.ok) {
    if (res.status === 401 && key === undefined) unauthorized.dispatchEvent(new Event('401'));
    throw new ApiError(res.status, data && data.error, res.headers.get('Retry-After'));
  }
  return data;
}

export const get = (path, opts) => request('GET', path, opts);

/**
 * upload sends one file in its own request so its progress is its own. Resolves with the
 * server's result for the file ({status, error, id, existingId, document}) whatever the
 * status; rejects only when no answer came (network).
 */
export function upload(file, tags, onProgress, signal) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/documents');
    if (session.key) xhr.setRequestHeader('Authorization', `Bearer ${session.key}`);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { body = null; }
      if (xhr.status === 401) unauthorized.dispatchEvent(new Event('401'));
      const f = body && Array.isArray(body.files) && body.files[0];
      if (f) resolve({ ...f, retryAfter: xhr.getResponseHeader('Retry-After') });
      else resolve({ status: xhr.status, error: body && body.error, retryAfter: xhr.getResponseHeader('Retry-After') });
    };
    xhr.onerror = () => resolve({ status: 0 });
    xhr.onabort = () => resolve({ status: -1 });
    if (signal) signal.addEventListener('abort', () => xhr.abort());
    const form = new FormData();
    if (tags) form.append('tags', tags);
    form.append('file', file, file.name);
    xhr.send(form);
  });
}

/**
 * chatStream posts a streamed question and calls onToken(text) per token; resolves with the
 * done event's data. A refusal before the stream opened throws ApiError with its own status;
 * an error event after it throws ApiError(502, message).
 */
export async function chatStream(body, onToken, signal) {
  let res;
  try {
    res = await fetch('/api/chat', {
      method: 'POST', signal, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
      headers: headers({ 'Content-Type': 'application/json', Accept: 'text/event-stream' }),
      body: JSON.stringify({ ...body, stream: true }),
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0);
  }
  if (!res.ok) {
    let data = null;
    try { data = await res.json(); } catch { data = null; }
    if (res.status === 401) unauthorized.dispatchEvent(new Event('401'));
    throw new ApiError(res.status, data && data.error, res.headers.get('Retry-After'));
  }
  if (!(res.headers.get('Content-Type') || '').startsWith('text/event-stream')) {
    return res.json(); // a cached or no-context answer may come whole
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).trim();
      }
      if (!data) continue;
      const v = JSON.parse(data);
      if (event === 'token') onToken(v.content || '');
      else if (event === 'done') return v;
      else if (event === 'error') throw new ApiError(v.status || 502, v.error);
    }
  }
  throw new ApiError(502, 'the answer stream ended early');
}
