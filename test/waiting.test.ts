import { describe, expect, it } from 'vitest';
import { NonRetryableError, TaskNotFoundError, WaitTimeoutError, type OnceTaskManager, type TaskInfo } from '../src/index.js';
import type { TaskStore } from '../src/store/task-store.js';
import { useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager, sleep, startWorkerProcess } from './support.js';

const db = useFirestore();

/** Task-document listeners the manager's store has open. */
const liveListeners = (m: OnceTaskManager): number => (m as unknown as { store: TaskStore }).store.liveListeners;

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('waitFor', () => {
  it('resolves once the task is terminal, with one listener, closed after', async () => {
    const m = makeManager(db);
    m.handle(jobTask, async (task) => {
      await sleep(task.data.sleepMs);
      if (task.data.failTimes > 0) throw new NonRetryableError('no');
      return task.data.n;
    });
    await m.createMany(jobTask, [{ n: 1, sleepMs: 200 }, { n: 2, failTimes: 1 }]);
    const waiting = [m.waitFor('job-1', { timeoutMs: 10_000 }), m.waitFor('job-2')] as const;
    expect(liveListeners(m)).toBe(2);
    m.start();
    const [one, two] = await Promise.all(waiting);
    expect([one.status, one.result, two.status, two.errors[0]?.code]).toEqual(['succeeded', 1, 'failed', 'NON_RETRYABLE']);
    expect(liveListeners(m)).toBe(0);
    // Already terminal: at once.
    expect((await m.waitFor('job-1')).status).toBe('succeeded');
    expect(liveListeners(m)).toBe(0);
    expect(m.stats().listenerReads).toBeGreaterThanOrEqual(3);
  });

  it('rejects with WaitTimeoutError after timeoutMs, and with the signal\'s reason on abort', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 });
    const started = Date.now();
    const timeout = await rejection(m.waitFor('job-1', { timeoutMs: 150 }));
    expect(timeout).toBeInstanceOf(WaitTimeoutError);
    expect(timeout).toMatchObject({ code: 'WAIT_TIMEOUT', taskId: 'job-1', timeoutMs: 150 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(liveListeners(m)).toBe(0);

    const controller = new AbortController();
    const aborted = m.waitFor('job-1', { signal: controller.signal, timeoutMs: 10_000 });
    await sleep(50);
    expect(liveListeners(m)).toBe(1);
    const reason = new Error('caller gave up');
    controller.abort(reason);
    expect(await rejection(aborted)).toBe(reason);
    expect(liveListeners(m)).toBe(0);
    // An aborted signal: at once, no listener opened.
    expect(await rejection(m.waitFor('job-1', { signal: AbortSignal.abort('already') }))).toBe('already');
    expect(liveListeners(m)).toBe(0);

    await expect(m.waitFor('job-1', { timeoutMs: -1 })).rejects.toThrow(/timeoutMs/);
    await expect(m.waitFor('job-1', { timeout: 5 } as never)).rejects.toThrow(/did you mean "timeoutMs"/);
  });

  it('rejects with TaskNotFoundError for an unknown task, one deleted while waited for, and one deleted as it finishes (retentionMs 0)', async () => {
    const m = makeManager(db);
    const unknown = await rejection(m.waitFor('nope'));
    expect(unknown).toBeInstanceOf(TaskNotFoundError);
    expect(liveListeners(m)).toBe(0);

    await m.create(jobTask, { n: 1 });
    const waiting = rejection(m.waitFor('job-1'));
    await sleep(50);
    await m.delete('job-1');
    expect(await waiting).toBeInstanceOf(TaskNotFoundError);
    expect(liveListeners(m)).toBe(0);

    const r = makeManager(db, { retentionMs: 0 });
    r.handle(jobTask, () => 'done');
    await r.create(jobTask, { n: 2, sleepMs: 0 });
    const gone = r.waitFor('job-2', { timeoutMs: 10_000 });
    r.start();
    expect(await rejection(gone)).toBeInstanceOf(TaskNotFoundError);
    expect(liveListeners(r)).toBe(0);
  });

  it('sees a task run by a worker in another process finish', async () => {
    const producer = makeManager(db);
    const worker = await startWorkerProcess(producer.env, `ledger-${producer.env}`);
    await producer.create(jobTask, { n: 1, sleepMs: 300 });
    const task = await producer.waitFor('job-1', { timeoutMs: 20_000 });
    expect(task.status).toBe('succeeded');
    expect(task.result).toEqual({ pid: worker.pid });
    expect(liveListeners(producer)).toBe(0);
  }, 40_000);
});

describe('watch', () => {
  it('calls onChange on every change (null while absent) until unsubscribed, then leaves no listener', async () => {
    const m = makeManager(db);
    const seen: (TaskInfo | null)[] = [];
    const errors: Error[] = [];
    const unsubscribe = m.watch('job-1', (t) => seen.push(t), (e) => errors.push(e));
    expect(liveListeners(m)).toBe(1);
    await waitFor(() => seen.length === 1);
    expect(seen[0]).toBeNull();
    m.handle(jobTask, () => 'ok');
    m.start();
    await m.create(jobTask, { n: 1 });
    await waitFor(() => seen.at(-1)?.status === 'succeeded', { message: 'saw it succeed' });
    // Absent, then (snapshots may coalesce changes) the states it went through, ending succeeded.
    const statuses = seen.map((t) => t?.status ?? null);
    expect(statuses[0]).toBeNull();
    expect(statuses.slice(1).every((s) => s === 'pending' || s === 'running' || s === 'succeeded')).toBe(true);
    expect(seen.at(-1)).toMatchObject({ id: 'job-1', result: 'ok', attempts: 1 });
    unsubscribe();
    unsubscribe(); // idempotent
    expect(liveListeners(m)).toBe(0);
    const count = seen.length;
    await m.delete('job-1');
    await sleep(200);
    expect(seen.length).toBe(count); // nothing after unsubscribe
    expect(errors).toEqual([]);
  });

  it('reports a malformed document to onError and keeps watching', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 });
    const seen: (TaskInfo | null)[] = [];
    const errors: Error[] = [];
    const unsubscribe = m.watch('job-1', (t) => seen.push(t), (e) => errors.push(e));
    await waitFor(() => seen.length === 1);
    const [doc] = (await db.collection(m.collection).where('env', '==', m.env).get()).docs;
    await doc!.ref.update({ status: 'exploded' });
    await waitFor(() => errors.length === 1);
    expect(errors[0]!.name).toBe('MalformedTaskError');
    await doc!.ref.update({ status: 'cancelled' });
    await waitFor(() => seen.at(-1)?.status === 'cancelled');
    unsubscribe();
    expect(liveListeners(m)).toBe(0);
  });
});
