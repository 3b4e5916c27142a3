import { describe, expect, it } from 'vitest';
import { useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager, readLedger, startWorkerProcess } from './support.js';

const db = useFirestore();

describe('cancel reaches a task running in another process', () => {
  it('aborts its signal within about a second although its lease (10 min) is renewed only every 200 s', async () => {
    const m = makeManager(db);
    const ledger = `ledger-${m.env}`;
    await startWorkerProcess(m.env, ledger, { LEASE_MS: '600000', CONCURRENCY: '2' });
    await m.create(jobTask, { n: 1, sleepMs: 60_000 });
    await m.create(jobTask, { n: 2, sleepMs: 60_000 });
    await waitFor(async () => (await db.collection(ledger).get()).size === 2, { message: 'both running', timeoutMs: 10_000 });
    const cancelledAt = Date.now();
    expect(await m.cancel('job-1')).toBe(1);
    const entry = await waitFor(async () => {
      const doc = (await readLedger(db, ledger)).find((e) => e.taskId === 'job-1');
      return doc?.end !== undefined ? doc : undefined;
    }, { message: 'job-1 aborted', timeoutMs: 10_000 });
    expect(entry.aborted).toBe(true);
    expect(entry.end! - cancelledAt).toBeLessThan(1500);
    await waitFor(async () => (await m.get('job-1'))?.status === 'cancelled', { timeoutMs: 5000 });
    // The other task of that process runs on.
    expect((await m.get('job-2'))!.status).toBe('running');
    const other = (await readLedger(db, ledger)).find((e) => e.taskId === 'job-2');
    expect(other?.end).toBeUndefined();
  });
});
