// Timers that keep their pace in a hidden tab. Browsers throttle a background page's timers (Chrome: to
// once a minute after 5 minutes hidden), which would let a session expire; a dedicated Worker's timers are
// not throttled that way. Where a Worker cannot be made (Node, or a CSP without `worker-src blob:`), the
// page's own setTimeout is used.

/** Calls fn after ms; returns a function that cancels it. */
export type Schedule = (fn: () => void, ms: number) => () => void;

export const mainTimer: Schedule = (fn, ms) => {
  const t = setTimeout(fn, ms);
  return () => clearTimeout(t);
};

const WORKER_SOURCE = 'var t={};onmessage=function(e){var i=e.data[0],m=e.data[1];clearTimeout(t[i]);'
  + 'if(m>=0)t[i]=setTimeout(function(){delete t[i];postMessage(i)},m)}';

let shared: Schedule | undefined;

/** One Worker-backed Schedule per page, made on first use; mainTimer where Workers are unavailable. */
export function backgroundTimer(): Schedule {
  return (shared ??= makeWorkerTimer() ?? mainTimer);
}

function makeWorkerTimer(): Schedule | undefined {
  if (typeof Worker !== 'function' || typeof Blob !== 'function' || typeof URL?.createObjectURL !== 'function') return undefined;
  const pending = new Map<number, { fn: () => void; due: number; cancel?: () => void }>();
  let next = 0;
  let worker: Worker | undefined;
  // The Worker failed (e.g. blocked by CSP, which may only show as an error event): move every pending
  // timer to the page's own setTimeout, and use that from now on.
  const fallBack = () => {
    worker?.terminate();
    worker = undefined;
    shared = mainTimer;
    for (const p of pending.values()) p.cancel = mainTimer(p.fn, Math.max(0, p.due - Date.now()));
  };
  try {
    const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
    worker = new Worker(url);
    URL.revokeObjectURL(url);
  } catch {
    return undefined;
  }
  worker.onmessage = (e: MessageEvent<number>) => {
    const p = pending.get(e.data);
    pending.delete(e.data);
    p?.fn();
  };
  worker.onerror = fallBack;
  return (fn, ms) => {
    const id = next++;
    const p: { fn: () => void; due: number; cancel?: () => void } = {
      fn: () => {
        pending.delete(id);
        fn();
      },
      due: Date.now() + ms,
    };
    pending.set(id, p);
    if (worker) worker.postMessage([id, ms]);
    else p.cancel = mainTimer(p.fn, ms);
    return () => {
      pending.delete(id);
      p.cancel?.();
      worker?.postMessage([id, -1]);
    };
  };
}
