// The run page: header (with the edits a user with edit permission makes: name, labels, description,
// archive/restore, delete), tabs, and the Overview, Hparams and Artifacts tabs.

import * as api from '../api.js';
import {
  clear, isLive, fmtBytes, fmtDuration, fmtMetric, fmtTime, fmtValue, h, labels, link, runBadge, runDuration, runFolderName, runTitle,
} from '../dom.js';
import { renderDataflow } from '../dataflow.js';
import { metricGroups, renderMetrics } from './metrics.js';
import { flatHparams } from '../runtable.js';
import { renderPlatform } from './platform.js';
import { renderRanks } from './ranks.js';
import { lastLinesPanel, renderLogs } from './logs.js';
import { renderMedia } from './media.js';

const TABS = [
  ['overview', 'Overview'], ['platform', 'Platform'], ['metrics', 'Metrics'], ['system', 'System'], ['ranks', 'Ranks'],
  ['hparams', 'Hparams'], ['media', 'Media'], ['artifacts', 'Artifacts'], ['dataflow', 'Dataflow'], ['logs', 'Logs'],
];


export async function renderRun(page, ctx, runId, tab, params) {
  let run = await api.run(runId);
  const crumbs = (r) => ctx.crumbs(...ctx.folderPath(r.folder_id), h('span', { title: runFolderName(r) || null }, runTitle(r)));
  crumbs(run);
  const body = h('div', { id: 'tab-body', dataset: { tab } });
  const header = h('div', { class: 'toolbar run-header' });
  const editor = h('div', { id: 'run-editor' });
  // the run's name is the title; its local folder name (which the server may list it under) sits beside it, smaller
  const drawHeader = (r) => clear(header, h('h1', { id: 'run-title' }, runTitle(r)),
    runFolderName(r) ? h('span', { class: 'alt-name', title: 'local folder name' }, runFolderName(r)) : null, runBadge(r),
    r.archived ? h('span', { class: 'label archived', id: 'archived-badge' }, 'archived') : null,
    h('span', { class: 'muted' }, `world size ${r.world_size}`), h('span', { id: 'run-labels' }, labels(r.labels)),
    canEdit(r) ? editActions(r, editor, {
      changed: (fresh) => {
        run = { ...run, ...fresh };
        crumbs(run);
        drawHeader(run);
        if (tab === 'overview') { const summary = body.querySelector('#overview-summary'); renderOverview(body, run); if (summary) body.children[0].after(summary); }
      },
      deleted: () => { location.hash = `#/folder/${run.folder_id}`; },
    }) : null);
  drawHeader(run);
  clear(page, header, editor,
    h('nav', { class: 'tabs', role: 'tablist' }, TABS.map(([key, text]) => h('a', {
      href: `#/run/${runId}/${key}`, role: 'tab', class: key === tab ? 'active' : '', dataset: { tab: key } }, text))),
    body);
  if (isLive(run)) {
    const stopPolling = ctx.every(3000, async () => {
      const fresh = await api.run(runId).catch(() => null);  // a failed poll is retried next tick
      if (fresh && ctx.alive()) { run = fresh; drawHeader(fresh); }
      if (fresh && !isLive(fresh)) stopPolling();
    });
  }
  switch (tab) {
    case 'platform': return renderPlatform(body, run);
    case 'metrics': return renderMetrics(body, ctx, run, params, { exclude: 'system' });
    case 'system': return renderMetrics(body, ctx, run, params, { only: 'system', axis: 'time' });
    case 'ranks': return renderRanks(body, run);
    case 'hparams': return renderHparams(body, run);
    case 'artifacts': return renderArtifacts(body, run);
    case 'dataflow': return renderDataflow(body, runId);
    case 'logs': return renderLogs(body, ctx, run, params);
    case 'media': return renderMedia(body, ctx, run, params);
    default: {
      renderOverview(body, run);
      const summary = await summaryPanel(run).catch(() => null);  // the run is shown even if this fails
      if (summary && ctx.alive()) body.children[0].after(summary);
      if (run.status === 'Failed') {  // what a user reads after a crash: each rank's last lines
        const panel = await lastLinesPanel(run);
        if (panel && ctx.alive()) body.prepend(panel);
      }
      return undefined;
    }
  }
}

