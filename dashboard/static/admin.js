// The admin's and the operator's views: the tenant directory (extensions, hunt groups with each
// member's "Supervision allowed", dialing rules and policies), API keys, the audit log and the
// supervision report for a tenant admin; the tenants and their supervision switch for the
// operator, who then manages any tenant's directory. Every change goes through the /v1 API,
// which validates it; its errors are shown by the field they name.

import { h, say, time, duration, rfc3339, localInput, MODE_LABEL } from './dom.js';
import { api, request, enc, APIError } from './api.js';
import { stackedBars } from './chart.js';

// adminViews are the views of an admin or operator session.
export function adminViews(session) {
  const ctx = { session, tenant: session.role === 'operator' ? '' : session.tenant };
  const views = [];
  if (session.role === 'operator') views.push(new TenantsView(ctx));
  if (session.directory) views.push(new ExtensionsView(ctx), new HuntGroupsView(ctx), new RulesView(ctx));
  if (session.role === 'admin') views.push(new KeysView(ctx), new AuditView(ctx), new ReportView(ctx));
  return views;
}

// ---- helpers

let fieldSeq = 0;

// field() is a labelled control with its error line; kind is 'input', 'select' or 'textarea'.
function field(name, label, { kind = 'input', type = 'text', value = '', options, hint, attrs = {} } = {}) {
  const id = 'f' + (++fieldSeq) + '-' + name;
  const described = [id + '-error', hint ? id + '-hint' : ''].filter(Boolean).join(' ');
  let control;
  if (kind === 'select') {
    control = h('select', { id, name, 'aria-describedby': described, ...attrs },
      options.map(([v, l]) => h('option', { value: v, selected: v === value }, l)));
  } else {
    control = h(kind, { id, name, type: kind === 'input' ? type : undefined, 'aria-describedby': described, ...attrs });
    if (type === 'checkbox') control.checked = Boolean(value);
    else control.value = value ?? '';
  }
  const wrap = h('div', { class: 'field' + (type === 'checkbox' ? ' check' : '') },
    type === 'checkbox' ? [control, h('label', { for: id }, label)] : [h('label', { for: id }, label), control],
    hint ? h('p', { class: 'hint', id: id + '-hint' }, hint) : null,
    h('p', { class: 'field-error', id: id + '-error' }));
  return wrap;
}

// clearErrors and showErrors mark a form's fields after an answer. A problem names its field
// as the API does: "spy_prefix", or a directory path ending with it
// ("tenants[acme].dialing_rules.spy_prefix").
function clearErrors(form) {
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  for (const p of form.querySelectorAll('.field-error, .form-error')) p.textContent = '';
}

function showErrors(form, err) {
  clearErrors(form);
  const problems = err.fields && err.fields.length ? err.fields
    : err.field ? [{ field: err.field, message: err.message }] : [];
  let first = null;
  const unplaced = [];
  for (const p of problems) {
    const name = String(p.field).split('.').pop().replace(/\[.*$/, '');
    const control = form.elements.namedItem(name);
    if (control && control.id) {
      control.setAttribute('aria-invalid', 'true');
      form.querySelector('#' + CSS.escape(control.id + '-error')).textContent = p.message;
      first = first || control;
    } else {
      unplaced.push(p.message);
    }
  }
  const formError = form.querySelector('.form-error');
  if (!problems.length) unplaced.push(err.message);
  if (formError) formError.textContent = unplaced.join(' ');
  (first || formError || form).focus?.();
  say(first ? 'Check the highlighted fields.' : err.message);
}

// values() reads a form's named controls (checkboxes as booleans).
function values(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === 'checkbox') out[el.name] = el.checked;
    else if (el.type === 'radio') { if (el.checked) out[el.name] = el.value; }
    else out[el.name] = el.value.trim();
  }
  return out;
}

function formError() {
  return h('p', { class: 'form-error error', role: 'alert', tabindex: '-1' });
}

// confirmButton needs a second press (its label asks) before it acts.
function confirmButton(label, ask, act) {
  const b = h('button', { type: 'button', class: 'danger' }, label);
  let armed = false;
  b.addEventListener('click', async () => {
    if (!armed) {
      armed = true;
      b.textContent = ask;
      return;
    }
    b.disabled = true;
    await act();
  });
  b.addEventListener('blur', () => { armed = false; b.textContent = label; });
  return b;
}

function table(caption, head, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows)));
}

