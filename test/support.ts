/**
 * Task kinds and a manager factory shared by the emulator tests. Every manager made here is
 * stopped after the test, so no worker outlives the test that started it.
 */
import type { Firestore } from '@google-cloud/firestore';
import { afterEach } from 'vitest';
import { OnceTaskManager, type OnceTaskManagerOptions } from '../src/index.js';
import { uniqueEnv } from './fixture.js';

export { jobTask } from './tasks.js';

const live = new Set<OnceTaskManager>();

afterEach(async () => {
  const managers = [...live];
  live.clear();
  await Promise.all(managers.map((m) => m.stop({ graceMs: 0 })));
});

/** A manager on a fresh environment (unless given), polling fast, stopped after the test. */
export function makeManager(firestore: Firestore, options: Partial<OnceTaskManagerOptions> = {}): OnceTaskManager {
  const manager = new OnceTaskManager({ firestore, env: uniqueEnv(), pollIntervalMs: 50, ...options });
  live.add(manager);
  return manager;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
