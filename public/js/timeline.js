// A user's timeline as SVG: one lane per local day, a coloured band per state interval.
import { h, hideTooltip, s, showTooltip, stateColor } from './dom.js';
import { dayLabel, duration, localInstant, timeLabel } from './time.js';

const LEFT = 84;
const RIGHT = 14;
const TOP = 26;

/**
 * Checkpoints to intervals. The open one runs to now, unless the user is Offline by now (`currentState`,
 * from /status): then the server ended it where the heartbeat ran out and the rest is Offline.
 */
export function toIntervals(entries, now, currentState) {
  const out = entries.map((c) => {
    const start = Date.parse(c.timestamp);
    return { state: c.state, start, end: start + c.duration_ms, open: c.open, source: c.source, content: c.content };
  });
  const last = out[out.length - 1];
  if (last?.open && last.state !== 'Offline' && currentState === 'Offline') {
    last.open = false;
    out.push({ state: 'Offline', start: last.end, end: now, open: true, source: 'heartbeat expired', content: null, implicit: true });
  } else if (last?.open) {
    last.end = Math.max(last.end, now);
  }
  return out;
}

/**
 * Renders `intervals` over `lanes` ([{date, from, to}], instants in ms) into `container`.
 * Time with no checkpoint (before the first one, or still to come) is hatched.
 */
export function renderTimeline(container, { lanes, intervals, states, order, tz, now }) {
  const width = Math.max(300, container.clientWidth);
  const laneH = lanes.length === 1 ? 46 : 24;
  const gap = lanes.length === 1 ? 0 : 8;
  const height = TOP + lanes.length * (laneH + gap) + 8;
  const innerW = width - LEFT - RIGHT;
  const svg = s('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'State timeline' });
  svg.append(s('defs', {}, [
    s('pattern', { id: 'nodata', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' }, [
      s('rect', { width: 6, height: 6, fill: '#f8fafc' }),
      s('line', { x1: 0, y1: 0, x2: 0, y2: 6, stroke: '#e2e8f0', 'stroke-width': 3 }),
    ]),
  ]));

  const step = width > 760 ? 120 : width > 520 ? 180 : 360; // minutes between ticks
  const totals = new Map();
  lanes.forEach((lane, li) => {
    const y = TOP + li * (laneH + gap);
    const x = (t) => LEFT + ((t - lane.from) / (lane.to - lane.from)) * innerW;
    const ticks = [];
    for (let m = 0; m <= 1440; m += step) ticks.push({ m, t: m === 1440 ? lane.to : localInstant(lane.date, m, tz) });
    if (li === 0) {
      for (const { m, t } of ticks) {
        svg.append(s('text', { class: 'axis', x: x(t), y: TOP - 9, 'text-anchor': m === 0 ? 'start' : m === 1440 ? 'end' : 'middle', text: `${String(m / 60).padStart(2, '0')}:00` }));
      }
    }
    svg.append(
      s('text', { class: 'lane-label', x: LEFT - 10, y: y + laneH / 2 + 4, 'text-anchor': 'end', text: dayLabel(lane.date, { month: lanes.length === 1 }) }),
      s('rect', { class: 'lane-bg', x: LEFT, y, width: innerW, height: laneH, fill: 'url(#nodata)', rx: 3 }),
    );
    intervals.forEach((iv, i) => {
      const a = Math.max(iv.start, lane.from);
      const b = Math.min(iv.end, lane.to);
      if (b <= a) return;
      totals.set(iv.state, (totals.get(iv.state) ?? 0) + (b - a));
      svg.append(s('rect', {
        class: `band${iv.state === 'Offline' ? ' offline' : ''}${iv.implicit ? ' implicit' : ''}`,
        x: x(a), y, width: Math.max(1, x(b) - x(a)), height: laneH,
        fill: stateColor(states, iv.state), dataset: { i: String(i), state: iv.state },
      }));
    });
    for (const { m, t } of ticks) {
      if (m > 0 && m < 1440) svg.append(s('line', { class: 'grid', x1: x(t), x2: x(t), y1: y, y2: y + laneH }));
    }
    if (now > lane.from && now < lane.to) {
      svg.append(s('line', { class: 'now', x1: x(now), x2: x(now), y1: y - 3, y2: y + laneH + 3 }));
    }
  });

  svg.addEventListener('pointermove', (ev) => {
    const band = ev.target.closest?.('.band');
    if (!band) return hideTooltip();
    const iv = intervals[Number(band.dataset.i)];
    showTooltip(ev, {
      title: iv.implicit ? 'Offline (heartbeat expired)' : iv.state,
      color: stateColor(states, iv.state),
      rows: [
        ['Start', timeLabel(iv.start, tz, { date: true })],
        ['End', iv.open ? `ongoing (${timeLabel(now, tz)})` : timeLabel(iv.end, tz, { date: true })],
        ['Duration', duration(iv.end - iv.start)],
        ['Source', iv.source],
      ],
      pre: iv.content ? JSON.stringify(iv.content, null, 2).slice(0, 1200) : undefined,
    });
  });
  svg.addEventListener('pointerleave', hideTooltip);

  const present = order.filter((st) => totals.has(st)).concat([...totals.keys()].filter((st) => !order.includes(st)));
  const legend = h('ul', { class: 'legend' }, present.map((st) => h('li', { vars: { '--c': stateColor(states, st) } }, [
    h('span', { class: 'swatch' }), h('span', { text: st }), h('b', { text: duration(totals.get(st)) }),
  ])));
  legend.append(h('li', { class: 'nodata-key' }, [h('span', { class: 'swatch' }), h('span', { text: 'No data' })]));
  const note = intervals.length ? null : h('p', { class: 'muted empty-note', text: 'No state recorded for this user in this range.' });
  container.replaceChildren(svg, legend, ...(note ? [note] : []));
}