// A view of the admin console: its section, its heading, and a body reloaded when shown.
class TabView {
  constructor(ctx, id, label, title, { tenantScoped = true } = {}) {
    this.ctx = ctx;
    this.id = id;
    this.label = label;
    this.tenantScoped = tenantScoped;
    this.heading = h('h1', { id: id + '-title' }, title);
    this.body = h('div', { class: 'view-body' });
    this.message = h('p', { class: 'error', role: 'alert' });
    this.el = h('section', { id: 'view-' + id, class: 'view', 'aria-labelledby': id + '-title' },
      h('div', { class: 'view-head' }, this.heading, tenantScoped ? h('p', { class: 'muted tenant-name' }) : null),
      this.message, this.body);
  }

  get tenant() { return this.ctx.tenant; }

  async activate() {
    this.message.textContent = '';
    if (this.tenantScoped) {
      const t = this.el.querySelector('.tenant-name');
      if (!this.tenant) {
        t.textContent = '';
        this.body.replaceChildren(h('p', { class: 'muted' }, 'Choose a tenant under Tenants first.'));
        return;
      }
      t.textContent = 'Tenant ' + this.tenant;
    }
    try {
      await this.load();
    } catch (err) {
      this.message.textContent = err.message;
    }
  }

  base() { return '/v1/tenants/' + enc(this.tenant); }
}

// ---- tenants (the operator)

class TenantsView extends TabView {
  constructor(ctx) {
    super(ctx, 'tenants', 'Tenants', 'Tenants', { tenantScoped: false });
  }

  async load() {
    const data = await api('GET', '/v1/tenants');
    const rows = data.tenants.map((t) => {
      const toggle = h('input', { type: 'checkbox', id: 'tenant-on-' + t.id, 'data-tenant': t.id });
      toggle.checked = t.supervision_enabled;
      toggle.addEventListener('change', async () => {
        toggle.disabled = true;
        try {
          await api('PATCH', '/v1/tenants/' + enc(t.id), { supervision_enabled: toggle.checked });
          say('Supervision ' + (toggle.checked ? 'on' : 'off') + ' for ' + t.id + '.');
        } catch (err) {
          this.message.textContent = err.message;
        }
        this.load();
      });
      return h('tr', { 'data-tenant': t.id },
        h('th', { scope: 'row' }, t.id),
        h('td', {}, t.name || ''),
        h('td', {}, h('span', { class: 'check' }, toggle,
          h('label', { for: toggle.id }, h('span', { class: 'visually-hidden' }, 'Supervision enabled for ' + t.id + ': '),
            toggle.checked ? 'on' : 'off'))),
        h('td', {}, h('button', { type: 'button', 'aria-pressed': this.ctx.tenant === t.id ? 'true' : 'false',
          onclick: () => { this.ctx.tenant = t.id; say('Managing tenant ' + t.id + '.'); this.load(); } },
        'Manage ' + t.id)));
    });
    const form = h('form', { class: 'grid-form', novalidate: true },
      field('id', 'Tenant id'), field('name', 'Name'),
      field('supervision_enabled', 'Supervision enabled', { type: 'checkbox' }),
      formError(), h('button', { type: 'submit', class: 'primary' }, 'Create tenant'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await api('POST', '/v1/tenants', values(form));
        say('Tenant created.');
        this.load();
      } catch (err) {
        showErrors(form, err);
      }
    });
    this.body.replaceChildren(
      table('Tenants', ['Tenant', 'Name', 'Supervision', ''], rows),
      h('section', { class: 'card', 'aria-labelledby': 'new-tenant' }, h('h2', { id: 'new-tenant' }, 'New tenant'), form));
  }
}

// ---- extensions

const ROLES = [['agent', 'Agent'], ['supervisor', 'Supervisor'], ['admin', 'Admin']];

class ExtensionsView extends TabView {
  constructor(ctx) {
    super(ctx, 'extensions', 'Extensions', 'Extensions');
  }

