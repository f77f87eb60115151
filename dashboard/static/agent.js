// The agent's view: ask for help on the current call, follow the request (open, in progress
// with who helps), close or withdraw it; and a quiet indicator while a supervisor talks in the
// call (coaching or barged in). A supervisor who only listens shows nowhere: the agent's event
// stream never says so (earpiece turns the supervision events into agent.coaching, sent only
// when what the agent hears changes), and this page asks the API for nothing that would.

import { h, say, time } from './dom.js';
import { api, enc } from './api.js';

const COACHING = {
  whisper: 'A supervisor is coaching you: only you hear them.',
  barge: 'A supervisor has joined your call: you and the customer hear them.',
};

export class AgentView {
  constructor(session) {
    this.session = session;
    this.id = 'agent';
    this.label = 'My call';
    this.request = null; // the latest help request, as the API shows it
    this.loaded = false;
    this.build();
  }

  build() {
    this.coaching = h('p', { id: 'coaching', class: 'coaching', role: 'status', hidden: true });
    this.reason = h('textarea', { id: 'help-reason', name: 'reason', rows: 2, maxlength: 500,
      'aria-describedby': 'help-reason-hint' });
    this.raiseButton = h('button', { type: 'submit', class: 'primary', id: 'request-help' }, 'Request help');
    this.form = h('form', { class: 'raise', novalidate: true, onsubmit: (e) => { e.preventDefault(); this.raise(); } },
      h('div', { class: 'field' },
        h('label', { for: 'help-reason' }, 'What do you need help with? (optional)'),
        this.reason,
        h('p', { id: 'help-reason-hint', class: 'hint' }, 'A supervisor who may help you sees this with your request.')),
      this.raiseButton);
    this.error = h('p', { class: 'error', role: 'alert' });
    this.status = h('div', { id: 'help-status', class: 'help-status', 'aria-live': 'polite' });
    this.el = h('section', { id: 'view-agent', class: 'view', 'aria-labelledby': 'agent-title' },
      h('div', { class: 'view-head' }, h('h1', { id: 'agent-title' }, 'My call'), this.coaching),
      h('section', { class: 'card narrow', 'aria-labelledby': 'ask-title' },
        h('h2', { id: 'ask-title' }, 'Ask a supervisor for help'),
        h('p', { class: 'muted' }, 'For the call you are on now. A supervisor of your team is alerted and can join you.'),
        this.form, this.error, this.status));
  }

  activate() {
    if (!this.loaded) this.load();
  }

  onOpen() {
    // A new stream tells at once when a supervisor talks; until it does, nobody does.
    this.setCoaching('none');
    this.load();
  }

  onEvent(type, n) {
    if (type === 'agent.coaching') {
      this.setCoaching(n.data && n.data.coaching);
      return;
    }
    if (type.startsWith('help.') && n.data && n.data.agent === this.session.extension) {
      const r = { ...n.data, status: n.data.status || n.data.state };
      if (!this.request || r.id === this.request.id || String(r.created_at) >= String(this.request.created_at)) {
        this.request = r;
        this.render();
        if (type === 'help.accepted') say('Supervisor ' + r.help_provided_by + ' is helping you.');
      }
    }
  }

  setCoaching(state) {
    const text = COACHING[state];
    this.coaching.hidden = !text;
    this.coaching.textContent = text || '';
    this.coaching.dataset.coaching = text ? state : 'none';
  }

  async load() {
    try {
      const data = await api('GET', '/v1/help-requests');
      const list = data.help_requests;
      // The latest request: an active one, else the last one (to show how it ended).
      const active = list.filter((r) => r.status === 'open' || r.status === 'in_progress');
      this.request = (active.length ? active : list).at(-1) || null;
      this.loaded = true;
      this.render();
    } catch (err) {
      this.error.textContent = err.message;
    }
  }

  render() {
    const r = this.request;
    const active = r && (r.status === 'open' || r.status === 'in_progress');
    this.raiseButton.disabled = Boolean(active);
    this.reason.disabled = Boolean(active);
    if (!r) {
      this.status.replaceChildren();
      return;
    }
    let text, action = null;
    switch (r.status) {
      case 'open':
        text = r.escalated ? 'Your request is waiting; the admins were told.' : 'Your request is open: waiting for a supervisor.';
        action = h('button', { type: 'button', class: 'quiet', onclick: () => this.finish('cancel') }, 'Withdraw');
        break;
      case 'in_progress':
        text = 'In progress: supervisor ' + r.help_provided_by + ' is helping you.';
        action = h('button', { type: 'button', onclick: () => this.finish('close') }, 'Close');
        break;
      case 'closed':
        text = r.close_reason === 'call_ended' ? 'Your last request closed when the call ended.' : 'Your last request is closed.';
        break;
      case 'cancelled':
        text = 'You withdrew your last request.';
        break;
      case 'expired':
        text = 'Your last request expired: nobody could accept it in time.';
        break;
      default:
        text = r.status;
    }
    this.status.replaceChildren(
      h('p', { class: 'help-state', 'data-status': r.status }, text),
      h('p', { class: 'muted' }, 'Raised ' + time(r.created_at) + (r.reason ? ': “' + r.reason + '”' : '')),
      ...(action ? [action] : []));
  }

  async raise() {
    this.error.textContent = '';
    this.raiseButton.disabled = true;
    try {
      const body = this.reason.value.trim() ? { reason: this.reason.value.trim() } : {};
      this.request = await api('POST', '/v1/help-requests', body);
      this.reason.value = '';
      say('Help requested.');
    } catch (err) {
      this.error.textContent = err.code === 'no_active_call' ? 'You are not on a call right now.' : err.message;
    }
    this.render();
  }

  async finish(verb) {
    this.error.textContent = '';
    try {
      this.request = await api('POST', '/v1/help-requests/' + enc(this.request.id) + '/' + verb);
      say(verb === 'close' ? 'Help request closed.' : 'Help request withdrawn.');
    } catch (err) {
      this.error.textContent = err.message;
      this.load();
    }
    this.render();
  }
}
