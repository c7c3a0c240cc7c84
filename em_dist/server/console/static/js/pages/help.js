// The search language, as the run search box takes it (the server's em_dist/server/search.py).

import { clear, h } from '../dom.js';

const EXAMPLES = [
  ['hparams.lr < 0.01 and metrics.val/loss < 0.2 and labels contains "baseline" and status = "Succeeded"',
    'the README\'s example: every condition must hold'],
  ['hparams.optimizer = "Adam" or hparams.optimizer = "SGD"', 'either'],
  ['not labels contains "debug"', 'negation (a missing value makes a comparison false, so "not" keeps those runs)'],
  ['hparams.model.depth >= 12', 'nested hparams with dots; back-quote odd keys: hparams.`warmup.steps` > 100'],
  ['metrics.train/loss = null', 'runs that never logged train/loss'],
  ['name contains "sweep" and started > now - 2d', 'name substring (any case), started in the last 2 days'],
  ['status = "Failed" and ended >= "2026-11-30"', 'statuses are the honest ones: a live run gone silent is Failed'],
  ['resnet', 'a bare word searches names and labels'],
];

export function renderHelp(page, ctx) {
  ctx.crumbs(h('span', {}, 'Search syntax'));
  clear(page, h('h1', {}, 'Searching runs'),
    h('p', {}, 'The search box of a folder takes a filter: comparisons joined with ', h('code', {}, 'and'), ', ',
      h('code', {}, 'or'), ', ', h('code', {}, 'not'), ' and parentheses. The same text works in the REST API (',
      h('code', {}, 'GET /api/v1/runs?folder=...&filter=...'), ') and in ', h('code', {}, 'em.Client().runs(folder, filter=...)'), '.'),
    h('table', { id: 'search-help' }, h('tr', {}, h('th', {}, 'Field'), h('th', {}, 'Compares with')),
      [['name', '= != < > with a "string"; contains "part" (any case)'],
        ['status', '= != with "Succeeded", "Failed", "Running", "Initializing" (any case)'],
        ['labels', 'contains "label" (an exact label)'],
        ['hparams.<key>', 'numbers, "strings", true, false, null; contains "part" for strings'],
        ['metrics.<type>/<name>', 'numbers or null: the latest value (lowest rank)'],
        ['started, ended', 'a date "2026-11-30", a date-time "2026-11-30T12:00", or now - 2h (s, m, h, d)'],
        ['created, updated', 'as started: when the server got the run, its last sign of life']]
        .map(([f, what]) => h('tr', {}, h('td', {}, h('code', {}, f)), h('td', {}, what)))),
    h('h2', {}, 'Examples'),
    h('table', {}, EXAMPLES.map(([q, what]) => h('tr', {}, h('td', {}, h('code', {}, q)), h('td', {}, what)))),
    h('p', { class: 'muted' }, 'A filter that does not parse is refused with the position of the problem.'));
}