  async load() {
    const data = await api('GET', this.base() + '/extensions');
    const rows = data.extensions.map((x) => h('tr', { 'data-extension': x.number },
      h('th', { scope: 'row' }, x.number), h('td', {}, x.name || ''), h('td', {}, x.endpoint),
      h('td', {}, x.role),
      h('td', {}, confirmButton('Remove', 'Really remove ' + x.number + '?', async () => {
        try {
          await api('DELETE', this.base() + '/extensions/' + enc(x.number));
          say('Extension ' + x.number + ' removed.');
        } catch (err) {
          this.message.textContent = err.message;
        }
        this.load();
      }))));
    const form = h('form', { class: 'grid-form', novalidate: true },
      field('number', 'Number', { attrs: { inputmode: 'numeric' } }), field('name', 'Name'),
      field('endpoint', 'Endpoint', { hint: 'The phone’s Asterisk endpoint, e.g. PJSIP/745' }),
      field('role', 'Role', { kind: 'select', options: ROLES, value: 'agent' }),
      formError(), h('button', { type: 'submit', class: 'primary' }, 'Add extension'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await api('POST', this.base() + '/extensions', values(form));
        say('Extension added.');
        this.load();
      } catch (err) {
        showErrors(form, err);
      }
    });
    this.body.replaceChildren(
      table('Extensions of ' + this.tenant, ['Number', 'Name', 'Endpoint', 'Role', ''], rows),
      h('section', { class: 'card', 'aria-labelledby': 'new-ext' }, h('h2', { id: 'new-ext' }, 'New extension'), form));
  }
}

// ---- hunt groups

class HuntGroupsView extends TabView {
  constructor(ctx) {
    super(ctx, 'groups', 'Hunt groups', 'Hunt groups');
  }

  async load() {
    const [groups, exts] = await Promise.all([
      api('GET', this.base() + '/hunt-groups'),
      api('GET', this.base() + '/extensions'),
    ]);
    const extOptions = exts.extensions.map((x) => [x.number, x.number + (x.name ? ' ' + x.name : '') + ' (' + x.role + ')']);
    const sections = groups.hunt_groups.map((g) => this.group(g, extOptions));
    const form = h('form', { class: 'grid-form', novalidate: true },
      field('name', 'Name'), formError(), h('button', { type: 'submit', class: 'primary' }, 'Create hunt group'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await api('POST', this.base() + '/hunt-groups', { name: values(form).name, members: [] });
        say('Hunt group created.');
        this.load();
      } catch (err) {
        showErrors(form, err);
      }
    });
    this.body.replaceChildren(
      h('p', { class: 'muted' }, 'A member with “Supervision allowed” may supervise the other members of the group, and nobody else.'),
      ...sections,
      h('section', { class: 'card', 'aria-labelledby': 'new-group' }, h('h2', { id: 'new-group' }, 'New hunt group'), form));
  }

  group(g, extOptions) {
    const path = this.base() + '/hunt-groups/' + enc(g.name);
    const rows = g.members.map((m) => {
      const id = 'allow-' + g.name + '-' + m.extension;
      const box = h('input', { type: 'checkbox', id, 'data-group': g.name, 'data-extension': m.extension });
      box.checked = m.supervision_allowed;
      const note = h('span', { class: 'note', role: 'status' });
      box.addEventListener('change', async () => {
        box.disabled = true;
        note.textContent = '';
        try {
          await api('PATCH', path + '/members/' + enc(m.extension), { supervision_allowed: box.checked });
          note.textContent = 'Saved';
          say('Supervision ' + (box.checked ? 'allowed' : 'no longer allowed') + ' for ' + m.extension + ' in ' + g.name + '.');
        } catch (err) {
          box.checked = !box.checked;
          note.textContent = err.message;
          note.classList.add('error');
        }
        box.disabled = false;
      });
      return h('tr', { 'data-member': m.extension },
        h('th', { scope: 'row' }, m.extension),
        h('td', {}, h('span', { class: 'check' }, box,
          h('label', { for: id }, 'Supervision allowed', h('span', { class: 'visually-hidden' }, ' for ' + m.extension + ' in ' + g.name))),
        ' ', note),
        h('td', {}, confirmButton('Remove', 'Really remove ' + m.extension + '?', async () => {
          try {
            await api('DELETE', path + '/members/' + enc(m.extension));
          } catch (err) {
            this.message.textContent = err.message;
          }
          this.load();
        })));
    });
    const form = h('form', { class: 'grid-form', novalidate: true },
      field('extension', 'Extension', { kind: 'select', options: extOptions }),
      field('supervision_allowed', 'Supervision allowed', { type: 'checkbox' }),
      formError(), h('button', { type: 'submit' }, 'Add member'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await api('POST', path + '/members', values(form));
        this.load();
      } catch (err) {
        showErrors(form, err);
      }
    });
    const titleId = 'group-' + g.name;
    return h('section', { class: 'card group', 'data-group': g.name, 'aria-labelledby': titleId },
      h('h2', { id: titleId }, g.name),
      table('Members of ' + g.name, ['Extension', 'Supervision', ''], rows),
      form);
  }
}

