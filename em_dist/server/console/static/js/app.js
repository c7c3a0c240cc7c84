// The console shell: sign-in state, folder tree, breadcrumbs and a hash router.

import * as api from './api.js';
import { clear, h } from './dom.js';
import { renderSignIn } from './pages/signin.js';
import { renderFolder } from './pages/folder.js';
import { renderRun } from './pages/run.js';
import { renderArtifact } from './pages/artifact.js';
import { renderCompare } from './pages/compare.js';
import { renderHelp } from './pages/help.js';
import { renderSharing } from './pages/sharing.js';

const page = document.getElementById('page');
const sidebar = document.getElementById('sidebar');
const tree = document.getElementById('folder-tree');
const crumbs = document.getElementById('crumbs');
const whoami = document.getElementById('whoami');
const signout = document.getElementById('signout');

const state = { user: null, auto: false, folders: [], timers: [], generation: 0 };

// Page context: timers die with the page, so a live poll never outlives its view.
function context(generation) {
  return {
    state,
    alive: () => generation === state.generation,
    every(ms, fn) {  // returns a function that stops this timer
      const id = setInterval(() => { if (generation === state.generation) fn(); }, ms);
      state.timers.push(id);
      return () => clearInterval(id);
    },
    crumbs: setCrumbs,
    folderPath,
    // Keep a view's state in the URL (shareable as a link) without re-rendering the page.
    setParams(values) {
      const [path] = location.hash.replace(/^#/, '').split('?');
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(values)) if (v !== undefined && v !== null && v !== '' && v !== false) q.set(k, v);
      const search = q.toString();
      history.replaceState(null, '', `#${path}${search ? `?${search}` : ''}`);
    },
  };
}

function setCrumbs(...parts) {
  clear(crumbs, parts.flatMap((p, i) => [i ? h('span', { class: 'sep' }, '/') : null, p]));
}

function folderPath(folderId) {
  const byId = new Map(state.folders.map((f) => [f.id, f]));
  const chain = [];
  for (let f = byId.get(folderId); f; f = byId.get(f.parent_id)) chain.unshift(f);
  return chain.map((f) => h('a', { href: `#/folder/${f.id}` }, f.name));
}

function renderTree(currentFolder) {
  const children = new Map();
  for (const f of state.folders) {
    const key = state.folders.some((p) => p.id === f.parent_id) ? f.parent_id : null;
    if (!children.has(key)) children.set(key, []);
    children.get(key).push(f);
  }
  const build = (parent) => (children.get(parent) || [])
    .sort((a, b) => a.path.localeCompare(b.path))
    .map((f) => h('li', {},
      h('a', { href: `#/folder/${f.id}`, class: f.id === currentFolder ? 'current' : '',
               title: f.owner ? `${f.path} (owner ${f.owner})` : f.path, dataset: { folder: f.path } }, f.name),
      f.permission === 'owner' && !state.auto ? h('a', { href: `#/sharing/${f.id}`, class: 'share-link', title: `share ${f.path}` }, ' ⇄') : null,
      children.has(f.id) ? h('ul', {}, build(f.id)) : null));
  clear(tree, build(null));
  if (!state.folders.length) clear(tree, h('li', { class: 'muted' }, 'no folders yet'));
}

async function loadFolders() {
  state.folders = await api.folders();
  return state.folders;
}

async function ensureSignedIn() {
  if (state.user) return true;
  try {
    const session = await api.session();
    state.auto = Boolean(session && session.auto);
    state.user = await api.me();
  } catch (error) {
    if (error.status === 401) return false;
    throw error;
  }
  whoami.textContent = state.auto ? 'local console' : `signed in as ${state.user.name}`;
  signout.hidden = state.auto;
  await loadFolders();
  return true;
}

function parseRoute() {
  const [path, search = ''] = location.hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(search) };
}

async function route() {
  state.generation += 1;
  state.timers.forEach(clearInterval);
  state.timers = [];
  const ctx = context(state.generation);
  const { parts, params } = parseRoute();
  try {
    if (parts[0] === 'signin' || !(await ensureSignedIn())) {
      sidebar.hidden = true;
      signout.hidden = true;
      whoami.textContent = '';
      setCrumbs();
      return renderSignIn(page, ctx, async () => {
        state.user = null;
        await ensureSignedIn();
        location.hash = '#/';
      });
    }
    sidebar.hidden = false;
    const [kind, id, tab] = parts;
    if (kind === 'folder' && id) {
      if (!state.folders.some((f) => f.id === id)) await loadFolders();
      renderTree(id);
      return await renderFolder(page, ctx, id, params);
    }
    renderTree(null);
    if (kind === 'run' && id) return await renderRun(page, ctx, id, tab || 'overview', params);
    if (kind === 'artifact' && id) return await renderArtifact(page, ctx, id);
    if (kind === 'sharing' && id) return await renderSharing(page, ctx, id);
    if (kind === 'compare') return await renderCompare(page, ctx, (id || '').split(',').filter(Boolean), params);
    if (kind === 'help') return renderHelp(page, ctx);
    await loadFolders();
    const first = state.folders.find((f) => f.path === 'default') || state.folders[0];
    if (first) { location.replace(`#/folder/${first.id}`); return undefined; }
    renderTree(null);
    setCrumbs();
    clear(page, h('h1', {}, 'No runs yet'),
      h('p', { class: 'muted' }, 'Upload a run (run.upload() or "em run upload") and it appears here.'));
  } catch (error) {
    if (error.status === 401) { state.user = null; location.hash = '#/signin'; return undefined; }
    const [kind] = parts;
    setCrumbs(h('a', { href: '#/' }, 'Home'), h('span', { dataset: { testid: 'error-crumb' } },
      `${kind ? `${kind} ${parts[1] ? parts[1].slice(0, 8) : ''}`.trim() : 'page'}: not available`));
    clear(page, h('h1', {}, 'Something went wrong'), h('p', { class: 'error', dataset: { testid: 'page-error' } }, error.message),
      h('p', {}, h('a', { href: '#/' }, 'Back to your folders')));
  }
  return undefined;
}

signout.addEventListener('click', async () => {
  await api.signOut().catch(() => null);
  state.user = null;
  location.hash = '#/signin';
});
window.addEventListener('em:unauthorized', () => {
  if (state.user && !state.auto) { state.user = null; location.hash = '#/signin'; }
});
window.addEventListener('hashchange', route);
route();
