// The tenant's live events (GET /v1/events) through EventSource, which sends the session
// cookie. The browser reconnects by itself after a network error (resuming with Last-Event-ID);
// when the server refuses the stream (the session ended, a cap reached), the browser gives up
// and this module tries again, slower each time, after checking that the session is still
// there. Every state change is reported so the page can say when it is offline, and every
// (re)connection, so the page can read again what it may have missed.

import { request } from './api.js';

// Event types the views listen to.
const TYPES = [
  'call.started', 'call.ended',
  'supervision.ringing', 'supervision.started', 'supervision.mode_changed', 'supervision.ended',
  'help.raised', 'help.accepted', 'help.closed', 'help.cancelled', 'help.escalated', 'help.expired',
  'agent.coaching',
];

export class Live {
  // onEvent(type, notification) gets each event; onState('connecting'|'live'|'offline') each
  // change; onOpen() each (re)connection.
  constructor({ onEvent, onState, onOpen }) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.onOpen = onOpen || (() => {});
    this.es = null;
    this.lastId = '';
    this.retry = 1000;
    this.timer = 0;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.es) this.es.close();
    this.es = null;
  }

  connect() {
    if (this.stopped) return;
    const url = '/v1/events' + (this.lastId ? '?last_event_id=' + encodeURIComponent(this.lastId) : '');
    const es = new EventSource(url);
    this.es = es;
    this.onState('connecting');
    es.addEventListener('open', () => {
      this.retry = 1000;
      this.onState('live');
      this.onOpen();
    });
    es.addEventListener('error', () => {
      if (this.stopped || es !== this.es) return;
      if (es.readyState === EventSource.CONNECTING) {
        this.onState('offline'); // the browser retries by itself
        return;
      }
      // Closed: the server refused the stream. Try again, after checking the session (a 401
      // there shows the sign-in form).
      es.close();
      this.onState('offline');
      this.timer = setTimeout(async () => {
        try {
          await request('GET', '/v1/session');
        } catch (err) {
          if (err.status === 401) return;
        }
        this.connect();
      }, this.retry);
      this.retry = Math.min(this.retry * 2, 30000);
    });
    for (const type of TYPES) {
      es.addEventListener(type, (ev) => {
        if (ev.lastEventId) this.lastId = ev.lastEventId;
        let n = null;
        try { n = JSON.parse(ev.data); } catch { return; }
        this.onEvent(type, n);
      });
    }
  }
}