// ---- dialing rules and policies

const RULES = [
  ['spy_prefix', 'Monitor prefix', 'Dialed before the agent’s extension, e.g. *90'],
  ['whisper_prefix', 'Coach prefix', ''],
  ['barge_prefix', 'Barge prefix', ''],
  ['spy_dtmf', 'Monitor key in a call', ''],
  ['whisper_dtmf', 'Coach key in a call', ''],
  ['barge_dtmf', 'Barge key in a call', ''],
  ['help_accept_code', 'Code to accept a help request', ''],
  ['help_raise_dtmf', 'Agent’s keys to ask for help in a call', '2 to 8 keys starting with * or #'],
];

class RulesView extends TabView {
  constructor(ctx) {
    super(ctx, 'rules', 'Rules', 'Dialing rules and policies');
  }

  async load() {
    const [rules, announce, help] = await Promise.all([
      request('GET', this.base() + '/dialing-rules'),
      request('GET', this.base() + '/announce'),
      request('GET', this.base() + '/help-policy'),
    ]);
    this.body.replaceChildren(
      this.putForm('rules-form', 'Dialing rules', '/dialing-rules', rules,
        RULES.map(([name, label, hint]) => field(name, label, { value: rules.data[name], hint: hint || undefined }))),
      this.putForm('announce-form', 'Announcement', '/announce', announce, [
        h('fieldset', {},
          h('legend', {}, 'When a supervisor joins a call'),
          ...[['none', 'Play nothing'], ['beep', 'A short beep to agent and customer']].map(([v, l]) => {
            const id = 'announce-' + v;
            const r = h('input', { type: 'radio', name: 'announce', id, value: v });
            r.checked = announce.data.announce === v;
            return h('div', { class: 'check' }, r, h('label', { for: id }, l));
          }),
          h('p', { class: 'field-error', id: 'announce-none-error' })),
      ]),
      this.putForm('help-policy-form', 'Help requests', '/help-policy', help, [
        field('escalate_after', 'Escalate to the admins after', { value: help.data.escalate_after, hint: 'A duration such as 90s or 2m' }),
        field('expire_after', 'Expire after', { value: help.data.expire_after }),
      ]));
  }

  // putForm is a form that replaces a resource (PUT) if nobody changed it since it was read
  // (If-Match with its ETag).
  putForm(id, title, suffix, current, controls) {
    let etag = current.etag;
    const form = h('form', { id, class: 'grid-form', novalidate: true },
      ...controls, formError(), h('button', { type: 'submit', class: 'primary' }, 'Save ' + title.toLowerCase()));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(form);
      try {
        const res = await request('PUT', this.base() + suffix,
          { body: values(form), headers: etag ? { 'If-Match': etag } : {} });
        etag = res.etag;
        say(title + ' saved.');
        form.querySelector('.form-error').textContent = '';
      } catch (err) {
        if (err.status === 412) {
          form.querySelector('.form-error').textContent = 'Someone changed this meanwhile; it was read again. Check it and save again.';
          this.load();
          return;
        }
        showErrors(form, err);
      }
    });
    const titleId = id + '-title';
    return h('section', { class: 'card', 'aria-labelledby': titleId }, h('h2', { id: titleId }, title), form);
  }
}

// ---- API keys

class KeysView extends TabView {
  constructor(ctx) {
    super(ctx, 'keys', 'API keys', 'API keys');
    this.created = h('div', { class: 'created-key', 'aria-live': 'polite' });
  }

