// Start-up: find out whether this browser is signed in, show the sign-in form or the views the
// session's role may use, and keep one event stream for all of them.

import { byId, h, say } from './dom.js';
import { request, setSession, whenSignedOut } from './api.js';
import { Live } from './live.js';
import { SupervisorView } from './supervisor.js';
import { AgentView } from './agent.js';
import { adminViews } from './admin.js';

let live = null;
let views = [];
let current = null;

const STATE_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  offline: 'Offline: reconnecting…',
};

async function boot() {
  whenSignedOut(() => signedOut('Your session ended. Sign in again.'));
  byId('signin-form').addEventListener('submit', signIn);
  byId('sign-out').addEventListener('click', signOut);
  try {
    const { data } = await request('GET', '/v1/session', { quiet401: true });
    start(data);
  } catch (err) {
    showSignIn(err.status === 401 ? '' : err.message);
  }
}

function showSignIn(message) {
  byId('loading').hidden = true;
  byId('signin').hidden = false;
  byId('signin-error').textContent = message || '';
  for (const id of ['whoami', 'sign-out', 'connection', 'tabs']) byId(id).hidden = true;
  byId('signin-key').focus();
}

async function signIn(ev) {
  ev.preventDefault();
  const input = byId('signin-key');
  const key = input.value.trim();
  const error = byId('signin-error');
  if (!key) {
    error.textContent = 'Enter your API key.';
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    return;
  }
  error.textContent = '';
  try {
    const { data } = await request('POST', '/v1/session', { body: { key }, quiet401: true });
    input.value = '';
    input.removeAttribute('aria-invalid');
    start(data);
  } catch (err) {
    input.setAttribute('aria-invalid', 'true');
    error.textContent = err.status === 401 ? 'This API key is not valid.' : err.message;
    input.focus();
  }
}

async function signOut() {
  stopAll();
  try {
    await request('DELETE', '/v1/session', { quiet401: true });
  } catch { /* the cookie is cleared either way */ }
  setSession('');
  showSignIn('You signed out.');
}

function signedOut(message) {
  if (byId('signin').hidden === false) return;
  stopAll();
  setSession('');
  showSignIn(message);
}

function stopAll() {
  if (live) live.stop();
  live = null;
  for (const v of views) if (v.stop) v.stop();
  views = [];
  current = null;
  byId('views').replaceChildren();
  byId('tabs').replaceChildren();
  const conn = byId('connection');
  conn.textContent = '';
  delete conn.dataset.state;
}

// viewsFor is what a role may see and do, as the API allows it.
function viewsFor(session) {
  switch (session.role) {
    case 'agent':
      return [new AgentView(session)];
    case 'supervisor':
      return [new SupervisorView(session)];
    case 'admin':
      return [new SupervisorView(session), ...adminViews(session)];
    case 'operator':
      return adminViews(session);
    default:
      return [];
  }
}

function start(session) {
  stopAll();
  setSession(session.csrf_token);
  byId('loading').hidden = true;
  byId('signin').hidden = true;
  const who = byId('whoami');
  who.textContent = [session.key_name, session.role,
    session.extension ? 'extension ' + session.extension : '', session.tenant].filter(Boolean).join(' · ');
  who.hidden = false;
  byId('sign-out').hidden = false;

  views = viewsFor(session);
  const nav = byId('tabs');
  for (const v of views) {
    byId('views').append(v.el);
    v.el.hidden = true;
    v.tab = h('button', { type: 'button', id: 'tab-' + v.id, 'aria-controls': v.el.id, onclick: () => show(v) }, v.label);
    nav.append(v.tab);
  }
  nav.hidden = views.length < 2;
  const wanted = views.find((v) => '#' + v.id === location.hash) || views[0];
  if (wanted) show(wanted, false);

  // The operator administers tenants and follows no tenant's events.
  if (session.role === 'operator') return;
  const conn = byId('connection');
  conn.hidden = false;
  live = new Live({
    onEvent: (type, n) => { for (const v of views) if (v.onEvent) v.onEvent(type, n); },
    onState: (state) => {
      conn.textContent = STATE_TEXT[state];
      conn.dataset.state = state;
      if (state === 'offline') say('Connection lost; reconnecting.');
    },
    onOpen: () => { for (const v of views) if (v.onOpen) v.onOpen(); },
  });
  live.start();
}

function show(v, focus = true) {
  if (current === v) return;
  for (const o of views) {
    o.el.hidden = o !== v;
    o.tab.removeAttribute('aria-current');
  }
  v.tab.setAttribute('aria-current', 'page');
  current = v;
  history.replaceState(null, '', '#' + v.id);
  if (v.activate) v.activate();
  if (focus) {
    const heading = v.el.querySelector('h1');
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
  }
}

boot();
