// The REST API the upload client uses, called with the session cookie.

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export const API = 'api/v1';  // relative: a server under a path prefix (--root-path) keeps it

export async function api(path, { method = 'GET', headers = {}, body } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(API + path, init);
  if (response.status === 204) return null;
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (!response.ok) {
    const message = (data && data.detail) || `${response.status} ${response.statusText}`;
    const error = new ApiError(response.status, message);
    if (response.status === 401 && !headers.Authorization) window.dispatchEvent(new CustomEvent('em:unauthorized'));
    throw error;
  }
  return data;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, v);
  return q.toString();
}

// The session's CSRF token (from GET or POST /session): sent as X-CSRF-Token with the run edits,
// the only writes a console session may make. Page scripts never see the cookie itself.
let csrf = null;
const CSRF_HEADER = 'X-CSRF-Token';

export async function signIn(key) {
  const response = await fetch(`${API}/session`, {
    method: 'POST', credentials: 'same-origin', headers: { Authorization: `Bearer ${key}` },
  });
  if (!response.ok) {
    let detail = `${response.status}`;
    try { detail = (await response.json()).detail || detail; } catch { /* keep the status */ }
    throw new ApiError(response.status, detail);
  }
  const body = await response.json();
  csrf = body.csrf || null;
  return body;
}

export const signOut = () => api('/session', { method: 'DELETE' }).finally(() => { csrf = null; });
let local = false;  // the local console (em console): it shows run folders on disk and offers no edits
export const isLocal = () => local;
export async function session() {
  const body = await api('/session');
  csrf = (body && body.csrf) || null;
  local = Boolean(body && body.auto);
  return body;
}
export const me = () => api('/me');
export const folders = () => api('/folders');
export const folderRuns = (id) => api(`/folders/${encodeURIComponent(id)}/runs`);
export const searchRuns = (params) => api(`/runs?${query(params)}`);
export const folderArtifacts = (id) => api(`/folders/${encodeURIComponent(id)}/artifacts`);
export const run = (id) => api(`/runs/${encodeURIComponent(id)}`);
export const artifact = (id) => api(`/artifacts/${encodeURIComponent(id)}`);
export const lineage = (id, depth = 2) => api(`/lineage/${encodeURIComponent(id)}?depth=${depth}`);
export const metricNames = (id) => api(`/runs/${encodeURIComponent(id)}/metrics/names`);
export const metrics = (id, params) => api(`/runs/${encodeURIComponent(id)}/metrics?${query(params)}`);
export const rankTiming = (id) => api(`/runs/${encodeURIComponent(id)}/ranks`);
export const aggregate = (id, params) => api(`/runs/${encodeURIComponent(id)}/metrics/aggregate?${query(params)}`);

// Run edits ride on the session, with its CSRF token (the server also checks the request's origin).
// A token gone stale (a new session: signed in again, or the local console's renewed one) is
// fetched again once.
async function sessionWrite(path, method, body) {
  if (!csrf) await session();
  const send = () => api(path, { method, headers: { [CSRF_HEADER]: csrf || '' }, body });
  try {
    return await send();
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 403 || !/CSRF/.test(error.message)) throw error;
    await session();
    return send();
  }
}
export const editRun = (id, changes) => sessionWrite(`/runs/${encodeURIComponent(id)}`, 'PATCH', changes);
export const deleteRun = (id) => sessionWrite(`/runs/${encodeURIComponent(id)}`, 'DELETE');

export const shares = (id) => api(`/folders/${encodeURIComponent(id)}/shares`);
// Sharing never rides on the session: the key is sent with this one request and not kept.
const withKey = (key) => ({ Authorization: `Bearer ${key}` });
export const share = (id, user, permission, key) => api(`/folders/${encodeURIComponent(id)}/shares`,
  { method: 'POST', headers: withKey(key), body: { user, permission } });
export const unshare = (id, user, key) => api(`/folders/${encodeURIComponent(id)}/shares/${encodeURIComponent(user)}`,
  { method: 'DELETE', headers: withKey(key) });

export function fileUrl(artifactId, path) {
  return `${API}/artifacts/${encodeURIComponent(artifactId)}/files/${path.split('/').map(encodeURIComponent).join('/')}`;
}
