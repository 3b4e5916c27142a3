/**
 * Task kinds and a manager factory shared by the emulator tests. Every manager made here is
 * stopped after the test, so no worker outlives the test that started it.
 */
import { randomBytes } from 'node:crypto';
import type { Firestore } from '@google-cloud/firestore';
import { afterEach } from 'vitest';
import { OnceTaskManager, type OnceTaskManagerOptions } from '../src/index.js';
import { uniqueEnv } from './fixture.js';

export { jobTask } from './tasks.js';

/**
 * This test file's task collection. The emulator's queries scan a whole collection, so files
 * that shared one would slow each other down as the suite goes on; each file gets its own.
 */
export const TEST_COLLECTION = `tasks_${randomBytes(4).toString('hex')}`;

const live = new Set<OnceTaskManager>();

afterEach(async () => {
  const managers = [...live];
  live.clear();
  await Promise.all(managers.map((m) => m.stop({ graceMs: 0 })));
});

/** A manager on a fresh environment (unless given), polling fast, stopped after the test. */
export function makeManager(firestore: Firestore, options: Partial<OnceTaskManagerOptions> = {}): OnceTaskManager {
  const manager = new OnceTaskManager({ firestore, env: uniqueEnv(), collection: TEST_COLLECTION, pollIntervalMs: 50, ...options });
  live.add(manager);
  return manager;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
