// The user drawer: current state, sessions and manual presence, a day or week timeline, and time per state per day.
import { ApiError, getJson, pages } from './api.js';
import { renderChart } from './chart.js';
import { SessionsCard } from './sessions.js';
import { renderTimeline, toIntervals } from './timeline.js';
import { h, hideTooltip, stateColor } from './dom.js';
import { addDays, dateIn, dayLabel, duration, startOfDay, timeLabel } from './time.js';

const $ = (id) => document.getElementById(id);
const MAX_TIMELINE_PAGES = 50;

export class Detail {
  constructor({ states, order, tz, board }) {
    Object.assign(this, { states, order, tz, board });
    this.user = null;
    this.range = 'day';
    this.date = null;
    this.data = null;
    this.ctrl = null;
    this.sessions = new SessionsCard({ states, tz });
    this.drawer = $('drawer');
    this.backdrop = $('drawer-backdrop');
    $('drawer-close').addEventListener('click', () => this.close());
    this.backdrop.addEventListener('click', () => this.close());
    this.onKey = (ev) => ev.key === 'Escape' && this.user && this.close();
    document.addEventListener('keydown', this.onKey);
    for (const b of this.drawer.querySelectorAll('[data-range]')) {
      b.addEventListener('click', () => this.setRange(b.dataset.range));
    }
    $('prev').addEventListener('click', () => this.shift(-1));
    $('next').addEventListener('click', () => this.shift(1));
    $('today').addEventListener('click', () => this.setDate(dateIn(Date.now(), this.tz())));
    $('date').addEventListener('change', (ev) => ev.target.value && this.setDate(ev.target.value));
    // Redraw when the width changes (window, scrollbar), not on every layout of the drawer.
    let width = 0;
    this.resize = new ResizeObserver(([entry]) => {
      if (Math.abs(entry.contentRect.width - width) < 1) return;
      width = entry.contentRect.width;
      this.draw();
    });
    this.resize.observe(this.drawer);
  }

  destroy() {
    this.close();
    this.resize.disconnect();
    document.removeEventListener('keydown', this.onKey);
  }

  open(userId) {
    this.returnFocus = document.activeElement;
    this.user = userId;
    this.date ??= dateIn(Date.now(), this.tz());
    $('drawer-title').textContent = userId;
    this.drawer.hidden = false;
    this.backdrop.hidden = false;
    this.stateLine();
    $('drawer-close').focus();
    this.sessions.show(userId);
    this.load();
  }

  close() {
    if (!this.user) return;
    this.ctrl?.abort();
    this.sessions.hide();
    this.user = null;
    this.data = null;
    this.drawer.hidden = true;
    this.backdrop.hidden = true;
    hideTooltip();
    if (this.returnFocus?.isConnected) this.returnFocus.focus();
  }

  setRange(range) {
    this.range = range;
    for (const b of this.drawer.querySelectorAll('[data-range]')) b.classList.toggle('on', b.dataset.range === range);
    this.load();
  }

  setDate(date) {
    this.date = date;
    this.load();
  }

  shift(sign) {
    this.setDate(addDays(this.date, sign * (this.range === 'week' ? 7 : 1)));
  }

  /** The board saw this user change state: update the header, and the charts if they show today. */
  userChanged(user) {
    if (user.id !== this.user) return;
    this.stateLine();
    this.sessions.load();
    if (this.date >= dateIn(Date.now(), this.tz())) {
      clearTimeout(this.reloadTimer);
      this.reloadTimer = setTimeout(() => this.load(), 800);
    }
  }

  stateLine() {
    const u = this.board.users.get(this.user);
    const el = $('drawer-state');
    if (!u) return el.replaceChildren(h('span', { class: 'muted', text: 'Not on the board' }));
    el.replaceChildren(
      h('span', { class: 'pill', vars: { '--c': stateColor(this.states, u.state) }, dataset: { state: u.state } }, [
        h('span', { class: 'swatch' }), h('span', { text: u.state }),
      ]),
      h('span', { class: 'muted', text: ` since ${timeLabel(u.since, this.tz(), { date: true, seconds: false })} · ${duration(Date.now() - u.since)}` }),
    );
  }

  /** Fetches the timeline (all pages) and the week's summaries for the chosen range and zone. */
  async load() {
    if (!this.user) return;
    this.ctrl?.abort();
    const ctrl = (this.ctrl = new AbortController());
    const tz = this.tz();
    const first = this.range === 'week' ? addDays(this.date, -6) : this.date;
    const lanes = [];
    for (let d = first; d <= this.date; d = addDays(d, 1)) lanes.push({ date: d, from: startOfDay(d, tz), to: startOfDay(addDays(d, 1), tz) });
    $('date').value = this.date;
    $('timeline-range').textContent = lanes.length === 1 ? dayLabel(this.date) : `${dayLabel(first)} – ${dayLabel(this.date)}`;
    $('chart-range').textContent = `${dayLabel(addDays(this.date, -6))} – ${dayLabel(this.date)} · ${tz}`;
    for (const id of ['timeline', 'chart']) $(id).classList.add('loading');

    const user = this.user;
    const timeline = (async () => {
      const entries = [];
      let n = 0;
      for await (const page of pages('/checkpoints', {
        user_id: user, from: new Date(lanes[0].from).toISOString(), to: new Date(lanes[lanes.length - 1].to).toISOString(), limit: 1000,
      }, { signal: ctrl.signal })) {
        entries.push(...page.checkpoints);
        if (++n >= MAX_TIMELINE_PAGES) break;
      }
      return entries;
    })();
    const summary = getJson('/summaries', { user_id: user, from: addDays(this.date, -6), to: this.date, tz }, { signal: ctrl.signal });
    const [t, c] = await Promise.allSettled([timeline, summary]);
    if (ctrl.signal.aborted) return;
    this.data = { tz, lanes, now: Date.now(), entries: t.value, summary: c.value, errors: { timeline: t.reason, chart: c.reason } };
    this.draw();
  }

  draw() {
    if (!this.data || this.drawer.hidden) return;
    const { tz, lanes, now, entries, summary, errors } = this.data;
    const shared = { states: this.states, order: this.order, tz };
    for (const id of ['timeline', 'chart']) $(id).classList.remove('loading');
    if (errors.timeline) showError($('timeline'), errors.timeline);
    else renderTimeline($('timeline'), { ...shared, lanes, now, intervals: toIntervals(entries, now, this.board.users.get(this.user)?.state) });
    if (errors.chart) showError($('chart'), errors.chart);
    else renderChart($('chart'), { ...shared, summary, selected: this.date });
    $('chart').dataset.tz = tz;
  }
}

function showError(container, err) {
  const text = err instanceof ApiError && err.status === 404 ? 'No data for this user yet.' : `Could not load: ${err.message}`;
  container.replaceChildren(h('p', { class: 'error', text }));
}
