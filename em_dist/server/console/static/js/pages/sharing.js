// Sharing of a folder you own: who sees it, share with another user, revoke a share.
// The console session only reads, so each change asks for your API key (sent once, not kept).

import * as api from '../api.js';
import { clear, h } from '../dom.js';

export async function renderSharing(page, ctx, folderId) {
  const folder = (ctx.state.folders || []).find((f) => f.id === folderId);
  ctx.crumbs(...ctx.folderPath(folderId), h('span', {}, 'sharing'));
  const list = h('table', { id: 'shares-table' });
  const message = h('p', { class: 'error', id: 'sharing-error', role: 'alert' });
  const key = h('input', { type: 'password', id: 'sharing-key', placeholder: 'em_…', autocomplete: 'off' });
  const user = h('input', { type: 'text', id: 'share-user', placeholder: 'user name' });
  const permission = h('select', { id: 'share-permission' }, h('option', { value: 'view' }, 'view'), h('option', { value: 'edit' }, 'edit'));
  const add = h('button', { type: 'submit', class: 'primary', id: 'share-add' }, 'Share');
  const form = h('form', { class: 'toolbar', id: 'share-form' }, h('label', {}, 'user ', user), h('label', {}, 'permission ', permission), add);

  const act = async (fn) => {
    message.textContent = '';
    if (!key.value.trim()) { message.textContent = 'Changing a share needs your API key (the console session only reads).'; return false; }
    try { await fn(key.value.trim()); await load(); return true; } catch (error) { message.textContent = error.message; return false; }
  };
  const load = async () => {
    const rows = await api.shares(folderId);
    clear(list, h('tr', {}, h('th', {}, 'User'), h('th', {}, 'Permission'), h('th', {}, '')),
      rows.map((s) => h('tr', { dataset: { user: s.user } }, h('td', {}, s.user), h('td', {}, s.permission),
        h('td', {}, h('button', { type: 'button', class: 'unshare', onclick: () => act((k) => api.unshare(folderId, s.user, k)) }, 'Unshare')))),
      rows.length ? null : h('tr', {}, h('td', { colspan: 3, class: 'muted' }, 'Not shared with anyone.')));
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    act((k) => api.share(folderId, user.value.trim(), permission.value, k)).then((done) => { if (done) user.value = ''; });
  });
  clear(page, h('h1', {}, `Sharing of ${folder ? folder.path : 'a folder'}`),
    h('label', { for: 'sharing-key' }, 'Your API key (for changes) '), key, form, message, list);
  await load();
}
