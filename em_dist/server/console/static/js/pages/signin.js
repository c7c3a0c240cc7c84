// Sign-in: exchange an API key for the HttpOnly session cookie.

import * as api from '../api.js';
import { clear, h } from '../dom.js';

export function renderSignIn(page, ctx, onSignedIn) {
  const key = h('input', { type: 'password', id: 'api-key', name: 'api-key', placeholder: 'em_…', autocomplete: 'off', required: true });
  const message = h('p', { class: 'error', id: 'signin-error', role: 'alert' });
  const submit = h('button', { class: 'primary', type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'panel signin', id: 'signin-form' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'Paste your API key (from "em server user add" or "em server key create").'),
    h('label', { for: 'api-key' }, 'API key'), key, submit, message);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    message.textContent = '';
    try {
      await api.signIn(key.value.trim());
      key.value = '';
      await onSignedIn();
    } catch (error) {
      message.textContent = error.status === 401 ? `The server refused this key: ${error.message}` : error.message;
    } finally {
      submit.disabled = false;
    }
  });
  clear(page, form);
  key.focus();
}
