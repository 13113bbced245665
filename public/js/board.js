// The live board: users grouped by state. Each group renders at most `cap` chips (newest change first)
// and counts the rest; events move single chips, so nothing is re-rendered wholesale per event.
import { h, stateColor } from './dom.js';
import { age, timeLabel } from './time.js';

const PAGE = 100;

export class Board {
  /** @param {{root: HTMLElement, totals: HTMLElement, states: Map, order: string[], tz: () => string, onSelect: (id: string) => void, onChange: (user: object) => void}} opts */
  constructor(opts) {
    Object.assign(this, opts);
    this.users = new Map(); // user_id -> { id, state, since }
    this.groups = new Map(); // state -> group
    this.pending = new Map(); // user_id -> latest unapplied event
    this.scheduled = false;
    this.filter = '';
    for (const state of this.order) this.group(state);
    this.root.addEventListener('click', (ev) => {
      const chip = ev.target.closest('.chip');
      if (chip) return this.onSelect(chip.dataset.user);
      const more = ev.target.closest('.more');
      if (more) this.showMore(more.closest('.group').dataset.stateGroup);
    });
    this.timer = setInterval(() => this.refreshAges(), 20_000);
  }

  destroy() {
    clearInterval(this.timer);
    this.root.replaceChildren();
    this.totals.replaceChildren();
  }

  group(state) {
    let g = this.groups.get(state);
    if (g) return g;
    const color = stateColor(this.states, state);
    const count = h('span', { class: 'count', text: '0' });
    const list = h('ul', { class: 'chips' });
    const more = h('button', { class: 'more', type: 'button', hidden: true });
    const empty = h('p', { class: 'empty', text: 'No users' });
    const el = h('section', { class: 'group', dataset: { stateGroup: state }, vars: { '--c': color } }, [
      h('header', {}, [h('span', { class: 'swatch' }), h('h2', { text: state }), count]),
      list, empty, more,
    ]);
    g = { state, el, list, count, more, empty, members: new Set(), rendered: new Map(), matching: 0, cap: PAGE };
    this.groups.set(state, g);
    if (!this.order.includes(state)) {
      const offline = this.order.indexOf('Offline');
      if (offline < 0) this.order.push(state);
      else this.order.splice(offline, 0, state);
    }
    this.root.append(...this.order.map((s) => this.groups.get(s)?.el).filter(Boolean));
    return g;
  }

  matches(id) {
    return !this.filter || id.toLowerCase().includes(this.filter);
  }

  /**
   * Records that `id` is in `state` since `since` unless we already know something newer; returns the
   * previous record when the state changed. Status pages and events race at start-up: the newest wins.
   */
  upsert(id, state, since) {
    const cur = this.users.get(id);
    if (cur && (cur.since > since || cur.state === state)) return undefined;
    const next = { id, state, since };
    this.users.set(id, next);
    const match = this.matches(id);
    if (cur) {
      const from = this.group(cur.state);
      from.members.delete(id);
      if (match) from.matching--;
      const li = from.rendered.get(id);
      if (li) {
        li.remove();
        from.rendered.delete(id);
      }
    }
    const to = this.group(state);
    to.members.add(id);
    if (match) to.matching++;
    return cur ?? null;
  }

  /** A page of /status rows. Renders the group only while it still has room (the rest is counted). */
  addRows(rows) {
    const touched = new Set();
    for (const r of rows) {
      if (this.upsert(r.user_id, r.state, Date.parse(r.state_since)) !== undefined) touched.add(r.state);
    }
    for (const state of touched) {
      const g = this.group(state);
      if (g.rendered.size < g.cap) this.render(g);
      else this.footer(g);
    }
    this.renderTotals();
  }

  /** A state event from /events; applied on the next frame, the latest per user. */
  push(event) {
    this.pending.set(event.user_id, event);
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => this.flush();
    // Frames do not run in background tabs; a timer keeps the board current there.
    if (document.hidden) setTimeout(run, 250);
    else requestAnimationFrame(run);
  }

  flush() {
    this.scheduled = false;
    const events = [...this.pending.values()];
    this.pending.clear();
    const touched = new Set();
    for (const e of events) {
      const since = Date.parse(e.timestamp);
      const prev = this.upsert(e.user_id, e.state, since);
      if (prev === undefined) continue;
      if (prev) touched.add(prev.state);
      touched.add(e.state);
      const user = this.users.get(e.user_id);
      if (this.matches(user.id)) this.insertChip(this.group(e.state), user, true);
      this.onChange(user);
    }
    for (const state of touched) this.footer(this.group(state));
    if (touched.size) this.renderTotals();
  }

