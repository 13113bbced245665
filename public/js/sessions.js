// The drawer's sessions card: the user's alive sessions (device, state, last seen) and any manual presence.
import { ApiError, getJson } from './api.js';
import { h, stateColor } from './dom.js';
import { duration, timeLabel } from './time.js';

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 10_000;

export class SessionsCard {
  constructor({ states, tz }) {
    Object.assign(this, { states, tz });
    this.user = null;
    this.ctrl = null;
    this.timer = null;
  }

  /** Shows `user`'s sessions and refreshes them while the drawer is open (a session may come or go without a state change). */
  show(user) {
    this.user = user;
    $('sessions-count').textContent = '';
    $('manual').replaceChildren();
    $('sessions').replaceChildren(h('span', { class: 'muted', text: 'Loading…' }));
    this.load();
  }

  hide() {
    this.user = null;
    this.ctrl?.abort();
    clearTimeout(this.timer);
  }

  async load() {
    clearTimeout(this.timer);
    this.ctrl?.abort();
    const user = this.user;
    if (!user) return;
    const ctrl = (this.ctrl = new AbortController());
    const path = `/users/${encodeURIComponent(user)}`;
    try {
      const [status, list] = await Promise.all([
        getJson(`/status/${encodeURIComponent(user)}`, {}, { signal: ctrl.signal }),
        getJson(`${path}/sessions`, {}, { signal: ctrl.signal }),
      ]);
      if (ctrl.signal.aborted) return;
      this.render(status, list.sessions);
    } catch (err) {
      if (ctrl.signal.aborted) return;
      const text = err instanceof ApiError && err.status === 404 ? 'No sessions: this user has not been seen.' : `Could not load: ${err.message}`;
      $('sessions').replaceChildren(h('p', { class: 'muted', text }));
    }
    if (this.user === user) this.timer = setTimeout(() => this.load(), REFRESH_MS);
  }

  render(status, sessions) {
    const tz = this.tz();
    const now = Date.now();
    const pill = (state) => h('span', { class: 'pill', vars: { '--c': stateColor(this.states, state) }, dataset: { state } }, [
      h('span', { class: 'swatch' }), h('span', { text: state }),
    ]);
    $('sessions-count').textContent = `${sessions.length} alive`;
    const m = status.manual;
    $('manual').replaceChildren(...(m
      ? [h('span', { text: 'Manual presence' }), pill(m.state),
        h('span', { class: 'muted', dataset: { until: m.until ?? '' }, text: m.until ? `until ${timeLabel(Date.parse(m.until), tz, { date: true, seconds: false })}` : 'until cleared' })]
      : [h('span', { class: 'muted', text: 'No manual presence: the state follows the sessions.' })]));
    if (!sessions.length) return $('sessions').replaceChildren(h('p', { class: 'muted', text: 'No alive session: the user is Offline.' }));
    const row = (x) => h('tr', { dataset: { session: x.session_id } }, [
      h('td', { text: x.session_id }),
      h('td', { text: x.client ?? '—' }),
      h('td', {}, [pill(x.state), h('span', { class: 'muted', text: ` ${duration(now - Date.parse(x.state_since))}` })]),
      h('td', { title: x.last_heartbeat, text: `${duration(now - Date.parse(x.last_heartbeat))} ago` }),
      h('td', { title: x.last_active, text: `${duration(now - Date.parse(x.last_active))} ago` }),
    ]);
    $('sessions').replaceChildren(h('table', { class: 'sessions-table' }, [
      h('thead', {}, [h('tr', {}, ['Session', 'Client', 'State', 'Last seen', 'Last active'].map((t) => h('th', { text: t })))]),
      h('tbody', {}, sessions.map(row)),
    ]));
  }
}