  async load() {
    const data = await api('GET', '/v1/api-keys');
    const rows = data.api_keys.map((k) => h('tr', { 'data-key-name': k.name },
      h('th', { scope: 'row' }, k.name), h('td', {}, k.role), h('td', {}, k.extension || ''),
      h('td', {}, k.source === 'config' ? 'configuration file' : 'created here'),
      h('td', {}, k.created_at ? time(k.created_at) : ''),
      h('td', {}, k.source === 'api' ? confirmButton('Revoke', 'Really revoke ' + k.name + '?', async () => {
        try {
          await api('DELETE', '/v1/api-keys/' + enc(k.name));
          say('Key ' + k.name + ' revoked.');
        } catch (err) {
          this.message.textContent = err.message;
        }
        this.load();
      }) : '')));
    const form = h('form', { class: 'grid-form', novalidate: true },
      field('name', 'Name', { hint: 'Letters, digits, _ . -' }),
      field('role', 'Role', { kind: 'select', options: ROLES, value: 'supervisor' }),
      field('extension', 'Extension', { hint: 'For agent and supervisor keys: the extension the key acts as' }),
      field('require_signatures', 'Require signed requests', { type: 'checkbox' }),
      formError(), h('button', { type: 'submit', class: 'primary' }, 'Create key'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        const k = await api('POST', '/v1/api-keys', values(form));
        form.reset();
        clearErrors(form);
        this.showCreated(k);
        this.load();
      } catch (err) {
        showErrors(form, err);
      }
    });
    this.body.replaceChildren(
      this.created,
      table('API keys of ' + this.tenant, ['Name', 'Role', 'Extension', 'Source', 'Created', ''], rows),
      h('section', { class: 'card', 'aria-labelledby': 'new-key' }, h('h2', { id: 'new-key' }, 'New API key'), form));
  }

  // showCreated shows a new key and its signing secret, this once.
  showCreated(k) {
    const copy = (value) => h('button', { type: 'button', class: 'quiet', onclick: async (e) => {
      try {
        await navigator.clipboard.writeText(value);
        e.target.textContent = 'Copied';
      } catch {
        e.target.textContent = 'Select and copy it by hand';
      }
    } }, 'Copy');
    this.created.replaceChildren(h('section', { class: 'card notice', 'aria-labelledby': 'created-title' },
      h('h2', { id: 'created-title' }, 'Key ' + k.name + ' created'),
      h('p', {}, 'Copy the key now: earpiece keeps only its hash and cannot show it again.'),
      h('p', { class: 'secret-line' }, h('span', { class: 'label' }, 'Key '), h('code', { id: 'created-key' }, k.key), ' ', copy(k.key)),
      h('p', { class: 'secret-line' }, h('span', { class: 'label' }, 'Signing secret '), h('code', {}, k.signing_secret), ' ', copy(k.signing_secret)),
      h('button', { type: 'button', onclick: () => this.created.replaceChildren() }, 'I have copied them')));
    this.created.querySelector('h2').tabIndex = -1;
    this.created.querySelector('h2').focus();
  }
}

// ---- audit log

class AuditView extends TabView {
  constructor(ctx) {
    super(ctx, 'audit', 'Audit log', 'Audit log');
    this.cursor = '';
  }

