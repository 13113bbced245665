import type { Config } from '../config.js';
import type { Db } from '../db/types.js';
import { installCron, uninstallCron } from '../jobs/pg-cron.js';

export async function cronCommand(db: Db, config: Config, sub: string | undefined): Promise<void> {
  if (sub === 'install') console.log(`scheduled: ${(await installCron(db, config)).join(', ')}`);
  else if (sub === 'uninstall') console.log(`unscheduled: ${(await uninstallCron(db, config)).join(', ') || 'nothing'}`);
  else throw new Error('usage: ck cron install | uninstall');
}
