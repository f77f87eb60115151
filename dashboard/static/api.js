// The /v1 API, with the session's cookie (sent by the browser) and, on every change, its CSRF
// token. Errors are APIError, carrying the API's code, message and field(s).

let csrf = '';
let onSignedOut = () => {};

// setSession remembers the CSRF token of the signed-in session; whenSignedOut sets what to do
// when a request finds the session gone (401).
export function setSession(token) { csrf = token || ''; }
export function whenSignedOut(fn) { onSignedOut = fn; }

export class APIError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `request failed (${status})`);
    this.status = status;
    this.code = e.code || '';
    this.field = e.field || '';
    this.fields = e.fields || [];
  }
}

// request(method, path, {body, accept, headers, quiet401}) answers {data, etag, headers} or
// throws APIError. data is the decoded JSON, the text for other types, null for 204.
export async function request(method, path, opts = {}) {
  const headers = { Accept: opts.accept || 'application/json', ...(opts.headers || {}) };
  let body;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  if (method !== 'GET' && method !== 'HEAD') headers['X-Earpiece-CSRF'] = csrf;
  let res;
  try {
    res = await fetch(path, { method, headers, body, credentials: 'same-origin', cache: 'no-store' });
  } catch (err) {
    throw new APIError(0, { error: { code: 'offline', message: 'earpiece cannot be reached; check the connection' } });
  }
  if (!res.ok) {
    let b = null;
    try { b = await res.json(); } catch { /* not JSON */ }
    if (res.status === 401 && !opts.quiet401) onSignedOut();
    throw new APIError(res.status, b);
  }
  let data = null;
  if (res.status !== 204) {
    const ct = res.headers.get('Content-Type') || '';
    data = ct.startsWith('application/json') ? await res.json() : await res.text();
  }
  return { data, etag: res.headers.get('ETag') || '', headers: res.headers };
}

// api() is request() answering the data only.
export async function api(method, path, body) {
  return (await request(method, path, body === undefined ? {} : { body })).data;
}

// enc() escapes one path segment.
export const enc = encodeURIComponent;