// the local console (em console) shows run folders on disk: it offers no edits (they would vanish with it)
const canEdit = (run) => !api.isLocal() && (run.permission === 'owner' || run.permission === 'edit');

// Edit, Archive/Restore and Delete: each a write on the console session (PATCH/DELETE /runs/{id}).
function editActions(run, editor, { changed, deleted }) {
  const error = (e) => h('p', { class: 'error', role: 'alert', id: 'run-edit-error' }, e.message);
  const edit = h('button', { type: 'button', id: 'run-edit' }, 'Edit');
  const archive = h('button', { type: 'button', id: 'run-archive' }, run.archived ? 'Restore' : 'Archive');
  const remove = h('button', { type: 'button', id: 'run-delete', class: 'danger' }, 'Delete');
  edit.addEventListener('click', () => clear(editor, editForm(run, editor, changed, error)));
  archive.addEventListener('click', async () => {
    archive.disabled = true;
    try {
      changed(await api.editRun(run.id, { archived: !run.archived }));
      clear(editor);
    } catch (e) { clear(editor, error(e)); archive.disabled = false; }
  });
  remove.addEventListener('click', () => clear(editor, deleteForm(run, editor, deleted, error)));
  return h('span', { class: 'run-actions' }, edit, archive, remove);
}

function editForm(run, editor, changed, error) {
  const name = h('input', { type: 'text', id: 'edit-name', value: run.name, required: true, maxlength: 500, autocomplete: 'off' });
  const tags = h('input', { type: 'text', id: 'edit-labels', value: (run.labels || []).join(', '), autocomplete: 'off',
    placeholder: 'baseline, lr-sweep' });
  const notes = h('textarea', { id: 'edit-description', rows: 4 });
  notes.value = run.description || '';
  const save = h('button', { type: 'submit', id: 'edit-save' }, 'Save');
  const cancel = h('button', { type: 'button', id: 'edit-cancel' }, 'Cancel');
  const message = h('div');
  const form = h('form', { class: 'panel run-edit', id: 'run-edit-form' },
    h('h2', { style: 'margin-top:0' }, 'Edit run'),
    h('label', { for: 'edit-name' }, 'Name'), name,
    h('label', { for: 'edit-labels' }, 'Labels (comma-separated)'), tags,
    h('label', { for: 'edit-description' }, 'Description'), notes,
    h('div', { class: 'toolbar' }, save, cancel), message);
  cancel.addEventListener('click', () => clear(editor));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    save.disabled = true;
    const changes = {
      labels: tags.value.split(',').map((t) => t.trim()).filter(Boolean),
      description: notes.value,
    };
    if (name.value.trim() !== run.name) changes.name = name.value.trim();
    try {
      changed(await api.editRun(run.id, changes));
      clear(editor);
    } catch (e) { clear(message, error(e)); save.disabled = false; }
  });
  return form;
}

// Deleting asks first, naming the run; the button works once its name is typed.
function deleteForm(run, editor, deleted, error) {
  const title = runTitle(run);
  const typed = h('input', { type: 'text', id: 'delete-confirm-name', autocomplete: 'off', 'aria-label': 'the run name, to confirm' });
  const confirm = h('button', { type: 'submit', id: 'delete-confirm', class: 'danger', disabled: true }, `Delete ${title}`);
  const cancel = h('button', { type: 'button', id: 'delete-cancel' }, 'Cancel');
  const message = h('div');
  typed.addEventListener('input', () => { confirm.disabled = typed.value !== title; });
  const form = h('form', { class: 'panel run-delete', id: 'run-delete-form', role: 'alertdialog' },
    h('p', { id: 'delete-question' }, 'Delete the run ', h('strong', {}, title), ` (${run.id.slice(0, 8)}) for everyone? `,
      'Its metrics, logs and lineage go with it; its artifacts stay. This cannot be undone.'),
    h('label', { for: 'delete-confirm-name' }, `Type ${title} to confirm`), typed,
    h('div', { class: 'toolbar' }, confirm, cancel), message);
  cancel.addEventListener('click', () => clear(editor));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (typed.value !== title) return;
    confirm.disabled = true;
    try {
      await api.deleteRun(run.id);
      deleted();
    } catch (e) { clear(message, error(e)); confirm.disabled = false; }
  });
  return form;
}

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
}

