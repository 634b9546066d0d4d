// The management API over the console session: the cookie travels by itself
// (same origin); every state-changing call also sends the CSRF token.

let csrfToken = null;
const listeners = { unauthorized: () => {}, passwordRequired: () => {} };

export function setCsrf(token) {
  csrfToken = token || null;
}

export function onAuthProblem(kind, fn) {
  listeners[kind] = fn;
}

/** An error answer of the API, carrying its problem+json body. */
export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem && (problem.detail || problem.title);
    super(typeof detail === 'string' && detail ? detail : `The server answered ${status}.`);
    this.status = status;
    this.code = problem && problem.code;
    this.problem = problem;
  }
}

/** Builds `?a=1&b=2`, leaving out empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const apiUrl = (path) => `/api/v1${path}`;

/**
 * Calls the API. `body` is sent as JSON unless `opts.contentType` is given
 * (then it goes as is: a File or a string).
 */
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  let payload;
  if (body !== undefined) {
    if (opts.contentType) {
      headers['Content-Type'] = opts.contentType;
      payload = body;
    } else {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
  }
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let res;
  try {
    res = await fetch(apiUrl(path), { method, headers, body: payload, credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, { detail: 'The server cannot be reached. Check your connection and retry.' });
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text.slice(0, 300) };
    }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && !opts.quiet) listeners.unauthorized(err);
    if (res.status === 403 && err.code === 'PASSWORD_CHANGE_REQUIRED') listeners.passwordRequired(err);
    throw err;
  }
  return data;
}

export const get = (path, opts) => api('GET', path, undefined, opts);
export const post = (path, body, opts) => api('POST', path, body === undefined ? {} : body, opts);
export const patch = (path, body) => api('PATCH', path, body);
export const del = (path) => api('DELETE', path);