  async load() {
    if (this.form) return; // keep the filters and the page read
    this.form = h('form', { class: 'grid-form filters', novalidate: true },
      field('from', 'From', { type: 'datetime-local' }), field('to', 'To', { type: 'datetime-local' }),
      field('actor', 'Actor', { hint: 'An extension, key:<name> or earpiece' }),
      field('agent', 'Agent', { attrs: { inputmode: 'numeric' } }),
      field('action', 'Action', { hint: 'e.g. join, mode, leave' }),
      field('limit', 'Entries a page', { type: 'number', value: '100', attrs: { min: 1, max: 1000 } }),
      formError(),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'primary' }, 'Show'),
        h('button', { type: 'button', id: 'audit-csv', onclick: () => this.csv() }, 'Download CSV')));
    this.form.addEventListener('submit', (e) => { e.preventDefault(); this.cursor = ''; this.page(); });
    this.results = h('div', { 'aria-live': 'polite' });
    this.body.replaceChildren(this.form, this.results);
    await this.page();
  }

  query() {
    const v = values(this.form);
    const q = new URLSearchParams();
    if (v.from) q.set('from', rfc3339(v.from));
    if (v.to) q.set('to', rfc3339(v.to));
    for (const k of ['actor', 'agent', 'action', 'limit']) if (v[k]) q.set(k, v[k]);
    if (this.cursor) q.set('cursor', this.cursor);
    return q;
  }

  async page() {
    clearErrors(this.form);
    let data;
    try {
      data = await api('GET', '/v1/audit?' + this.query());
    } catch (err) {
      showErrors(this.form, err);
      return;
    }
    const rows = data.entries.map((e) => h('tr', {},
      h('td', {}, time(e.time)), h('td', {}, e.actor), h('td', {}, e.action), h('td', {}, e.agent || ''),
      h('td', {}, e.mode ? MODE_LABEL[e.mode] || e.mode : ''), h('td', {}, e.outcome), h('td', {}, e.reason || '')));
    const next = data.next_cursor
      ? h('button', { type: 'button', onclick: () => { this.cursor = data.next_cursor; this.page(); } }, 'Next page')
      : null;
    this.results.replaceChildren(
      rows.length ? table('Audit entries, oldest first', ['Time', 'Actor', 'Action', 'Agent or target', 'Mode', 'Outcome', 'Reason'], rows)
        : h('p', { class: 'muted' }, 'No entries match.'),
      ...(next ? [next] : []));
  }

  // csv downloads the page the filters select, as the API writes it (Accept: text/csv).
  async csv() {
    try {
      const res = await request('GET', '/v1/audit?' + this.query(), { accept: 'text/csv' });
      const url = URL.createObjectURL(new Blob([res.data], { type: 'text/csv' }));
      const a = h('a', { href: url, download: 'earpiece-audit-' + this.tenant + '.csv', hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      say('Audit log downloaded.');
    } catch (err) {
      showErrors(this.form, err);
    }
  }
}

// ---- supervision report

const GROUP_BY = [['day', 'Day'], ['supervisor', 'Supervisor'], ['agent', 'Agent']];

class ReportView extends TabView {
  constructor(ctx) {
    super(ctx, 'report', 'Report', 'Supervision report');
  }

  async load() {
    if (this.form) return this.show();
    const now = new Date();
    this.form = h('form', { class: 'grid-form filters', novalidate: true },
      field('from', 'From', { type: 'datetime-local', value: localInput(new Date(now - 7 * 864e5)) }),
      field('to', 'To', { type: 'datetime-local', value: localInput(new Date(now.getTime() + 60000)) }),
      field('group_by', 'By', { kind: 'select', options: GROUP_BY, value: 'day' }),
      formError(), h('button', { type: 'submit', class: 'primary' }, 'Show'));
    this.form.addEventListener('submit', (e) => { e.preventDefault(); this.show(); });
    this.results = h('div', { 'aria-live': 'polite' });
    this.body.replaceChildren(this.form, this.results);
    await this.show();
  }

  async show() {
    const v = values(this.form);
    const q = new URLSearchParams({ group_by: v.group_by });
    if (v.from) q.set('from', rfc3339(v.from));
    if (v.to) q.set('to', rfc3339(v.to));
    clearErrors(this.form);
    let r;
    try {
      r = await api('GET', '/v1/reports/supervision?' + q);
    } catch (err) {
      showErrors(this.form, err);
      return;
    }
    const mins = (s) => duration(s || 0);
    const line = (label, f) => h('tr', {},
      h('th', { scope: 'row' }, label),
      h('td', {}, f.supervision.sessions),
      ...['spy', 'whisper', 'barge'].map((m) => h('td', {}, f.supervision.sessions_by_mode?.[m] || 0)),
      ...['spy', 'whisper', 'barge'].map((m) => h('td', {}, mins(f.supervision.seconds_in_mode?.[m]))),
      h('td', {}, f.supervision.switches), h('td', {}, f.supervision.refusals),
      h('td', {}, f.help.raised), h('td', {}, f.help.accepted));
    const head = ['', 'Sessions', 'Monitor', 'Coach', 'Barge', 'Time monitoring', 'Time coaching', 'Time barging',
      'Switches', 'Refusals', 'Help raised', 'Help accepted'];
    const chart = stackedBars({
      id: 'report-chart',
      title: 'Sessions by mode, by ' + r.group_by,
      desc: 'For each ' + r.group_by + ', the supervision sessions joined in each mode; the table below has the figures.',
      rows: r.rows.map((row) => ({ label: row.key, values: row.supervision.sessions_by_mode || {} })),
      series: [{ key: 'spy', label: 'Monitor' }, { key: 'whisper', label: 'Coach' }, { key: 'barge', label: 'Barge' }],
    });
    this.results.replaceChildren(
      h('figure', { class: 'card' }, chart, h('figcaption', { class: 'muted' },
        'Sessions by mode, ' + time(r.from) + ' to ' + time(r.to))),
      table('Supervision by ' + r.group_by, head, [...r.rows.map((row) => line(row.key, row)), line('Total', r.total)]),
      h('p', { class: 'muted' }, 'Help: median time to accept ' + Math.round(r.total.help.time_to_accept.median_seconds) +
        ' s over ' + r.total.help.time_to_accept.count + ' accepted.'));
  }
}

export { APIError };
