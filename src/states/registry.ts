import type { Queryable } from '../db/types.js';

export interface StateType {
  name: string;
  online: boolean;
  builtin: boolean;
  color: string | null;
}

/** The state registry, cached in memory; reloaded when a name is not found (another instance added it). */
export class StateRegistry {
  private byName = new Map<string, StateType>();
  private loadedAt = 0;

  constructor(private readonly db: Queryable) {}

  async load(): Promise<StateType[]> {
    const { rows } = await this.db.query<StateType>(
      `SELECT name, online, builtin, color FROM state_types ORDER BY builtin DESC, name`,
    );
    this.byName = new Map(rows.map((r) => [r.name, r]));
    this.loadedAt = Date.now();
    return rows;
  }

  list(): StateType[] {
    return [...this.byName.values()];
  }

  /** The state type, reloading at most once a second on a miss. */
  async get(name: string): Promise<StateType | undefined> {
    const hit = this.byName.get(name);
    if (hit || Date.now() - this.loadedAt < 1000) return hit;
    await this.load();
    return this.byName.get(name);
  }

  /** Online flag for a state known to exist (sessions only hold registered states). */
  isOnline(name: string): boolean {
    return this.byName.get(name)?.online ?? false;
  }

  async add(input: { name: string; online: boolean; color?: string }): Promise<StateType> {
    const { rows } = await this.db.query<StateType>(
      `INSERT INTO state_types (name, online, color) VALUES ($1, $2, $3) RETURNING name, online, builtin, color`,
      [input.name, input.online, input.color ?? null],
    );
    this.byName.set(rows[0]!.name, rows[0]!);
    return rows[0]!;
  }
}
