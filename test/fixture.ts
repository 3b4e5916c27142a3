/**
 * The shared Firestore emulator fixture for every test file.
 *
 * One emulator serves the whole run (test/global-setup.ts) and test files run
 * in parallel against it, so tests isolate themselves by environment name
 * (`uniqueEnv()`) instead of clearing data.
 */
import { randomBytes } from 'node:crypto';
import { Firestore } from '@google-cloud/firestore';
import { afterAll, inject } from 'vitest';
import { clearEmulator, EMULATOR_PROJECT_ID } from '../src/testing/emulator.js';

// Clients pointed at a fault proxy (not at FIRESTORE_EMULATOR_HOST) would otherwise look for a
// GCE metadata server for credentials and warn that there is none.
process.env.METADATA_SERVER_DETECTION ??= 'none';

export const TEST_PROJECT_ID = EMULATOR_PROJECT_ID;

/** `host:port` of the emulator; also exported to the env so any SDK client finds it. */
export function emulatorHost(): string {
  let host: string | undefined;
  try {
    host = inject('firestoreEmulatorHost');
  } catch {
    // not inside a vitest worker
  }
  host ||= process.env.FIRESTORE_EMULATOR_HOST;
  if (!host) {
    throw new Error('No Firestore emulator: run the tests with vitest (test/global-setup.ts starts one) or set FIRESTORE_EMULATOR_HOST');
  }
  process.env.FIRESTORE_EMULATOR_HOST = host;
  return host;
}

const open = new Set<Firestore>();

/**
 * A new Firestore client on the emulator. The caller terminates it, or calls
 * `closeAllFirestores()`; prefer `useFirestore()` at file or describe level.
 */
export function testFirestore(projectId: string = TEST_PROJECT_ID): Firestore {
  const host = emulatorHost();
  // ssl: false also makes the SDK send the emulator's admin token ("Bearer owner").
  const db = new Firestore({ projectId, host, ssl: false });
  open.add(db);
  return db;
}

/** Terminates every client made by `testFirestore()` that is still open. */
export async function closeAllFirestores(): Promise<void> {
  const dbs = [...open];
  open.clear();
  await Promise.all(dbs.map((db) => db.terminate()));
}

/**
 * A Firestore client that is terminated after the enclosing file or describe
 * block. Call it at collection time (top level or inside `describe`), not
 * inside a test.
 */
export function useFirestore(projectId: string = TEST_PROJECT_ID): Firestore {
  const db = testFirestore(projectId);
  afterAll(async () => {
    open.delete(db);
    // Closed listeners finish tearing down their streams asynchronously; terminating the client
    // in the middle of that makes the SDK reject a request nobody awaits.
    await new Promise((resolve) => setTimeout(resolve, 250));
    await db.terminate();
  });
  return db;
}

/** A fresh environment name, e.g. `test-1f2e3d4c`, to isolate a test's data. */
export function uniqueEnv(prefix = 'test'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Says what was awaited; it leads the timeout error. */
  message?: string;
}

/**
 * Polls `fn` until it returns something other than `undefined` or `false`,
 * and returns that. A throw counts as "not yet" (so `fn` may use `expect`);
 * the last error is reported if time runs out.
 */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 10_000, intervalMs = 25, message }: WaitForOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== false) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  const what = message ?? 'condition';
  const why = lastError === undefined ? '' : `; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
  throw new Error(`waitFor timed out after ${timeoutMs} ms: ${what}${why}`, { cause: lastError });
}

/**
 * Deletes every document of `projectId` in the emulator. Test files run in
 * parallel against the same emulator, so only clear a project that no other
 * file uses; isolate by `uniqueEnv()` instead.
 */
export async function clearData(projectId: string = TEST_PROJECT_ID): Promise<void> {
  await clearEmulator(emulatorHost(), projectId);
}
