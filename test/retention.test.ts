/**
 * Retention of finished tasks: `retentionMs: 0` deletes a task in the commit that ends it (so
 * nothing piles up for queries to scan), `failedRetentionMs` keeps failures apart.
 */
import { describe, expect, it } from 'vitest';
import { fixedDelay, noRetry } from '../src/index.js';
import { keyedTask } from './tasks.js';
import { useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager, TEST_COLLECTION } from './support.js';

const db = useFirestore();
const DAY = 86_400_000;

/** The raw task documents of an environment. */
async function docs(env: string) {
  return (await db.collection(TEST_COLLECTION).where('env', '==', env).get()).docs.map((d) => d.data());
}

describe('retentionMs: 0', () => {
  it('deletes succeeded tasks in the outcome commit and keeps failed ones for failedRetentionMs', async () => {
    const m = makeManager(db, { retentionMs: 0 });
    const ran: number[] = [];
    m.handle(
      jobTask,
      async (task) => {
        ran.push(task.data.n);
        if (task.data.n % 2 === 1) throw new Error('odd');
      },
      { concurrency: 4, retry: noRetry() },
    );
    await m.createMany(jobTask, Array.from({ length: 10 }, (_, n) => ({ n })));
    m.start();
    await waitFor(async () => (await docs(m.env)).length === 5 && (await docs(m.env)).every((d) => d.status === 'failed'), { timeoutMs: 15_000 });
    expect(ran.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const failed = await docs(m.env);
    // failedRetentionMs defaults to 30 days when retentionMs is 0.
    for (const d of failed) expect(d.expireAt.toMillis() - d.doneAt.toMillis()).toBe(30 * DAY);
    expect(m.stats().deletes).toBe(5);
    await m.stop();
  });

  it('releases the key lock in the same commit, and the next task of the key runs', async () => {
    const m = makeManager(db, { retentionMs: 0 });
    const order: number[] = [];
    m.handle(keyedTask, async (task) => void order.push(task.data.n), { concurrency: 2 });
    await m.createMany(keyedTask, [1, 2, 3].map((n) => ({ n, key: 'acct' })));
    m.start();
    await waitFor(async () => order.length === 3 && (await docs(m.env)).length === 0, { timeoutMs: 15_000 });
    const lock = (await db.collection(`${TEST_COLLECTION}_keys`).where('env', '==', m.env).get()).docs[0]!.data();
    expect(lock.holder).toBeNull();
    await m.stop();
  });

  it('lets the same ID be created again once its task was deleted (idempotency lasts while it is open)', async () => {
    const m = makeManager(db, { retentionMs: 0 });
    let runs = 0;
    m.handle(jobTask, () => void runs++);
    expect((await m.create(jobTask, { n: 1 })).created).toBe(true);
    expect((await m.create(jobTask, { n: 1 })).created).toBe(false); // still open: a no-op
    m.start();
    await waitFor(async () => (await m.get('job-1')) === null, { timeoutMs: 10_000 });
    expect((await m.create(jobTask, { n: 1 })).created).toBe(true);
    await waitFor(() => runs === 2, { timeoutMs: 10_000 });
    await m.stop();
  });

  it('failedRetentionMs: 0 deletes final failures too; a retry in between is kept', async () => {
    const m = makeManager(db, { retentionMs: DAY, failedRetentionMs: 0 });
    let attempts = 0;
    m.handle(jobTask, () => {
      attempts++;
      throw new Error('always');
    }, { retry: fixedDelay({ maxAttempts: 2, delayMs: 10 }) });
    await m.create(jobTask, { n: 1 });
    m.start();
    await waitFor(async () => attempts === 2 && (await m.get('job-1')) === null, { timeoutMs: 10_000 });
    await m.stop();
  });
});

describe('retention options', () => {
  it('rejects a negative retention with a typed error', () => {
    expect(() => makeManager(db, { retentionMs: -1 })).toThrow(/retentionMs/);
    expect(() => makeManager(db, { failedRetentionMs: -5 })).toThrow(/failedRetentionMs/);
  });
});
