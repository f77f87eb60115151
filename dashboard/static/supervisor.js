// The supervisor's view: the tenant's live calls, each with Monitor / Coach / Barge (earpiece
// calls the supervisor's phone and joins it to the call), the help requests of the agents this
// supervisor may help, with Confirm. The list follows the event stream: each call, supervision
// or help event reads the calls again (GET /v1/calls is the truth; events say when to look).

import { h, say, duration, spoken, time, MODE_LABEL } from './dom.js';
import { api, enc } from './api.js';

const MODES = ['spy', 'whisper', 'barge'];
const MODE_HINT = {
  spy: 'listen silently',
  whisper: 'talk to the agent only',
  barge: 'talk to both agent and customer',
};
const PHONE_KEY = 'earpiece.phone';

export class SupervisorView {
  constructor(session) {
    this.session = session;
    this.id = 'calls';
    this.label = 'Live calls';
    this.calls = [];
    this.loaded = false;
    this.notes = new Map(); // call id -> {text, error}: the last action's outcome on that call
    this.busy = new Set(); // call ids with an action under way
    this.alerts = new Map(); // help request id -> request
    this.dismissed = new Set();
    this.seen = new Set(); // help requests already announced
    this.refreshTimer = 0;
    this.audio = null;
    this.build();
    this.ticker = setInterval(() => this.tick(), 1000);
    this.poll = setInterval(() => this.refresh(), 30000);
  }

  stop() {
    clearInterval(this.ticker);
    clearInterval(this.poll);
    clearTimeout(this.refreshTimer);
  }

  // phone is the extension earpiece calls: a supervisor key's own; an admin chooses one.
  phone() {
    if (this.session.role === 'supervisor') return this.session.extension;
    return (this.phoneInput && this.phoneInput.value.trim()) || '';
  }

  build() {
    this.list = h('ul', { class: 'calls', 'aria-labelledby': 'calls-title' });
    this.empty = h('p', { class: 'muted' }, 'No calls in progress.');
    this.alertList = h('ul', { class: 'alerts' });
    this.noAlerts = h('p', { class: 'muted' }, 'No open help requests.');
    // Off at every load: browsers start audio only from a user's gesture, such as ticking it.
    const sound = h('input', { type: 'checkbox', id: 'alert-sound', onchange: (e) => this.setSound(e.target.checked) });
    this.notifyButton = h('button', { type: 'button', class: 'quiet', onclick: () => this.askNotifications() },
      'Desktop notifications');
    this.updateNotifyButton();

    let phoneField = null;
    if (this.session.role !== 'supervisor') {
      this.phoneInput = h('input', { id: 'my-phone', inputmode: 'numeric', autocomplete: 'off', size: 8,
        value: localStorage.getItem(PHONE_KEY) || '', 'aria-describedby': 'my-phone-hint',
        onchange: (e) => { localStorage.setItem(PHONE_KEY, e.target.value.trim()); this.render(); } });
      phoneField = h('div', { class: 'field inline' },
        h('label', { for: 'my-phone' }, 'Your phone (extension)'), this.phoneInput,
        h('p', { id: 'my-phone-hint', class: 'hint' }, 'earpiece calls this phone when you join a call.'));
    }

    this.el = h('section', { id: 'view-calls', class: 'view', 'aria-labelledby': 'calls-title' },
      h('div', { class: 'view-head' }, h('h1', { id: 'calls-title' }, 'Live calls'), phoneField),
      h('section', { class: 'card help', 'aria-labelledby': 'help-title' },
        h('div', { class: 'view-head' },
          h('h2', { id: 'help-title' }, 'Help requests'),
          h('div', { class: 'inline-controls' },
            h('span', { class: 'check' }, sound, h('label', { for: 'alert-sound' }, 'Sound')),
            this.notifyButton)),
        this.noAlerts, this.alertList),
      this.empty, this.list);
  }

  activate() {
    if (!this.loaded) this.refresh(true);
  }

  onOpen() {
    this.refresh(true);
  }

  onEvent(type, n) {
    if (type.startsWith('help.')) this.helpEvent(type, n.data);
    if (type.startsWith('call.') || type.startsWith('supervision.') || type.startsWith('help.')) this.refresh();
  }

