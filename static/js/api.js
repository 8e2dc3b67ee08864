// The HTTP client: every request of the page goes through here.  It adds the API key, turns
// the server's JSON errors ({"error": {"code", "message"}}) into ApiError, and runs
// asynchronous jobs (202 + /v1/jobs/{id}/events) for the tabs.

import { readEvents } from './sse.js';

const KEY_STORE = 'scored.apiKey';

export function apiKey() {
  try {
    return localStorage.getItem(KEY_STORE) || '';
  } catch {
    return '';
  }
}

export function setApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORE, key);
    else localStorage.removeItem(KEY_STORE);
  } catch {
    /* storage blocked: the key lives for this page only */
  }
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }

  /** "422 invalid_argument: sampler.steps: ..." */
  describe() {
    return this.status ? `${this.status} ${this.code}: ${this.message}` : this.message;
  }
}

function headersWith(extra = {}) {
  const h = new Headers(extra);
  const key = apiKey();
  if (key) h.set('Authorization', `Bearer ${key}`);
  return h;
}

async function errorOf(resp) {
  let code = `http_${resp.status}`;
  let message = resp.statusText || 'request failed';
  try {
    const body = await resp.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(resp.status, code, message);
}

/**
 * One request.  body: a plain object (sent as JSON) or FormData (multipart).
 * Resolves to the Response when its status is 2xx, else rejects with ApiError.
 */
export async function request(method, path, { body, headers = {}, signal } = {}) {
  const init = { method, headers: headersWith(headers), signal };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers.set('Content-Type', 'application/json');
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', `no answer from the server (${e.message})`);
  }
  if (!resp.ok) throw await errorOf(resp);
  return resp;
}

export async function getJson(path, opts) {
  return (await request('GET', path, opts)).json();
}

export const modelPath = (id, task) =>
  `/v1/models/${encodeURIComponent(id)}${task ? `/${task}` : ''}`;

/**
 * Submits a job asynchronously (Prefer: respond-async), follows its event stream and resolves
 * to the finished Job object (status done, failed or cancelled).
 * on: {accepted(info), progress(data), preview(data), event(name, data)}.
 */
export async function runJob(path, body, on = {}) {
  const resp = await request('POST', path, { body, headers: { Prefer: 'respond-async' } });
  if (resp.status !== 202) {
    // A server that answered synchronously after all: the body is the result.
    const result = await resp.json();
    return { status: 'done', result };
  }
  const accepted = await resp.json();
  on.accepted?.(accepted);
  let final = null;
  try {
    const events = await request('GET', `${accepted.url}/events`, {
      headers: { Accept: 'text/event-stream' },
    });
    for await (const ev of readEvents(events.body)) {
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch {
        continue;
      }
      on.event?.(ev.event, data);
      if (ev.event === 'progress') on.progress?.(data);
      else if (ev.event === 'preview') on.preview?.(data);
      else if (['done', 'failed', 'cancelled'].includes(ev.event)) final = data;
    }
  } catch (e) {
    if (!(e instanceof ApiError) || e.status === 0) throw e;
  }
  // The stream ended without a final event (a proxy cut it, say): ask for the job itself.
  return final || getJson(accepted.url);
}

export async function cancelJob(url) {
  return (await request('DELETE', url)).json();
}
