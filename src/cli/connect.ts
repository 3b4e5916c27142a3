import { Firestore } from '@google-cloud/firestore';
import { z } from 'zod';
import { defineTask, type TaskDefinition } from '../task-definition.js';
import { OnceTaskManager } from '../manager.js';
import type { OnceTaskLogger } from '../logger.js';
import type { ListOptions, ListPage } from '../admin/task-reads.js';

/** The options every command takes. */
export interface GlobalOptions {
  project?: string;
  env?: string;
  collection?: string;
  json?: boolean;
  yes?: boolean;
}

/** A logger that says nothing: the CLI prints its own output. */
const quiet: OnceTaskLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => quiet };

/**
 * A manager for the CLI: on the emulator when `FIRESTORE_EMULATOR_HOST` is set, else on the
 * project with Application Default Credentials. It never starts workers.
 */
export function connect(options: GlobalOptions): { manager: OnceTaskManager; firestore: Firestore; close(): Promise<void> } {
  const firestore = new Firestore({ ...(options.project ? { projectId: options.project } : {}) });
  const manager = new OnceTaskManager({
    firestore,
    ...(options.env ? { env: options.env } : {}),
    ...(options.collection ? { collection: options.collection } : {}),
    listen: false,
    logger: quiet,
  });
  return { manager, firestore, close: () => firestore.terminate() };
}

/** A definition for a kind named on the command line (its payload is not validated: the CLI never creates tasks). */
export function kindByName(kind: string): TaskDefinition {
  return defineTask({ kind, schema: z.unknown(), id: () => kind });
}

/** Every page of a listing, following its cursors (at most `maxPages`). */
export async function* pages(manager: OnceTaskManager, filter: Omit<ListOptions, 'cursor'>, maxPages = Infinity): AsyncGenerator<ListPage> {
  let cursor: string | undefined;
  for (let n = 0; n < maxPages; n++) {
    const page = await manager.list({ ...filter, ...(cursor ? { cursor } : {}) });
    yield page;
    if (page.nextCursor === null) return;
    cursor = page.nextCursor;
  }
}
