// Element building and formatting. Text always goes in as text (textContent, text nodes), never
// as HTML: the page's Content-Security-Policy requires Trusted Types, so any HTML sink throws.

const SVG_NS = 'http://www.w3.org/2000/svg';

// h('button', {class: 'primary', onclick: fn, disabled: true}, 'Label', childNode...) builds an
// element. Attributes: "on..." with a function adds a listener; true sets a boolean attribute,
// false, null and undefined leave it out; anything else is set as a string.
export function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// svg() is h() in the SVG namespace.
export function svg(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (value === true) {
      el.setAttribute(name, '');
    } else if (value !== false && value !== null && value !== undefined) {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.append(c);
    else el.append(document.createTextNode(String(c)));
  }
}

// $ finds one element by id.
export function byId(id) {
  return document.getElementById(id);
}

// say() reads msg out to screen readers (the page's polite live region).
export function say(msg) {
  const r = byId('announcer');
  r.textContent = '';
  // A new text node after a tick is announced even when the text repeats.
  setTimeout(() => { r.textContent = msg; }, 50);
}

// duration(1234) is "20:34"; hours appear when there are some ("1:02:03").
export function duration(secs) {
  secs = Math.max(0, Math.floor(secs));
  const h = Math.floor(secs / 3600);
  const m = Math.floor((secs % 3600) / 60);
  const s = secs % 60;
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
  return (h > 0 ? h + ':' : '') + mm + ':' + String(s).padStart(2, '0');
}

// spoken(75) is "1 minute 15 seconds", for screen readers.
export function spoken(secs) {
  secs = Math.max(0, Math.floor(secs));
  const parts = [];
  const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
  if (h) parts.push(h + (h === 1 ? ' hour' : ' hours'));
  if (m) parts.push(m + (m === 1 ? ' minute' : ' minutes'));
  if (s || !parts.length) parts.push(s + (s === 1 ? ' second' : ' seconds'));
  return parts.join(' ');
}

// time() is an RFC 3339 time shown in the browser's locale.
export function time(rfc3339) {
  if (!rfc3339) return '';
  const d = new Date(rfc3339);
  return isNaN(d) ? rfc3339 : d.toLocaleString();
}

// rfc3339() turns a datetime-local input's value into RFC 3339 (UTC), or '' for none.
export function rfc3339(local) {
  if (!local) return '';
  const d = new Date(local);
  return isNaN(d) ? '' : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// localInput() is a Date as a datetime-local input's value.
export function localInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

// Supervision modes as people call them.
export const MODE_LABEL = { spy: 'Monitor', whisper: 'Coach', barge: 'Barge' };
