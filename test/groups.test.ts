import { describe, expect, it } from 'vitest';
import { fixedDelay, HandlerAlreadyRegisteredError, noRetry, type RunningTask } from '../src/index.js';
import { useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager, sleep } from './support.js';
import { keyedTask } from './tasks.js';

const db = useFirestore();

type Keyed = RunningTask<{ n: number; key: string; sleepMs: number }>;

const ended = (m: ReturnType<typeof makeManager>, count: number) =>
  waitFor(async () => {
    const page = await m.list({ limit: 1000, kind: keyedTask });
    const done = page.tasks.filter((t) => ['succeeded', 'failed', 'cancelled'].includes(t.status));
    return done.length === count ? page.tasks : undefined;
  }, { timeoutMs: 20_000, message: `${count} tasks ended` });

describe('handleGroup', () => {
  it('hands over all ready tasks of a key in queue order, capped at maxBatchSize', async () => {
    const m = makeManager(db);
    await m.createMany(keyedTask, [1, 2, 3, 4, 5, 6, 7].map((n) => ({ n, key: 'k' })));
    const batches: string[][] = [];
    m.handleGroup(keyedTask, async (tasks) => {
      batches.push(tasks.map((t) => t.id));
      await sleep(20);
    }, { maxBatchSize: 3, concurrency: 2 });
    m.start();
    await ended(m, 7);
    expect(batches).toEqual([
      ['keyed-1', 'keyed-2', 'keyed-3'],
      ['keyed-4', 'keyed-5', 'keyed-6'],
      ['keyed-7'],
    ]);
  });

  it('runs different keys in parallel and tasks without a key in groups of one', async () => {
    const m = makeManager(db);
    await m.createMany(keyedTask, [{ n: 1, key: 'a' }, { n: 2, key: 'b' }, { n: 3, key: 'a' }]);
    await m.createMany(jobTask, [{ n: 1 }, { n: 2 }]);
    const keyed: string[][] = [];
    const plain: string[][] = [];
    m.handleGroup(keyedTask, (tasks) => void keyed.push(tasks.map((t) => t.id).sort()), { concurrency: 2 });
    m.handleGroup(jobTask, (tasks) => void plain.push(tasks.map((t) => t.id)), { concurrency: 2 });
    m.start();
    await ended(m, 3);
    await waitFor(async () => (await m.countPending(jobTask)) === 0 && plain.length === 2);
    expect(keyed.sort()).toEqual([['keyed-1', 'keyed-3'], ['keyed-2']]);
    expect(plain.map((b) => b.length)).toEqual([1, 1]);
  });

  it('records the outcome per task: an Error entry fails that task alone, others keep their results', async () => {
    const m = makeManager(db);
    await m.createMany(keyedTask, [1, 2, 3].map((n) => ({ n, key: 'k' })));
    m.handleGroup(keyedTask, (tasks: Keyed[]) => tasks.map((t) => (t.data.n === 2 ? new Error('bounced') : { sent: t.data.n })), { retry: noRetry() });
    m.start();
    const tasks = await ended(m, 3);
    const byId = new Map(tasks.map((t) => [t.id, t]));
    expect(byId.get('keyed-1')).toMatchObject({ status: 'succeeded', result: { sent: 1 } });
    expect(byId.get('keyed-2')).toMatchObject({ status: 'failed', errorCount: 1 });
    expect(byId.get('keyed-2')!.errors[0]!.message).toBe('bounced');
    expect(byId.get('keyed-3')).toMatchObject({ status: 'succeeded', result: { sent: 3 } });
  });

  it('fails every task of the group when the handler throws, each under its own retry policy', async () => {
    const m = makeManager(db);
    await m.createMany(keyedTask, [1, 2].map((n) => ({ n, key: 'k' })));
    let calls = 0;
    m.handleGroup(keyedTask, () => {
      calls++;
      if (calls === 1) throw new Error('smtp down');
    }, { retry: fixedDelay({ maxAttempts: 2, delayMs: 10 }) });
    m.start();
    const tasks = await ended(m, 2);
    for (const t of tasks) expect(t).toMatchObject({ status: 'succeeded', attempts: 2, errorCount: 1 });
    expect(calls).toBe(2);
  });

  it('retries a group that failed together as one group, even when time passes between its tasks\' outcomes', async () => {
    // On a loaded machine the clock moves on between one task's retry decision and the next.
    // Here each decision moves it 40 ms; the group must still come back as one.
    let offset = 0;
    const m = makeManager(db, { clock: () => Date.now() + offset });
    await m.createMany(keyedTask, [1, 2, 3].map((n) => ({ n, key: 'k' })));
    const batches: number[] = [];
    m.handleGroup(keyedTask, (tasks) => {
      batches.push(tasks.length);
      if (batches.length === 1) throw new Error('smtp down');
    }, { retry: { shouldRetry: (attempt) => attempt < 2, nextDelayMs: () => { offset += 40; return 150; } } });
    m.start();
    const tasks = await ended(m, 3);
    for (const t of tasks) expect(t).toMatchObject({ status: 'succeeded', attempts: 2 });
    expect(batches).toEqual([3, 3]);
  });

  it('refuses a result array of the wrong length as a failure of every task', async () => {
    const m = makeManager(db);
    await m.createMany(keyedTask, [1, 2].map((n) => ({ n, key: 'k' })));
    m.handleGroup(keyedTask, () => ['only one'], { retry: noRetry() });
    m.start();
    const tasks = await ended(m, 2);
    for (const t of tasks) {
      expect(t.status).toBe('failed');
      expect(t.errors[0]!.message).toMatch(/one entry per task \(2\)/);
    }
  });

  it('keeps the others when one task of a running group is deleted or cancelled', async () => {
    const m = makeManager(db);
    await m.createMany(keyedTask, [1, 2, 3].map((n) => ({ n, key: 'k' })));
    let cancelSeen: boolean | undefined;
    m.handleGroup(keyedTask, async (tasks: Keyed[], ctx) => {
      await m.delete('keyed-2');
      await m.cancel('keyed-3');
      await sleep(50);
      cancelSeen = ctx.isCancelled('keyed-3');
      return tasks.map((t) => (t.id === 'keyed-3' ? new Error('stopped for cancel') : `done ${t.id}`));
    }, { retry: fixedDelay({ maxAttempts: 3, delayMs: 10 }) });
    m.start();
    await waitFor(async () => (await m.get('keyed-1'))?.status === 'succeeded' && (await m.get('keyed-3'))?.status === 'cancelled');
    expect(await m.get('keyed-1')).toMatchObject({ result: 'done keyed-1', attempts: 1 });
    expect(await m.get('keyed-2')).toBeNull();
    expect(await m.get('keyed-3')).toMatchObject({ status: 'cancelled', attempts: 1 });
    expect(cancelSeen).toBe(true);
  });

  it('allows only one handler per kind', () => {
    const m = makeManager(db);
    m.handle(keyedTask, () => undefined);
    expect(() => m.handleGroup(keyedTask, () => undefined)).toThrow(HandlerAlreadyRegisteredError);
    expect(() => m.handleGroup(jobTask, () => undefined, { maxBatchSize: 0 })).toThrow(/maxBatchSize/);
  });
});
