import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, fixedDelay } from '../src/index.js';
import { useFirestore, waitFor } from './fixture.js';
import { makeManager, readLedger, sleep, startWorkerProcess } from './support.js';
import { keyedTask } from './tasks.js';

const db = useFirestore();

/** A keyed kind whose payload says whether its first attempt fails. */
function orderedKind(strictOrder: boolean) {
  return defineTask({
    kind: strictOrder ? 'strict' : 'loose',
    schema: z.object({ n: z.number().int(), failFirst: z.boolean().default(false) }),
    id: (d) => `o-${d.n}`,
    resourceKey: () => 'account-1',
    strictOrder,
  });
}

describe('cooldown per resource key', () => {
  it('holds across two worker processes: the next task of a key starts no sooner than cooldownMs after the last ended', async () => {
    const m = makeManager(db);
    const ledger = `ledger-${m.env}`;
    await Promise.all([1, 2].map(() => startWorkerProcess(m.env, ledger, { KIND: 'keyed', COOLDOWN_MS: '800', CONCURRENCY: '2' })));
    await m.createMany(keyedTask, Array.from({ length: 4 }, (_, i) => ({ n: i, key: 'k', sleepMs: 100 })));
    await m.create(keyedTask, { n: 99, key: 'other' });
    await waitFor(async () => (await m.countByStatus(keyedTask)).succeeded === 5, { timeoutMs: 20_000 });
    const runs = (await readLedger(db, ledger)).filter((e) => e.taskId !== 'keyed-99');
    expect(runs).toHaveLength(4);
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.start - runs[i - 1]!.end!).toBeGreaterThanOrEqual(800);
  });

  it('a task that ended in one process makes the key cool down for a worker in another', async () => {
    const m = makeManager(db);
    const ledger = `ledger-${m.env}`;
    const child = await startWorkerProcess(m.env, ledger, { KIND: 'keyed', COOLDOWN_MS: '1500' });
    await m.create(keyedTask, { n: 1, key: 'k', sleepMs: 50 });
    await waitFor(async () => (await m.get('keyed-1'))?.status === 'succeeded');
    child.kill('SIGKILL');
    const [first] = await readLedger(db, ledger);
    const starts: number[] = [];
    m.handle(keyedTask, () => void starts.push(Date.now()), { cooldownMs: 1500 });
    m.start();
    await m.create(keyedTask, { n: 2, key: 'k' });
    await m.create(keyedTask, { n: 3, key: 'free' }); // another key is not held up
    await waitFor(() => starts.length === 2, { timeoutMs: 8000 });
    expect(Math.max(...starts) - first!.end!).toBeGreaterThanOrEqual(1500);
    expect(Math.min(...starts) - first!.end!).toBeLessThan(1500);
  });

  it('holds after the worker running a task of the key is killed: it runs from that lease\'s expiry', async () => {
    const m = makeManager(db, { maxClockSkewMs: 200 });
    const ledger = `ledger-${m.env}`;
    const settings = { KIND: 'keyed', COOLDOWN_MS: '1500', LEASE_MS: '1000', CONCURRENCY: '1' };
    const doomed = await startWorkerProcess(m.env, ledger, settings);
    await m.create(keyedTask, { n: 1, key: 'k', sleepMs: 60_000 });
    await waitFor(async () => (await readLedger(db, ledger)).length === 1, { message: 'first task started' });
    await m.create(keyedTask, { n: 2, key: 'k' });
    doomed.kill('SIGKILL');
    const killedAt = Date.now();
    await startWorkerProcess(m.env, ledger, settings);
    const second = await waitFor(async () => (await readLedger(db, ledger))[1], { timeoutMs: 15_000, message: 'a second run' });
    // Lease (up to 1 s after the kill) + skew allowance + the cooldown.
    expect(second.start - killedAt).toBeGreaterThanOrEqual(1500);
  });

  it('needs a kind with a resource key', () => {
    const m = makeManager(db);
    const plain = defineTask({ kind: 'plain', schema: z.object({}), id: () => 'p' });
    expect(() => m.handle(plain, () => undefined, { cooldownMs: 1000 })).toThrow(/needs a kind with a resourceKey/);
  });
});

describe('strict order per key', () => {
  async function runOrdered(strict: boolean): Promise<string[]> {
    const def = orderedKind(strict);
    const m = makeManager(db);
    const order: string[] = [];
    m.handle(def, (task, ctx) => {
      order.push(`${task.id}#${ctx.attempt}`);
      if (task.data.failFirst && ctx.attempt === 1) throw new Error('first attempt fails');
    }, { retry: fixedDelay({ delayMs: 600, maxAttempts: 3 }) });
    await m.createMany(def, [{ n: 1, failFirst: true }, { n: 2 }, { n: 3 }]);
    m.start();
    await waitFor(async () => (await m.countByStatus(def)).succeeded === 3, { timeoutMs: 10_000 });
    return order;
  }

  it('strictOrder: a failed attempt blocks its key until that task succeeds, so the key runs in creation order', async () => {
    expect(await runOrdered(true)).toEqual(['o-1#1', 'o-1#2', 'o-2#1', 'o-3#1']);
  });

  it('without strictOrder the key\'s later tasks run while the retry waits', async () => {
    expect(await runOrdered(false)).toEqual(['o-1#1', 'o-2#1', 'o-3#1', 'o-1#2']);
  });

  it('a blocking task that is deleted no longer blocks its key', async () => {
    const def = orderedKind(true);
    const m = makeManager(db);
    const order: string[] = [];
    m.handle(def, (task, ctx) => {
      order.push(`${task.id}#${ctx.attempt}`);
      if (task.data.failFirst) throw new Error('always fails');
    }, { retry: fixedDelay({ delayMs: 800, maxAttempts: 5 }) });
    await m.createMany(def, [{ n: 1, failFirst: true }, { n: 2 }]);
    m.start();
    await waitFor(() => order.length === 1);
    await sleep(200);
    expect(await m.delete('o-1')).toBe(true);
    await waitFor(async () => (await m.get('o-2'))?.status === 'succeeded', { timeoutMs: 8000 });
    expect(order).toEqual(['o-1#1', 'o-2#1']);
  });

  it('with handleGroup, a task of a group that will be retried blocks its key for the tasks after it', async () => {
    const def = orderedKind(true);
    const m = makeManager(db);
    const calls: string[][] = [];
    m.handleGroup(def, (tasks) => {
      calls.push(tasks.map((t) => `${t.id}#${t.attempt}`));
      return tasks.map((t) => (t.data.failFirst && t.attempt === 1 ? new Error('first attempt fails') : 'ok'));
    }, { retry: fixedDelay({ delayMs: 600, maxAttempts: 3 }) });
    await m.create(def, { n: 1, failFirst: true });
    m.start();
    await waitFor(() => calls.length === 1);
    await m.create(def, { n: 2 }); // created while o-1 waits for its retry
    await waitFor(async () => (await m.countByStatus(def)).succeeded === 2, { timeoutMs: 8000 });
    // o-2 never ran before o-1's retry: it came in the retry's group, behind it.
    expect(calls).toEqual([['o-1#1'], ['o-1#2', 'o-2#1']]);
  });

  it('needs a resource key', () => {
    expect(() => defineTask({ kind: 'x', schema: z.object({}), id: () => 'x', strictOrder: true })).toThrow(/strictOrder needs a resourceKey/);
  });
});
