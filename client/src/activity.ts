const INPUT = ['pointerdown', 'pointermove', 'keydown', 'touchstart', 'wheel', 'scroll'];

/**
 * Watches input and visibility: the user is active while the page is visible and had input in the last
 * `idleMs()` milliseconds. Calls onChange when that flips; returns a function that stops watching.
 */
export function watchActivity(idleMs: () => number, onChange: (active: boolean) => void): () => void {
  let lastInput = Date.now();
  let active = !document.hidden;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const update = () => {
    clearTimeout(timer);
    const left = lastInput + idleMs() - Date.now();
    const now = !document.hidden && left > 0;
    // Checked again when the idle time would run out; input in between pushes that back.
    if (now) timer = setTimeout(update, left);
    if (now !== active) onChange((active = now));
  };
  const input = () => {
    lastInput = Date.now();
    if (!active) update();
  };
  const opts = { capture: true, passive: true };
  for (const type of INPUT) addEventListener(type, input, opts);
  document.addEventListener('visibilitychange', update);
  update();
  return () => {
    clearTimeout(timer);
    for (const type of INPUT) removeEventListener(type, input, opts);
    document.removeEventListener('visibilitychange', update);
  };
}
