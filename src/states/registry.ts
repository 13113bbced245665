import type { Queryable } from '../db/types.js';

export interface StateType {
  name: string;
  online: boolean;
  builtin: boolean;
  color: string | null;
  /** Precedence between sessions' states (higher wins); built-ins DoNotDisturb 50 ... Offline 0. */
  priority: number;
}

/** The state registry, cached in memory; reloaded when a name is not found (another instance added it). */
export class StateRegistry {
  private byName = new Map<string, StateType>();
  private loadedAt = 0;

  constructor(private readonly db: Queryable) {}

  async load(): Promise<StateType[]> {
    const { rows } = await this.db.query<StateType>(
      `SELECT name, online, builtin, color, priority FROM state_types ORDER BY builtin DESC, priority DESC, name`,
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

  /** Registers a state type; without a priority it ranks with Online. */
  async add(input: { name: string; online: boolean; color?: string; priority?: number }): Promise<StateType> {
    const { rows } = await this.db.query<StateType>(
      `INSERT INTO state_types (name, online, color, priority)
       VALUES ($1, $2, $3, coalesce($4, (SELECT priority FROM state_types WHERE name = 'Online')))
       RETURNING name, online, builtin, color, priority`,
      [input.name, input.online, input.color ?? null, input.priority ?? null],
    );
    this.byName.set(rows[0]!.name, rows[0]!);
    return rows[0]!;
  }
}
