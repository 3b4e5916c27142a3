import { describe, expect, it } from 'vitest';
import { fixedDelay, type TaskContext } from '../src/index.js';
import { useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager, sleep, startWorkerProcess } from './support.js';
import { keyedTask } from './tasks.js';

const db = useFirestore();

const statusOf = (m: ReturnType<typeof makeManager>, id: string, status: string) =>
  waitFor(async () => {
    const t = await m.get(id);
    return t?.status === status ? t : undefined;
  }, { message: `${id} ${status}` });

/** A handler that runs until its signal aborts, and remembers why. */
function untilAborted(reasons: unknown[]) {
  return (_task: unknown, ctx: TaskContext) => new Promise<void>((_resolve, reject) => {
    ctx.signal.addEventListener('abort', () => {
      reasons.push(ctx.signal.reason);
      reject(ctx.signal.reason);
    });
  });
}

describe('cancel of pending tasks', () => {
  it('ends a pending task cancelled at once when the kind has no onCancel; again returns 0', async () => {
    const m = makeManager(db);
    m.handle(jobTask, () => 'ran');
    await m.create(jobTask, { n: 1 }, { waitUntil: new Date(Date.now() + 60_000) });
    expect(await m.cancel('job-1')).toBe(1);
    expect(await m.get('job-1')).toMatchObject({ status: 'cancelled', cancelRequested: true, attempts: 0 });
    expect(await m.cancel('job-1')).toBe(0);
    const t = await m.get('job-1');
    expect(t!.doneAt).not.toBeNull();
    expect(t!.expireAt).not.toBeNull();
  });

  it('runs onCancel once for a cancelled pending task, then ends it cancelled', async () => {
    const m = makeManager(db);
    const cleaned: { id: string; attempt: number }[] = [];
    let ran = false;
    m.handle(jobTask, () => {
      ran = true;
    }, { onCancel: (task, ctx) => void cleaned.push({ id: task.id, attempt: ctx.attempt }) });
    await m.create(jobTask, { n: 1 }, { waitUntil: new Date(Date.now() + 60_000) });
    expect(await m.cancel('job-1')).toBe(1);
    expect((await m.get('job-1'))!.status).toBe('cancelling');
    m.start();
    const t = await statusOf(m, 'job-1', 'cancelled');
    expect(cleaned).toEqual([{ id: 'job-1', attempt: 1 }]);
    expect(ran).toBe(false);
    expect(t).toMatchObject({ attempts: 0, cancelAttempts: 1 });
  });

  it('retries onCancel under cancelRetry with its own attempt counter', async () => {
    const m = makeManager(db);
    let calls = 0;
    m.handle(jobTask, () => undefined, {
      onCancel: () => {
        if (++calls < 3) throw new Error(`cleanup failed ${calls}`);
      },
      cancelRetry: fixedDelay({ maxAttempts: 5, delayMs: 10 }),
      retry: fixedDelay({ maxAttempts: 1, delayMs: 0 }),
    });
    await m.create(jobTask, { n: 1 }, { waitUntil: new Date(Date.now() + 60_000) });
    await m.cancel('job-1');
    m.start();
    const t = await statusOf(m, 'job-1', 'cancelled');
    expect(t).toMatchObject({ attempts: 0, cancelAttempts: 3, errorCount: 2 });
    expect(t.errors.map((e) => e.message)).toEqual(['cleanup failed 1', 'cleanup failed 2']);
  });

  it('ends cancelled, with the error recorded, when onCancel exhausts its retries', async () => {
    const m = makeManager(db);
    m.handle(jobTask, () => undefined, {
      onCancel: () => {
        throw new Error('cannot clean up');
      },
      cancelRetry: fixedDelay({ maxAttempts: 2, delayMs: 0 }),
    });
    await m.create(jobTask, { n: 1 }, { waitUntil: new Date(Date.now() + 60_000) });
    await m.cancel('job-1');
    m.start();
    const t = await statusOf(m, 'job-1', 'cancelled');
    expect(t).toMatchObject({ cancelAttempts: 2, errorCount: 2 });
  });

  it('lets a worker finish a cancel requested from a process without the handler', async () => {
    const producer = makeManager(db);
    await producer.create(jobTask, { n: 1 }, { waitUntil: new Date(Date.now() + 60_000) });
    expect(await producer.cancel('job-1')).toBe(1);
    expect((await producer.get('job-1'))!.status).toBe('cancelling');
    const worker = makeManager(db, { env: producer.env });
    let ran = false;
    worker.handle(jobTask, () => {
      ran = true;
    });
    worker.start();
    await statusOf(worker, 'job-1', 'cancelled');
    expect(ran).toBe(false);
  });

  it('never turns a finished task into cancelled', async () => {
    const m = makeManager(db);
    m.handle(jobTask, () => 'done');
    m.start();
    await m.create(jobTask, { n: 1 });
    await statusOf(m, 'job-1', 'succeeded');
    expect(await m.cancel('job-1')).toBe(0);
    expect(await m.get('job-1')).toMatchObject({ status: 'succeeded', cancelRequested: false, result: 'done' });
  });

  it('cancelMany and cancelByResourceKey count what they newly cancelled', async () => {
    const m = makeManager(db);
    const later = { waitUntil: new Date(Date.now() + 60_000) };
    await m.createMany(jobTask, [{ n: 1 }, { n: 2 }, { n: 3 }], later);
    await m.cancel('job-1');
    expect(await m.cancelMany(['job-1', 'job-2', 'job-3', 'job-3'])).toBe(2);
    await expect(m.cancelMany(['job-404'])).rejects.toMatchObject({ code: expect.stringMatching(/TASK_NOT_FOUND|ENVIRONMENT_MISMATCH/) });
    await m.createMany(keyedTask, [{ n: 1, key: 'acct' }, { n: 2, key: 'acct' }, { n: 3, key: 'other' }], later);
    expect(await m.cancelByResourceKey(keyedTask, 'acct')).toBe(2);
    expect(await m.cancelByResourceKey(keyedTask, 'acct')).toBe(0);
    expect((await m.get('keyed-3'))!.status).toBe('pending');
  });
});

