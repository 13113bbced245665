// Small DOM helpers. Text always goes in through textContent: user ids and content are untrusted.
const SVG_NS = 'http://www.w3.org/2000/svg';

function fill(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') node.textContent = String(v);
    else if (k === 'class') node.setAttribute('class', v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'vars') for (const [name, val] of Object.entries(v)) node.style.setProperty(name, val);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children ?? []) if (c) node.append(c);
  return node;
}

/** An HTML element: h('div', { class: 'x', text: 'hi' }, [children]). */
export const h = (tag, attrs, children) => fill(document.createElement(tag), attrs, children);

/** An SVG element, same signature as h. */
export const s = (tag, attrs, children) => fill(document.createElementNS(SVG_NS, tag), attrs, children);

const FALLBACK = ['#0ea5e9', '#14b8a6', '#f97316', '#ec4899', '#6366f1', '#84cc16', '#eab308', '#06b6d4'];

/** The registry's colour for a state, or a stable fallback for states registered without one. */
export function stateColor(states, name) {
  const c = states.get(name)?.color;
  if (c) return c;
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return FALLBACK[hash % FALLBACK.length];
}

/** Board and legend order: Online first, Offline last, the rest as the registry lists them. */
export function stateOrder(list) {
  const rank = (s) => (s.name === 'Online' ? 0 : s.name === 'Offline' ? 2 : 1);
  return [...list].sort((a, b) => rank(a) - rank(b)).map((s) => s.name);
}

const tip = () => document.getElementById('tooltip');

/** Shows the shared tooltip near the pointer with rows of [label, value] (and an optional title). */
export function showTooltip(ev, { title, color, rows, pre }) {
  const el = tip();
  el.replaceChildren(
    h('div', { class: 'tt-title' }, [h('span', { class: 'swatch', vars: { '--c': color ?? 'transparent' } }), h('span', { text: title })]),
    h('dl', {}, rows.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })])),
    ...(pre ? [h('pre', { text: pre })] : []),
  );
  el.hidden = false;
  const pad = 14;
  const { innerWidth: w, innerHeight: hgt } = window;
  const r = el.getBoundingClientRect();
  const x = ev.clientX + pad + r.width > w ? ev.clientX - pad - r.width : ev.clientX + pad;
  const y = ev.clientY + pad + r.height > hgt ? Math.max(4, ev.clientY - pad - r.height) : ev.clientY + pad;
  el.style.transform = `translate(${Math.max(4, x)}px, ${y}px)`;
}

export function hideTooltip() {
  tip().hidden = true;
}
