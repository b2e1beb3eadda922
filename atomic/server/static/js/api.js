// The server's API as the page uses it: JSON over fetch, the API key, the WebSocket URL.
//
// The key, when the server asks for one, lives in sessionStorage (this tab only, gone when
// it closes) and goes out as `Authorization: Bearer`. A browser cannot set headers on a
// WebSocket, so there it travels as `?token=`, the contract's own mechanism for that case.

const KEY = 'atomic.apiKey';

export const key = {
  get: () => sessionStorage.getItem(KEY) || '',
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra) {
  const out = {...extra};
  const k = key.get();
  if (k) out.Authorization = `Bearer ${k}`;
  return out;
}

// A 401 anywhere tells the page to ask for a key.
function unauthorized() {
  window.dispatchEvent(new CustomEvent('atomic:unauthorized'));
}

export async function request(path, {method = 'GET', body, raw = false} = {}) {
  const init = {method, headers: headers(), cache: 'no-store', credentials: 'omit'};
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, 'network_error', `the server did not answer (${err.message})`);
  }
  if (resp.status === 401) unauthorized();
  if (!resp.ok) {
    let error = {};
    try {
      error = (await resp.json()).error || {};
    } catch {
      // not the contract's error body: keep the status line
    }
    throw new ApiError(resp.status, error.code || `http_${resp.status}`, error.message || resp.statusText);
  }
  return raw ? resp : resp.json();
}

export const get = (path) => request(path);

// GET that answers null on 404 (a route this server does not have yet).
export async function optional(path) {
  try {
    return await request(path);
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

export function wsURL() {
  const url = new URL('/ws/stream', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const k = key.get();
  if (k) url.searchParams.set('token', k);
  return url.href;
}

// The fields POST /api/generate takes, read from /openapi.json: the page offers test cases
// and samples only to a server that accepts them. null when the schema cannot be read.
export async function generateFields() {
  let doc;
  try {
    doc = await request('/openapi.json');
  } catch {
    return null;
  }
  const resolve = (schema) => {
    const ref = schema && schema.$ref;
    if (!ref || !ref.startsWith('#/')) return schema;
    return ref.slice(2).split('/').reduce((node, part) => (node ? node[part] : undefined), doc);
  };
  try {
    const op = doc.paths['/api/generate'].post;
    let schema = resolve(op.requestBody.content['application/json'].schema);
    if (schema && !schema.properties && Array.isArray(schema.allOf)) {
      schema = {properties: Object.assign({}, ...schema.allOf.map((s) => resolve(s).properties || {}))};
    }
    return new Set(Object.keys(schema.properties || {}));
  } catch {
    return null;
  }
}

// Save an artifact: a fetch with the key (a plain link cannot carry the header), then a
// download of the bytes under the server's file name.
export async function download(url, fallbackName) {
  const resp = await request(url, {raw: true});
  const blob = await resp.blob();
  const disposition = resp.headers.get('Content-Disposition') || '';
  const match = /filename="?([^";]+)"?/.exec(disposition);
  const name = (match && match[1]) || fallbackName;
  const href = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = href;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}