  chip(user) {
    const title = `${user.id} · ${user.state} since ${timeLabel(user.since, this.tz(), { date: true })}`;
    return h('li', { dataset: { user: user.id } }, [
      h('button', { class: 'chip', type: 'button', title, dataset: { user: user.id } }, [
        h('span', { class: 'name', text: user.id }),
        h('span', { class: 'age', text: age(Date.now() - user.since) }),
      ]),
    ]);
  }

  /** Puts one chip in place (newest first); past the rendered window it is only counted. */
  insertChip(g, user, flash) {
    const hidden = g.matching - 1 - g.rendered.size;
    let before = null;
    for (const li of g.list.children) {
      if (this.users.get(li.dataset.user).since <= user.since) {
        before = li;
        break;
      }
    }
    if (!before && hidden > 0) return;
    const li = this.chip(user);
    if (flash) {
      li.classList.add('flash');
      li.addEventListener('animationend', () => li.classList.remove('flash'), { once: true });
    }
    g.list.insertBefore(li, before);
    g.rendered.set(user.id, li);
    if (g.rendered.size > g.cap) {
      const last = g.list.lastElementChild;
      g.rendered.delete(last.dataset.user);
      last.remove();
    }
  }

  /** Re-renders one group's window from the model (load, filter, "show more"). */
  render(g) {
    const users = [];
    for (const id of g.members) if (this.matches(id)) users.push(this.users.get(id));
    users.sort((a, b) => b.since - a.since || (a.id < b.id ? -1 : 1));
    g.matching = users.length;
    g.rendered.clear();
    const items = users.slice(0, g.cap).map((u) => {
      const li = this.chip(u);
      g.rendered.set(u.id, li);
      return li;
    });
    g.list.replaceChildren(...items);
    this.footer(g);
  }

  footer(g) {
    g.count.textContent = this.filter ? `${g.matching.toLocaleString()} / ${g.members.size.toLocaleString()}` : g.members.size.toLocaleString();
    const hidden = g.matching - g.rendered.size;
    g.more.hidden = hidden <= 0;
    g.more.textContent = `Show ${Math.min(PAGE, hidden).toLocaleString()} more · ${hidden.toLocaleString()} not shown`;
    g.empty.hidden = g.matching > 0;
  }

  showMore(state) {
    const g = this.groups.get(state);
    g.cap += PAGE;
    this.render(g);
  }

  setFilter(text) {
    this.filter = text.trim().toLowerCase();
    for (const g of this.groups.values()) {
      g.cap = PAGE;
      this.render(g);
    }
  }

  refreshAges() {
    const now = Date.now();
    for (const g of this.groups.values()) {
      for (const [id, li] of g.rendered) li.querySelector('.age').textContent = age(now - this.users.get(id).since);
    }
  }

  /** The proportion bar and legend above the board. */
  renderTotals() {
    const total = this.users.size;
    const bar = h('div', { class: 'bar' });
    const legend = h('ul', { class: 'legend' });
    for (const state of this.order) {
      const n = this.groups.get(state).members.size;
      const color = stateColor(this.states, state);
      if (n) bar.append(h('span', { vars: { '--c': color, '--n': String(n) }, title: `${state}: ${n}` }));
      legend.append(h('li', { vars: { '--c': color } }, [
        h('span', { class: 'swatch' }), h('span', { text: state }), h('b', { text: n.toLocaleString() }),
      ]));
    }
    const online = this.order.filter((s) => this.states.get(s)?.online).reduce((a, s) => a + this.groups.get(s).members.size, 0);
    this.totals.replaceChildren(
      h('div', { class: 'headline' }, [
        h('b', { text: online.toLocaleString() }), h('span', { class: 'muted', text: ` online of ${total.toLocaleString()} users` }),
      ]),
      bar, legend,
    );
  }

  /** Colours changed or new states registered: refresh the swatches. */
  recolor() {
    for (const g of this.groups.values()) g.el.style.setProperty('--c', stateColor(this.states, g.state));
    this.renderTotals();
  }
}
