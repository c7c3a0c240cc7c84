// A compact, searchable multi-picker: what is picked shows as chips (× takes one out), and a button
// opens a filter box over a checkbox list. From the keyboard: Enter, Space or ArrowDown on the button
// opens it with the filter focused; typing filters; ArrowDown and ArrowUp move through the boxes shown
// (ArrowUp from the first goes back to the filter); Space ticks a box; Enter in the filter ticks or
// unticks the first match; Escape closes it and gives the focus back to the button.

import { clear, h } from './dom.js';

export function multiPicker({ id, items, picked, label, placeholder, onChange }) {
  const chosen = new Set(picked);
  const root = h('div', { class: 'metric-picker', id, role: 'group', 'aria-label': label });
  const chips = h('span', { class: 'chips' });
  const button = h('button', { type: 'button', class: 'picker-button', 'aria-haspopup': 'true', 'aria-expanded': 'false',
    'aria-controls': `${id}-pop` });
  const filter = h('input', { type: 'search', id: `${id}-filter`, placeholder, autocomplete: 'off', spellcheck: false,
    'aria-label': `filter ${label}` });
  const boxes = items.map((item) => h('input', { type: 'checkbox', value: item, checked: chosen.has(item) }));
  const rows = items.map((item, i) => h('li', { dataset: { item } }, h('label', {}, boxes[i], item)));
  const count = h('div', { class: 'picker-count', 'aria-live': 'polite' });
  const pop = h('div', { class: 'picker-pop', id: `${id}-pop`, hidden: true }, filter, h('ul', {}, rows), count);

  const shown = () => boxes.filter((_, i) => !rows[i].hidden);
  const changed = () => {
    boxes.forEach((b) => { b.checked = chosen.has(b.value); });
    draw();
    onChange(items.filter((k) => chosen.has(k)));
  };
  const toggle = (item) => {
    if (chosen.has(item)) chosen.delete(item); else chosen.add(item);
    changed();
  };
  const draw = () => {
    clear(chips, items.filter((k) => chosen.has(k)).map((k) => {
      const remove = h('button', { type: 'button', 'aria-label': `remove ${k}`, title: `remove ${k}` }, '×');
      remove.addEventListener('click', () => toggle(k));
      return h('span', { class: 'chip', dataset: { item: k } }, k, remove);
    }));
    button.textContent = `${chosen.size ? 'add or remove' : 'choose'} ${label} ▾`;
    const n = shown().length;
    count.textContent = `${chosen.size} picked · ${n} of ${items.length} shown`;
  };
  const open = (yes) => {
    pop.hidden = !yes;
    button.setAttribute('aria-expanded', String(yes));
    if (yes) filter.focus();
  };
  const applyFilter = () => {
    const needle = filter.value.trim().toLowerCase();
    items.forEach((item, i) => { rows[i].hidden = Boolean(needle) && !item.toLowerCase().includes(needle); });
    draw();
  };

  button.addEventListener('click', () => open(pop.hidden));
  button.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown') { e.preventDefault(); open(true); }
  });
  filter.addEventListener('input', applyFilter);
  filter.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown') { e.preventDefault(); const first = shown()[0]; if (first) first.focus(); }
    if (e.key === 'Enter') { e.preventDefault(); const first = shown()[0]; if (first) toggle(first.value); }
  });
  boxes.forEach((b) => {
    b.addEventListener('change', () => toggle(b.value));
    b.addEventListener('keydown', (e) => {
      const list = shown();
      const at = list.indexOf(b);
      if (e.key === 'ArrowDown' && at < list.length - 1) { e.preventDefault(); list[at + 1].focus(); }
      if (e.key === 'ArrowUp') { e.preventDefault(); (at > 0 ? list[at - 1] : filter).focus(); }
      if (e.key === 'Enter') { e.preventDefault(); toggle(b.value); }
    });
  });
  pop.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { e.preventDefault(); open(false); button.focus(); }
  });
  const outside = (e) => {
    if (!root.isConnected) { document.removeEventListener('click', outside); return; }
    if (!root.contains(e.target)) open(false);
  };
  document.addEventListener('click', outside);
  root.append(chips, button, pop);
  draw();
  return root;
}