describe('cancel of running tasks', () => {
  it('aborts a running handler in this process at once, then runs onCancel', async () => {
    const m = makeManager(db);
    const reasons: unknown[] = [];
    const cleaned: string[] = [];
    m.handle(jobTask, untilAborted(reasons), { onCancel: (task) => void cleaned.push(task.id) });
    m.start();
    await m.create(jobTask, { n: 1 });
    await statusOf(m, 'job-1', 'running');
    const t0 = Date.now();
    expect(await m.cancel('job-1')).toBe(1);
    await waitFor(() => reasons.length === 1);
    expect(Date.now() - t0).toBeLessThan(500);
    expect((reasons[0] as { code?: string }).code).toBe('TASK_CANCELLED');
    const t = await statusOf(m, 'job-1', 'cancelled');
    expect(cleaned).toEqual(['job-1']);
    expect(t).toMatchObject({ attempts: 1, cancelAttempts: 1 });
  });

  it('ends succeeded when the handler completed before the cancel reached it', async () => {
    const m = makeManager(db, { workerId: 'holder' });
    m.handle(jobTask, async () => {
      await sleep(300);
      return 'finished anyway';
    }, { onCancel: () => undefined });
    m.start();
    await m.create(jobTask, { n: 1 });
    await statusOf(m, 'job-1', 'running');
    // Cancel from another manager, as if its post to the holder's inbox had been lost: the holder
    // learns of it only from its outcome write, after the handler completed.
    const other = makeManager(db, { env: m.env });
    (other as unknown as { admin: { local: { postCancel: () => void } } }).admin.local.postCancel = () => undefined;
    expect(await other.cancel('job-1')).toBe(1);
    const t = await statusOf(m, 'job-1', 'succeeded');
    expect(t).toMatchObject({ result: 'finished anyway', cancelRequested: true, cancelAttempts: 0 });
  });

  it('a handler that ignores the aborted signal of a cancel and returns is recorded cancelled (onCancel runs)', async () => {
    const m = makeManager(db);
    const cleaned: string[] = [];
    m.handle(jobTask, async () => {
      await sleep(1500);
      return 'finished anyway';
    }, { onCancel: (task) => void cleaned.push(task.id) });
    m.start();
    await m.create(jobTask, { n: 1 });
    await statusOf(m, 'job-1', 'running');
    const other = makeManager(db, { env: m.env });
    expect(await other.cancel('job-1')).toBe(1);
    await statusOf(m, 'job-1', 'cancelled');
    expect(cleaned).toEqual(['job-1']);
  });
});

describe('cancel across processes', () => {
  it('aborts the signal of a task running in another process within one renewal interval', async () => {
    const m = makeManager(db);
    const ledger = `ledger-${m.env}`;
    await startWorkerProcess(m.env, ledger, { LEASE_MS: '900' });
    await m.create(jobTask, { n: 1, sleepMs: 60_000 });
    await statusOf(m, 'job-1', 'running');
    const t0 = Date.now();
    expect(await m.cancel('job-1')).toBe(1);
    const entry = await waitFor(async () => {
      const [doc] = (await db.collection(ledger).get()).docs;
      const data = doc?.data();
      return data?.end ? data : undefined;
    }, { timeoutMs: 5000, message: 'handler in the child saw the abort' });
    expect(entry.aborted).toBe(true);
    expect(entry.end - t0).toBeLessThan(900 / 3 + 700); // a renewal interval plus slack
    // The worker stops waiting for the handler when the signal aborts: the attempt ends cancelled.
    const t = await statusOf(m, 'job-1', 'cancelled');
    expect(t).toMatchObject({ cancelRequested: true, attempts: 1, result: null });
  }, 30_000);
});
