/** A minimal typed event emitter. A listener that throws does not stop the others (it is rethrown apart). */
export class Emitter<E> {
  private listeners: { [K in keyof E]?: Set<(value: E[K]) => void> } = {};

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E>(type: K, fn: (value: E[K]) => void): () => void {
    (this.listeners[type] ??= new Set()).add(fn);
    return () => this.off(type, fn);
  }

  off<K extends keyof E>(type: K, fn: (value: E[K]) => void): void {
    this.listeners[type]?.delete(fn);
  }

  protected emit<K extends keyof E>(type: K, value: E[K]): void {
    for (const fn of this.listeners[type] ?? []) {
      try {
        fn(value);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}
