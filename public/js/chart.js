// Time per state per day (from /summaries) as a stacked bar chart in SVG.
import { h, hideTooltip, s, showTooltip, stateColor } from './dom.js';
import { dayLabel, duration } from './time.js';

const M = { top: 22, right: 12, bottom: 30, left: 48 };
const HEIGHT = 260;

/** Round tick steps for a value axis in `unit` seconds. */
function ticksFor(maxSec, unit) {
  const max = Math.max(maxSec / unit, 1);
  const steps = unit === 3600 ? [1, 2, 3, 4, 6, 8, 12] : [1, 2, 5, 10, 15, 20, 30];
  const stepSize = steps.find((st) => max / st <= 5) ?? steps[steps.length - 1];
  const top = Math.ceil(max / stepSize) * stepSize;
  const out = [];
  for (let v = 0; v <= top + 1e-9; v += stepSize) out.push(v);
  return { top: top * unit, values: out };
}

/**
 * Renders the summary's days into `container`; `selected` (YYYY-MM-DD) gets a highlight.
 * States stack in `order`; states the registry does not list go on top.
 */
export function renderChart(container, { summary, states, order, selected }) {
  const days = summary.days;
  const width = Math.max(300, container.clientWidth);
  const innerW = width - M.left - M.right;
  const innerH = HEIGHT - M.top - M.bottom;
  const maxTotal = Math.max(0, ...days.map((d) => d.total_seconds));
  const unit = maxTotal >= 2 * 3600 ? 3600 : 60;
  const { top, values } = ticksFor(maxTotal, unit);
  const y = (sec) => M.top + innerH - (sec / top) * innerH;
  const band = innerW / days.length;
  const barW = Math.min(56, band * 0.62);
  const seen = new Set(days.flatMap((d) => Object.keys(d.seconds)));
  const stack = order.filter((st) => seen.has(st)).concat([...seen].filter((st) => !order.includes(st)));

  const svg = s('svg', { width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: 'img', 'aria-label': 'Time per state per day' });
  for (const v of values) {
    svg.append(
      s('line', { class: v === 0 ? 'baseline' : 'hgrid', x1: M.left, x2: width - M.right, y1: y(v * unit), y2: y(v * unit) }),
      s('text', { class: 'axis', x: M.left - 8, y: y(v * unit) + 4, 'text-anchor': 'end', text: `${v}${unit === 3600 ? 'h' : 'm'}` }),
    );
  }
  const segments = [];
  days.forEach((d, i) => {
    const cx = M.left + band * i + band / 2;
    if (d.date === selected) {
      svg.append(s('rect', { class: 'sel', x: cx - band / 2 + 2, y: M.top - 14, width: band - 4, height: innerH + 14 + 24, rx: 6 }));
    }
    let acc = 0;
    for (const st of stack) {
      const sec = d.seconds[st] ?? 0;
      if (sec <= 0) continue;
      const y0 = y(acc);
      const y1 = y(acc + sec);
      acc += sec;
      segments.push({ date: d.date, state: st, sec, total: d.total_seconds });
      svg.append(s('rect', {
        class: 'seg', x: cx - barW / 2, y: y1, width: barW, height: Math.max(0.5, y0 - y1),
        fill: stateColor(states, st), dataset: { i: String(segments.length - 1), state: st },
      }));
    }
    if (d.total_seconds > 0) {
      svg.append(s('text', { class: 'bar-total', x: cx, y: y(d.total_seconds) - 5, 'text-anchor': 'middle', text: duration(d.total_seconds * 1000, { days: false }) }));
    }
    svg.append(s('text', { class: `axis${d.date === selected ? ' strong' : ''}`, x: cx, y: HEIGHT - 10, 'text-anchor': 'middle', text: dayLabel(d.date, { month: false }) }));
  });

  svg.addEventListener('pointermove', (ev) => {
    const seg = ev.target.closest?.('.seg');
    if (!seg) return hideTooltip();
    const g = segments[Number(seg.dataset.i)];
    showTooltip(ev, {
      title: g.state,
      color: stateColor(states, g.state),
      rows: [
        ['Day', dayLabel(g.date)],
        ['Time', duration(g.sec * 1000, { days: false })],
        ['Share', `${((g.sec / g.total) * 100).toFixed(1)} % of ${duration(g.total * 1000, { days: false })}`],
      ],
    });
  });
  svg.addEventListener('pointerleave', hideTooltip);

  const legend = h('ul', { class: 'legend' }, stack.map((st) => h('li', { vars: { '--c': stateColor(states, st) } }, [
    h('span', { class: 'swatch' }), h('span', { text: st }), h('b', { text: duration((summary.totals[st] ?? 0) * 1000) }),
  ])));
  const note = maxTotal > 0 ? null : h('p', { class: 'muted empty-note', text: 'No recorded time in this range.' });
  container.replaceChildren(svg, legend, ...(note ? [note] : []));
}