  // refresh reads the calls (and, when asked, the help requests) again, soon: events come in
  // bursts.
  refresh(withHelp = false) {
    if (withHelp) this.loadHelp();
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.loadCalls(), 150);
  }

  async loadCalls() {
    try {
      const data = await api('GET', '/v1/calls');
      const now = Date.now();
      this.calls = data.calls.map((c) => ({ ...c, since: now - c.duration_seconds * 1000 }));
      this.loaded = true;
      this.render();
    } catch (err) {
      this.empty.textContent = 'The calls could not be read: ' + err.message;
      this.empty.hidden = false;
    }
  }

  mine(call) {
    const me = this.phone();
    return me ? call.supervisors.find((p) => p.extension === me) : undefined;
  }

  render() {
    // Rebuilding the list must not lose the keyboard's place: refocus the same control.
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.key : undefined;
    this.empty.hidden = this.calls.length > 0;
    this.empty.textContent = 'No calls in progress.';
    this.list.replaceChildren(...this.calls.map((c) => this.renderCall(c)));
    if (focused) {
      const again = this.list.querySelector(`[data-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  renderCall(call) {
    const mine = this.mine(call);
    const busy = this.busy.has(call.call_id);
    const note = this.notes.get(call.call_id);
    const titleId = 'call-' + call.call_id.replace(/[^A-Za-z0-9_-]/g, '_');
    const elapsed = (Date.now() - call.since) / 1000;
    const buttons = MODES.map((m) => h('button', {
      type: 'button',
      class: 'mode mode-' + m,
      'data-key': call.call_id + ':' + m,
      'data-mode': m,
      'aria-pressed': mine && mine.mode === m ? 'true' : 'false',
      title: MODE_LABEL[m] + ': ' + MODE_HINT[m],
      disabled: busy,
      onclick: () => this.act(call, m),
    }, MODE_LABEL[m]));
    if (mine) {
      buttons.push(h('button', { type: 'button', class: 'danger', 'data-key': call.call_id + ':leave',
        disabled: busy, onclick: () => this.leave(call, mine) }, 'Disconnect'));
    }
    const sups = call.supervisors.length
      ? h('ul', { class: 'sups' }, call.supervisors.map((p) => h('li', {},
        h('span', { class: 'ext' }, p.extension === this.phone() ? p.extension + ' (you)' : p.extension), ' ',
        h('span', { class: 'mode-tag mode-' + p.mode }, MODE_LABEL[p.mode] || p.mode),
        p.state !== 'active' ? ' ' + p.state : '')))
      : h('p', { class: 'muted' }, 'Nobody supervising');
    return h('li', { class: 'call' + (call.needs_help ? ' needs-help' : ''), 'data-call': call.call_id, 'data-agent': call.agent },
      h('article', { 'aria-labelledby': titleId },
        h('div', { class: 'call-head' },
          h('h3', { id: titleId }, 'Agent ' + call.agent),
          call.needs_help ? h('span', { class: 'badge help-badge' }, 'Needs help') : null),
        h('dl', { class: 'facts' },
          h('dt', {}, 'Customer'), h('dd', {}, call.customer_number || 'unknown'),
          h('dt', {}, 'Direction'), h('dd', {}, call.direction),
          h('dt', {}, 'Duration'),
          h('dd', {}, h('span', { class: 'duration', 'data-since': String(call.since), 'aria-label': spoken(elapsed) },
            duration(elapsed)))),
        h('div', { class: 'sup-block' }, h('p', { class: 'label' }, 'Supervisors'), sups),
        h('div', { class: 'actions', role: 'group', 'aria-label': 'Supervise agent ' + call.agent }, buttons),
        h('p', { class: 'note' + (note && note.error ? ' error' : ''), role: 'status' }, note ? note.text : '')));
  }

  tick() {
    const now = Date.now();
    for (const el of this.list.querySelectorAll('.duration')) {
      const secs = (now - Number(el.dataset.since)) / 1000;
      el.textContent = duration(secs);
      el.setAttribute('aria-label', spoken(secs));
    }
  }

  setNote(call, text, error = false) {
    this.notes.set(call.call_id, { text, error });
    if (text) say(text);
  }

  async act(call, mode) {
    const mine = this.mine(call);
    if (mine && mine.mode === mode) return;
    const phone = this.phone();
    if (!phone) {
      this.setNote(call, 'Enter your phone’s extension first.', true);
      this.render();
      if (this.phoneInput) this.phoneInput.focus();
      return;
    }
    this.busy.add(call.call_id);
    this.render();
    try {
      if (mine) {
        await api('PATCH', '/v1/supervisions/' + enc(mine.session_id), { mode });
        this.setNote(call, MODE_LABEL[mode] + ' on agent ' + call.agent + '.');
      } else {
        const body = { call_id: call.call_id, mode };
        if (this.session.role !== 'supervisor') body.supervisor = phone;
        await api('POST', '/v1/supervisions', body);
        this.setNote(call, 'Calling your phone (' + phone + ') to ' + MODE_LABEL[mode].toLowerCase() + ' agent ' + call.agent + '…');
      }
    } catch (err) {
      this.setNote(call, err.message, true);
    } finally {
      this.busy.delete(call.call_id);
      this.refresh();
    }
  }

  async leave(call, mine) {
    this.busy.add(call.call_id);
    this.render();
    try {
      await api('DELETE', '/v1/supervisions/' + enc(mine.session_id));
      this.setNote(call, 'Disconnected from agent ' + call.agent + '.');
    } catch (err) {
      this.setNote(call, err.message, true);
    } finally {
      this.busy.delete(call.call_id);
      this.refresh();
    }
  }

  // ---- help requests

  async loadHelp() {
    try {
      const [open, progress] = await Promise.all([
        api('GET', '/v1/help-requests?status=open'),
        api('GET', '/v1/help-requests?status=in_progress'),
      ]);
      for (const r of [...open.help_requests, ...progress.help_requests]) this.alerts.set(r.id, r);
      for (const r of open.help_requests) this.seen.add(r.id); // already there: no alarm
      this.renderAlerts();
    } catch { /* the stream's next event reads them again */ }
  }

  helpEvent(type, r) {
    if (!r || !r.id) return;
    const state = r.status || r.state;
    const known = this.alerts.get(r.id);
    if (!known && state !== 'open') return;
    this.alerts.set(r.id, { ...known, ...r, status: state });
    if (type === 'help.raised' && !this.seen.has(r.id)) {
      this.seen.add(r.id);
      this.alarm(r);
    }
    this.renderAlerts();
  }

  renderAlerts() {
    const items = [...this.alerts.values()]
      .filter((r) => !this.dismissed.has(r.id))
      .sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
    this.noAlerts.hidden = items.length > 0;
    this.alertList.replaceChildren(...items.map((r) => this.renderAlert(r)));
  }

  renderAlert(r) {
    const titleId = 'help-' + r.id;
    let state, actions = [];
    switch (r.status) {
      case 'open':
        state = r.escalated ? 'Waiting (escalated to the admins)' : 'Waiting for a supervisor';
        actions.push(h('button', { type: 'button', class: 'primary', 'data-key': 'accept:' + r.id,
          'aria-describedby': titleId, onclick: () => this.accept(r) }, 'Confirm'));
        break;
      case 'in_progress':
        state = r.help_provided_by === this.phone()
          ? 'You are helping' : 'Accepted by ' + (r.help_provided_by || 'another supervisor');
        break;
      case 'cancelled':
        state = 'Withdrawn by the agent';
        break;
      case 'closed':
        state = r.close_reason === 'call_ended' ? 'Closed: the call ended' : 'Closed';
        break;
      case 'expired':
        state = 'Expired: nobody accepted it in time';
        break;
      default:
        state = r.status;
    }
    if (r.status !== 'open') {
      actions.push(h('button', { type: 'button', class: 'quiet', onclick: () => { this.dismissed.add(r.id); this.renderAlerts(); } },
        'Dismiss'));
    }
    return h('li', { class: 'alert alert-' + r.status, 'data-help': r.id, 'data-status': r.status },
      h('p', { class: 'alert-title', id: titleId }, 'Agent ' + r.agent + ' needs help'),
      r.reason ? h('p', { class: 'reason' }, '“' + r.reason + '”') : null,
      h('p', { class: 'alert-state' }, state, ' · raised ', time(r.created_at)),
      h('div', { class: 'actions' }, actions));
  }

  async accept(r) {
    try {
      const body = this.session.role === 'supervisor' ? undefined : { supervisor: this.phone() };
      const out = await api('POST', '/v1/help-requests/' + enc(r.id) + '/accept', body);
      this.alerts.set(r.id, out.help_request);
      say('You accepted the help request of agent ' + r.agent + '.');
    } catch (err) {
      say(err.message);
      this.loadHelp();
    }
    this.renderAlerts();
  }

  alarm(r) {
    say('Agent ' + r.agent + ' needs help.');
    if (this.audio) this.beep();
    if ('Notification' in window && Notification.permission === 'granted') {
      try {
        new Notification('Agent ' + r.agent + ' needs help', { body: r.reason || '', tag: r.id });
      } catch { /* notifications unavailable here */ }
    }
  }

  setSound(on) {
    if (on && !this.audio && window.AudioContext) this.audio = new AudioContext();
    if (!on) this.audio = null;
  }

  beep() {
    const ctx = this.audio;
    for (const [at, hz] of [[0, 880], [0.18, 1175]]) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = hz;
      gain.gain.value = 0.08;
      osc.connect(gain).connect(ctx.destination);
      osc.start(ctx.currentTime + at);
      osc.stop(ctx.currentTime + at + 0.15);
    }
  }

  async askNotifications() {
    if (!('Notification' in window)) return;
    try {
      await Notification.requestPermission();
    } catch { /* refused */ }
    this.updateNotifyButton();
  }

  updateNotifyButton() {
    const b = this.notifyButton;
    if (!('Notification' in window)) {
      b.hidden = true;
      return;
    }
    const p = Notification.permission;
    b.textContent = p === 'granted' ? 'Desktop notifications on' : p === 'denied' ? 'Desktop notifications blocked' : 'Desktop notifications';
    b.disabled = p !== 'default';
  }
}
