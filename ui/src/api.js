// api.js - the editor's calls to `flowbus ui` (docs/http-api.md). Same-origin
// fetch sends the token cookie the server set; every error comes back as an
// ApiError carrying the server's one error body (status, error, diagnostics).

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.diagnostics = (body && body.diagnostics) || [];
  }
}

async function call(method, path, body, headers = {}) {
  const opts = { method, headers: { ...headers }, credentials: 'same-origin' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (_) {
      data = { error: `HTTP ${res.status}: ${text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 120)}` };
    }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  if (data && typeof data === 'object' && res.headers.get('ETag') && !data.etag) data.etag = res.headers.get('ETag');
  return data;
}

const f = (file) => encodeURIComponent(file);

export const api = {
  info: () => call('GET', '/api/info'),
  plugins: () => call('GET', '/api/plugins'),
  newPlugin: (form) => call('POST', '/api/plugins', form),
  workflows: () => call('GET', '/api/workflows'),
  workflow: (file) => call('GET', `/api/workflows/${f(file)}`),
  save: (file, yaml, etag) => call('PUT', `/api/workflows/${f(file)}`, { yaml }, etag ? { 'If-Match': etag } : {}),
  create: (file, yaml) => call('POST', '/api/workflows', yaml === undefined ? { file } : { file, yaml }),
  validate: (yaml, file) => call('POST', '/api/validate', { yaml, file }),
  format: (model, file) => call('POST', '/api/format', file ? { model, file } : { model }),
  runs: () => call('GET', '/api/runs'),
  run: (id) => call('GET', `/api/runs/${f(id)}`),
  start: (file, mode, set) => call('POST', '/api/runs', { file, mode, ...(set && Object.keys(set).length ? { set } : {}) }),
  control: (id, cmd) => call('POST', `/api/runs/${f(id)}/${cmd}`, {}),
  setVars: (id, vars) => call('POST', `/api/runs/${f(id)}/set`, vars),
};

export const runEventsUrl = (id) => `/api/runs/${f(id)}/events`;
export const runsEventsUrl = '/api/events';
