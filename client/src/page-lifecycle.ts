/** Adds a listener; returns a function that removes it. */
export function listen(target: EventTarget, type: string, fn: (e: Event) => void): () => void {
  target.addEventListener(type, fn);
  return () => target.removeEventListener(type, fn);
}

/**
 * Calls `leave` when the page goes away or the browser freezes it (a frozen page runs no code, so it could
 * not heartbeat), and `back` when it returns from the back/forward cache (`pageshow` with `persisted`) or
 * is resumed. Returns a function that stops listening.
 */
export function watchPageLifecycle(leave: () => void, back: () => void): () => void {
  const offs = [
    listen(window, 'pagehide', leave),
    listen(document, 'freeze', leave),
    listen(window, 'pageshow', (e) => (e as PageTransitionEvent).persisted && back()),
    listen(document, 'resume', back),
  ];
  return () => offs.forEach((off) => off());
}
