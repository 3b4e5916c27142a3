/**
 * The contract suite's backends and per-test kits. Every contract file runs the same tests on
 * each backend, so the in-memory backend and the Firestore emulator cannot drift apart:
 *
 *   describe.each(BACKENDS)('%s backend', (backend) => {
 *     const newKit = useKits(backend);
 *     it('...', async () => {
 *       const kit = await newKit();          // createTestKit({ backend, start: START }), torn down after the test
 *       const tasks = kit.manager();
 *       ...
 *     });
 *   });
 *
 * `useKits` also times the describe block of the memory backend (beforeAll → afterAll) and
 * records it (see ./budget.ts); test/global-setup.ts prints the total against the budget.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { createTestKit, type TestKit, type TestKitOptions } from '../../src/testing/index.js';
import { recordContractTime } from './budget.js';

// The kit's emulator client would otherwise look for a GCE metadata server and warn (as in test/fixture.ts).
process.env.METADATA_SERVER_DETECTION ??= 'none';

export type Backend = 'memory' | 'emulator';

/**
 * The backends every contract test runs on. `ONCETASK_CONTRACT_BACKENDS=emulator` (comma
 * separated) narrows it for a local run, e.g. while one backend is being built.
 */
export const BACKENDS: readonly Backend[] = (() => {
  const all: Backend[] = ['memory', 'emulator'];
  const only = process.env.ONCETASK_CONTRACT_BACKENDS?.split(',').map((s) => s.trim()).filter(Boolean);
  return only && only.length > 0 ? all.filter((b) => only.includes(b)) : all;
})();

/** Where the manual clock of a contract kit starts unless a test says otherwise: a Monday, 10:00 UTC. */
export const START = new Date('2026-06-01T10:00:00.000Z');

export type ContractKitOptions = Pick<TestKitOptions, 'clock' | 'start'>;

/**
 * Call once inside a backend's describe block. Returns `newKit(options?)`: a test kit on that
 * backend (manual clock at {@link START} by default), torn down after the test. Each kit's
 * managers use a collection of their own, so the shared, long-lived emulator's scans stay small.
 */
export function useKits(backend: Backend): (options?: ContractKitOptions) => Promise<TestKit> {
  let kits: TestKit[] = [];
  afterEach(async () => {
    const done = kits;
    kits = [];
    await Promise.all(done.map((kit) => kit.teardown()));
  });
  if (backend === 'memory') timeBlock();
  return async (options = {}) => {
    const kit = await createTestKit({ backend, clock: options.clock ?? 'manual', start: options.start ?? START });
    kits.push(kit);
    const collection = `contract_${randomBytes(4).toString('hex')}`;
    const manager = kit.manager.bind(kit);
    // Every manager of the kit (the kit's own reader for waitFor included) on the kit's collection.
    kit.manager = (managerOptions = {}) => manager({ collection, ...managerOptions });
    return kit;
  };
}

/** Records the wall time of the enclosing describe block for the budget line. */
function timeBlock(): void {
  let startedAt = 0;
  beforeAll(() => {
    startedAt = performance.now();
  });
  afterAll((suite) => recordContractTime('memory', suite.file.name, performance.now() - startedAt));
}

/** A promise to resolve from outside (a handler waiting for the test). */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
