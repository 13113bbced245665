import type { QueuedCheckpoint } from './types.js';

/** What the queue persists to: localStorage in browsers, or anything with the same three methods. */
export type QueueStorage = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

/** The page's localStorage, or null (Node, or storage disabled by the browser). */
export function defaultStorage(): QueueStorage | null {
  try {
    return typeof window === 'object' ? window.localStorage : null;
  } catch {
    return null; // SecurityError: storage blocked
  }
}

/**
 * Checkpoints made while ck was unreachable, oldest first, mirrored to storage under `key` so a reload
 * of the tab keeps them. Storage failures (quota, private mode) leave the in-memory copy working.
 */
export class CheckpointQueue {
  items: QueuedCheckpoint[] = [];

  constructor(private storage: QueueStorage | null, private key: string) {
    try {
      const saved = JSON.parse(storage?.getItem(key) ?? '[]');
      if (Array.isArray(saved)) this.items = saved.filter((c) => typeof c?.state === 'string' && typeof c.timestamp === 'number');
    } catch {
      // unreadable: start empty
    }
  }

  get length(): number {
    return this.items.length;
  }

  push(c: QueuedCheckpoint): void {
    this.items.push(c);
    this.save();
  }

  shift(): void {
    this.items.shift();
    this.save();
  }

  private save(): void {
    try {
      if (this.items.length) this.storage?.setItem(this.key, JSON.stringify(this.items));
      else this.storage?.removeItem(this.key);
    } catch {
      // kept in memory only
    }
  }
}