function rank0(run) {
  const ranks = (run.platform && run.platform.ranks) || {};
  return ranks['0'] || Object.values(ranks)[0] || run.platform || {};
}

function renderOverview(body, run) {
  const world = run.world || {};
  const p0 = rank0(run);
  const git = run.git || null;
  const command = Array.isArray(p0.command) ? p0.command.join(' ') : p0.command;
  clear(body,
    h('div', { class: 'panel' }, h('h2', { style: 'margin-top:0' }, 'Run'), kv([
      ['Status', runBadge(run)],
      ['Reason', run.status_reason || undefined],
      ['Reported status', run.lost ? run.reported_status : undefined],
      ['Last sign of life', run.last_seen ? fmtTime(run.last_seen) : undefined],
      ['Lost ranks', run.lost_ranks && run.lost_ranks.length ? run.lost_ranks.join(', ') : undefined],
      ['Started', fmtTime(run.start_timestamp)],
      ['Ended', fmtTime(run.end_timestamp)],
      ['Duration', fmtDuration(runDuration(run))],
      ['Labels', run.labels && run.labels.length ? labels(run.labels) : '—'],
      ['Description', run.description || '—'],
      ['Folder', link(`#/folder/${run.folder_id}`, run.folder)],
      ['Name', runTitle(run)],
      ['Local folder name', run.alternative_name || '—'],
      ['Listed as', run.name !== runTitle(run) && run.name !== run.alternative_name ? run.name : undefined],
      ['Owner', run.owner || undefined],
      ['Id', h('code', {}, run.id)],
    ])),
    h('div', { class: 'panel' }, h('h2', { style: 'margin-top:0' }, 'Launch'), kv([
      ['Launcher', world.launcher || '—'],
      ['World size', String(world.size ?? run.world_size)],
      ['Backend', world.backend || '—'],
      ['Transport', world.transport || undefined],
      ['Host (rank 0)', p0.host || (run.extra && run.extra.host) || '—'],
      ['Command', command ? h('code', {}, command) : '—'],
      ['Working dir', p0.cwd ? h('code', {}, p0.cwd) : undefined],
    ])),
    h('div', { class: 'panel' }, h('h2', { style: 'margin-top:0' }, 'Git'), git ? kv([
      ['Commit', h('code', {}, git.commit || '—')], ['Branch', git.branch || '—'],
      ['Dirty', git.dirty === undefined ? '—' : String(git.dirty)], ['Remote', git.remote || '—'],
    ]) : h('p', { class: 'muted' }, 'Not started inside a git work tree.')));
}

const OVERVIEW_HPARAMS = 20;

// What a user looks for first: each metric's last value (rank 0's, or the only rank's) and the hparams.
async function summaryPanel(run) {
  const groups = metricGroups(await api.metricNames(run.id)).filter((g) => g.type !== 'system');
  const hp = Object.entries(flatHparams(run.hparams));
  const last = (g) => g.last[Math.min(...g.ranks)];
  return h('div', { class: 'panel', id: 'overview-summary' },
    h('h2', { style: 'margin-top:0' }, 'Summary'),
    groups.length ? kv(groups.map((g) => [g.key, fmtMetric(g.key, last(g)) + (g.ranks.length > 1 ? ` (rank ${Math.min(...g.ranks)})` : '')]))
      : h('p', { class: 'muted' }, 'No metrics yet.'),
    h('h2', {}, 'Hyperparameters'),
    hp.length ? kv(hp.slice(0, OVERVIEW_HPARAMS).map(([k, v]) => [k, fmtValue(v)])) : h('p', { class: 'muted' }, 'None recorded.'),
    hp.length > OVERVIEW_HPARAMS ? link(`#/run/${run.id}/hparams`, `all ${hp.length} in the Hparams tab`) : null);
}

function renderHparams(body, run) {
  const ranks = Object.keys(run.hparams_ranks || {}).sort((a, b) => a - b);
  const search = h('input', { type: 'search', id: 'hparam-search', placeholder: 'search hyperparameters' });
  const table = h('table', { id: 'hparams-table' });
  const keys = [...new Set([...Object.keys(run.hparams || {}), ...ranks.flatMap((r) => Object.keys(run.hparams_ranks[r]))])].sort();
  const draw = () => {
    const needle = search.value.trim().toLowerCase();
    const shown = keys.filter((k) => !needle || k.toLowerCase().includes(needle) || fmtValue((run.hparams || {})[k]).toLowerCase().includes(needle));
    clear(table,
      h('tr', {}, h('th', {}, 'Name'), h('th', {}, ranks.length ? 'Value (rank 0)' : 'Value'), ranks.map((r) => h('th', {}, `rank ${r}`))),
      shown.map((k) => h('tr', { class: ranks.some((r) => k in run.hparams_ranks[r]) ? 'diff' : '' },
        h('td', {}, h('code', {}, k)), h('td', {}, fmtValue((run.hparams || {})[k])),
        ranks.map((r) => h('td', {}, k in run.hparams_ranks[r] ? fmtValue(run.hparams_ranks[r][k]) : '')))),
      shown.length ? null : h('tr', {}, h('td', { colspan: 2 + ranks.length, class: 'muted' }, keys.length ? 'No match.' : 'No hyperparameters recorded.')));
  };
  search.addEventListener('input', draw);
  draw();
  clear(body, h('div', { class: 'toolbar' }, search,
    ranks.length ? h('span', { class: 'muted' }, 'highlighted: a rank set a different value than rank 0') : null), table);
}

export function filesTable(artifactId, files) {
  return h('table', { class: 'files' },
    h('tr', {}, h('th', {}, 'File'), h('th', {}, 'Size'), h('th', {}, 'sha256'), h('th', {}, '')),
    files.map((f) => h('tr', {},
      h('td', {}, h('code', {}, f.path)), h('td', { class: 'num' }, fmtBytes(f.size)),
      h('td', {}, h('code', { title: f.sha256 }, f.sha256)),
      h('td', {}, h('a', { href: api.fileUrl(artifactId, f.path), download: f.path.split('/').pop() }, 'download')))),
    files.length ? null : h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No files.')));
}

// Which rank of which run made an artifact (multi-rank runs), and what tells same-named ones apart.
function artifactOrigin(a, run, twins) {
  const parts = [];
  if ((run.world_size || 1) > 1) parts.push(`rank ${a.rank ?? 0} of run ${runTitle(run)}`);
  if (twins) parts.push(a.alternative_name ? `saved as ${a.alternative_name}` : '', `id ${a.id.slice(0, 8)}`);
  return parts.filter(Boolean).join(' · ');
}

function renderArtifacts(body, run) {
  const arts = run.artifacts || [];
  const named = new Map();
  for (const a of arts) named.set(a.name, (named.get(a.name) || 0) + 1);
  clear(body, arts.length ? ['output', 'input'].map((role) => {
    const list = arts.filter((a) => a.role === role);
    return list.length ? [h('h2', {}, role === 'output' ? 'Outputs' : 'Inputs'), list.map((a) => h('div', {
      class: 'panel', dataset: { artifactId: a.id, rank: a.rank === null || a.rank === undefined ? null : String(a.rank) } },
      h('div', { class: 'toolbar' }, h('strong', {}, a.stored === false ? a.name : link(`#/artifact/${a.id}`, a.name)),
        h('span', { class: 'muted origin' }, artifactOrigin(a, run, named.get(a.name) > 1)),
        a.stored === false ? h('span', { class: 'muted' }, 'not uploaded to this server') : null),
      filesTable(a.id, a.files || [])))] : null;
  }) : h('p', { class: 'muted' }, 'This run marked no input or output artifacts.'));
}
