import { HookRunner } from '../src/worker/hooks.js';
import { Telemetry } from '../src/telemetry/telemetry.js';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  defineTask,
  fixedDelay,
  HandlerAlreadyRegisteredError,
  InvalidOptionsError,
  noRetry,
  NonRetryableError,
  type TaskContext,
} from '../src/index.js';
import { useFirestore, waitFor } from './fixture.js';
import { capturingLogger, jobTask, makeManager, sleep, TEST_COLLECTION } from './support.js';
import { Shards } from '../src/store/shards.js';
import { internalsOf } from '../src/testing/internals.js';

const db = useFirestore();
const quick = fixedDelay({ maxAttempts: 3, delayMs: 20 });

const terminal = (m: ReturnType<typeof makeManager>, id: string, timeoutMs = 10_000) =>
  waitFor(async () => {
    const t = await m.get(id);
    return t && ['succeeded', 'failed', 'cancelled'].includes(t.status) ? t : undefined;
  }, { message: `${id} terminal`, timeoutMs });

describe('when tasks run', () => {
  it('runs a task only once it is due, not before', async () => {
    const m = makeManager(db);
    await m.get('warm-up'); // the first request of a client opens its channel (slow)
    const waitUntil = new Date(Date.now() + 1500);
    await m.create(jobTask, { n: 1 }, { waitUntil });
    let startedAt = 0;
    m.handle(jobTask, () => {
      startedAt = Date.now();
    });
    m.start();
    await sleep(700);
    expect(startedAt, `started ${waitUntil.getTime() - startedAt} ms before due`).toBe(0);
    expect((await m.get('job-1'))!.status).toBe('pending');
    await terminal(m, 'job-1');
    expect(startedAt).toBeGreaterThanOrEqual(waitUntil.getTime());
  });

  it('hands the handler the parsed payload (defaults applied) and the attempt number', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 4 });
    let seen: { data: unknown; attempt: number; ctxAttempt: number; id: string; aborted: boolean } | undefined;
    m.handle(jobTask, (task, ctx) => {
      seen = { data: task.data, attempt: task.attempt, ctxAttempt: ctx.attempt, id: task.id, aborted: ctx.signal.aborted };
    });
    m.start();
    await terminal(m, 'job-4');
    expect(seen).toEqual({ data: { n: 4, failTimes: 0, sleepMs: 0 }, attempt: 1, ctxAttempt: 1, id: 'job-4', aborted: false });
  });

  it('stores the handler result, dates included', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 });
    const at = new Date('2026-05-01T00:00:00Z');
    m.handle(jobTask, (task) => ({ doubled: task.data.n * 2, at, nothing: undefined }));
    m.start();
    const t = await terminal(m, 'job-1');
    expect(t.status).toBe('succeeded');
    expect(t.result).toEqual({ doubled: 2, at });
    expect(t.lease).toBeNull();
    expect(t.attempts).toBe(1);
  });
});

describe('retries and failures', () => {
  it('retries per the policy, recording each failure, until success', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 });
    m.handle(jobTask, (task, ctx) => {
      if (ctx.attempt <= 2) throw new Error(`fail #${ctx.attempt}`);
      return 'third time';
    }, { retry: quick });
    m.start();
    const t = await terminal(m, 'job-1');
    expect(t.status).toBe('succeeded');
    expect(t.attempts).toBe(3);
    expect(t.errorCount).toBe(2);
    expect(t.errors.map((e) => [e.attempt, e.message])).toEqual([[1, 'fail #1'], [2, 'fail #2']]);
    expect(t.errors[0]!.at).toBeInstanceOf(Date);
  });

  it('waits the policy delay between attempts', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 });
    const starts: number[] = [];
    m.handle(jobTask, () => {
      starts.push(Date.now());
      if (starts.length === 1) throw new Error('once');
    }, { retry: fixedDelay({ maxAttempts: 2, delayMs: 600 }) });
    m.start();
    await terminal(m, 'job-1');
    expect(starts).toHaveLength(2);
    expect(starts[1]! - starts[0]!).toBeGreaterThanOrEqual(600);
  });

  it('leaves the task failed after the last attempt, with doneAt and a TTL expireAt', async () => {
    const m = makeManager(db, { retentionMs: 3600_000 });
    await m.create(jobTask, { n: 1 });
    m.handle(jobTask, () => {
      throw new Error('always');
    }, { retry: quick });
    m.start();
    const t = await terminal(m, 'job-1');
    expect(t.status).toBe('failed');
    expect(t.attempts).toBe(3);
    expect(t.errorCount).toBe(3);
    expect(t.expireAt!.getTime() - t.doneAt!.getTime()).toBe(3600_000);
  });

  it('keeps the last 20 errors and the total count', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 });
    m.handle(jobTask, (_t, ctx) => {
      throw new Error(`e${ctx.attempt}`);
    }, { retry: fixedDelay({ maxAttempts: 23, delayMs: 0 }) });
    m.start();
    const t = await terminal(m, 'job-1', 25_000); // 23 attempts: slow on a loaded machine
    expect(t.errorCount).toBe(23);
    expect(t.errors).toHaveLength(20);
    expect(t.errors[0]!.message).toBe('e4');
    expect(t.errors[19]!.message).toBe('e23');
  });

  it('counts a thrown non-Error and a rejected promise as failed attempts', async () => {
    const m = makeManager(db);
    await m.createMany(jobTask, [{ n: 1 }, { n: 2 }]);
    m.handle(jobTask, async (task) => {
      if (task.data.n === 1) throw { reason: 'plain object' };
      return Promise.reject('just a string');
    }, { retry: noRetry(), concurrency: 2 });
    m.start();
    const [a, b] = [await terminal(m, 'job-1'), await terminal(m, 'job-2')];
    expect(a.status).toBe('failed');
    expect(a.errors[0]!.message).toContain('plain object');
    expect(b.status).toBe('failed');
    expect(b.errors[0]!.message).toBe('just a string');
  });

  it('fails a NonRetryableError at once, whatever the policy', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 });
    m.handle(jobTask, () => {
      throw new NonRetryableError('account closed');
    }, { retry: fixedDelay({ maxAttempts: 10, delayMs: 0 }) });
    m.start();
    const t = await terminal(m, 'job-1');
    expect(t.status).toBe('failed');
    expect(t.attempts).toBe(1);
    expect(t.errors[0]).toMatchObject({ message: 'account closed', code: 'NON_RETRYABLE' });
  });

  it('aborts the signal after timeoutMs and records a timed-out attempt', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 });
    let reason: unknown;
    m.handle(jobTask, (_t, ctx: TaskContext) => new Promise((_resolve, reject) => {
      ctx.signal.addEventListener('abort', () => {
        reason = ctx.signal.reason;
        reject(ctx.signal.reason);
      });
    }), { timeoutMs: 150, retry: noRetry() });
    m.start();
    const t = await terminal(m, 'job-1');
    expect(t.status).toBe('failed');
    expect(t.errors[0]!.code).toBe('HANDLER_TIMEOUT');
    expect((reason as { code?: string }).code).toBe('HANDLER_TIMEOUT');
  });
});

describe('bad data', () => {
  it('fails a task whose stored payload no longer parses, and keeps working', async () => {
    const m = makeManager(db);
    await m.createMany(jobTask, [{ n: 1 }, { n: 2 }]);
    const [doc] = (await db.collection(TEST_COLLECTION).where('env', '==', m.env).where('id', '==', 'job-1').get()).docs;
    await doc!.ref.update({ 'data.n': 'not a number' });
    const ran: number[] = [];
    m.handle(jobTask, (task) => {
      ran.push(task.data.n);
    });
    m.start();
    const bad = await terminal(m, 'job-1');
    expect(bad.status).toBe('failed');
    expect(bad.errors[0]).toMatchObject({ code: 'INVALID_PAYLOAD', message: expect.stringMatching(/field "n"/) });
    expect((await terminal(m, 'job-2')).status).toBe('succeeded');
    expect(ran).toEqual([2]);
  });

  it('marks a malformed document failed with the reason, and keeps working', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 2 });
    const malformed = db.collection(TEST_COLLECTION).doc(`malformed-${m.env}`);
    const now = new Date();
    await malformed.set({
      id: 'bad', kind: 'job', env: m.env, status: 'pending', data: { n: 3 }, resourceKey: null, waitUntil: new Date(0),
      createdAt: now, updatedAt: now, seq: 1, attempts: 'three', errorCount: 0, errors: [], doneAt: null, expireAt: null, lease: null,
    });
    m.handle(jobTask, () => 'ok');
    m.start();
    expect((await terminal(m, 'job-2')).status).toBe('succeeded');
    const raw = await waitFor(async () => {
      const data = (await malformed.get()).data()!;
      return data.status === 'failed' ? data : undefined;
    });
    expect(raw.errors[0].code).toBe('MALFORMED_TASK');
    expect(raw.errors[0].message).toMatch(/attempts/);
  });

  it('records a result Firestore cannot store as a failure, not a stuck lease', async () => {
    const m = makeManager(db);
    await m.createMany(jobTask, [{ n: 1 }, { n: 2 }]);
    m.handle(jobTask, (task) => (task.data.n === 1 ? { callback: () => 1 } : { blob: 'x'.repeat(1_100_000) }), {
      retry: fixedDelay({ maxAttempts: 5, delayMs: 0 }),
    });
    m.start();
    const fn = await terminal(m, 'job-1');
    expect(fn).toMatchObject({ status: 'failed', attempts: 1, lease: null });
    expect(fn.errors[0]).toMatchObject({ code: 'UNENCODABLE_VALUE', message: expect.stringMatching(/"callback"/) });
    const big = await terminal(m, 'job-2');
    expect(big).toMatchObject({ status: 'failed', attempts: 1, lease: null });
    expect(big.errors[0]!.code).toBe('UNENCODABLE_VALUE');
  });
});

describe('concurrency', () => {
  it('runs at most `concurrency` handlers of a kind at once in a process', async () => {
    const m = makeManager(db);
    await m.createMany(jobTask, Array.from({ length: 12 }, (_, n) => ({ n })));
    let active = 0;
    let peak = 0;
    m.handle(jobTask, async () => {
      peak = Math.max(peak, ++active);
      await sleep(80);
      active--;
    }, { concurrency: 3 });
    m.start();
    await waitFor(async () => (await m.list({ limit: 20, status: 'succeeded' })).tasks.length === 12, { timeoutMs: 20_000 });
    expect(peak).toBe(3);
  });

  it("frees a handler's slot when it returns, so the next claim goes out with its outcome write: about one round trip per task", async () => {
    const m = makeManager(db);
    await m.createMany(jobTask, Array.from({ length: 20 }, (_, n) => ({ n })));
    let active = 0;
    let peak = 0;
    m.handle(jobTask, async () => {
      peak = Math.max(peak, ++active);
      await sleep(5);
      active--;
    }, { concurrency: 1 });
    const { stats } = internalsOf(m).store.batcher;
    const before = stats.flushes;
    m.start();
    await waitFor(async () => (await m.list({ limit: 30, status: 'succeeded' })).tasks.length === 20, { timeoutMs: 20_000 });
    expect(peak).toBe(1);
    // A claim and an outcome each in a round trip of its own would be 40.
    expect(stats.flushes - before).toBeLessThanOrEqual(30);
  });

  it('never runs a task twice when several workers share the queue', async () => {
    const env = makeManager(db).env;
    const workers = [1, 2, 3].map(() => makeManager(db, { env }));
    const producer = workers[0]!;
    await producer.createMany(jobTask, Array.from({ length: 60 }, (_, n) => ({ n })));
    const runs = new Map<string, number>();
    for (const w of workers) {
      w.handle(jobTask, async (task) => {
        runs.set(task.id, (runs.get(task.id) ?? 0) + 1);
        await sleep(5);
      }, { concurrency: 4 });
      w.start();
    }
    await waitFor(async () => (await producer.list({ limit: 100, status: 'succeeded' })).tasks.length === 60, { timeoutMs: 25_000 });
    expect(runs.size).toBe(60);
    expect([...runs.values()].every((count) => count === 1)).toBe(true);
  });
});

describe('handler registration', () => {
  it('allows one handler per kind and validates handler options', () => {
    const m = makeManager(db);
    m.handle(jobTask, () => undefined);
    expect(() => m.handle(jobTask, () => undefined)).toThrow(HandlerAlreadyRegisteredError);
    const other = defineTask({ kind: 'other', schema: z.object({}), id: () => 'o' });
    expect(() => m.handle(other, () => undefined, { concurrency: 0 })).toThrow(/option "concurrency"/);
    expect(() => m.handle(other, () => undefined, { leaseMs: 5 })).toThrow(/leaseMs/);
    expect(() => m.handle(other, () => undefined, { retry: { shouldRetry: () => true } as never })).toThrow(InvalidOptionsError);
    expect(() => m.handle(other, 'nope' as never)).toThrow(/function/);
  });
});

describe('Firestore settings', () => {
  it('works with a Firestore instance created with useBigInt: true', async () => {
    const { Firestore } = await import('@google-cloud/firestore');
    const bigDb = new Firestore({ projectId: 'demo-oncetask', useBigInt: true });
    try {
      const m = makeManager(bigDb);
      await m.create(jobTask, { n: 1 });
      m.handle(jobTask, (_t, ctx) => {
        if (ctx.attempt === 1) throw new Error('once');
        return 'ok';
      }, { retry: quick });
      m.start();
      const t = await terminal(m, 'job-1');
      expect(t).toMatchObject({ status: 'succeeded', attempts: 2, errorCount: 1 });
      await m.stop();
    } finally {
      await bigDb.terminate();
    }
  });
});

describe('an unreachable backend', () => {
  it('is reported when a look at the queue hangs, and so is the recovery', async () => {
    const { KindWorker } = await import('../src/worker/kind-worker.js');
    const logger = capturingLogger();
    const empty = { tasks: [], malformed: [], next: null };
    let up = false;
    let answer: (() => void) | undefined;
    // A store whose queries hang until the backend is "up" (like the SDK retrying through an outage).
    const store = {
      env: 'stub',
      shards: new Shards(1, 'stub'),
      findClaimable: () => (up ? Promise.resolve(empty) : new Promise((resolve) => (answer = () => resolve(empty)))),
      nextDueAt: async () => null,
      locks: { readLocks: async () => new Map() },
    };
    const worker = new KindWorker(
      { store: store as never, protocol: {} as never, logger, listen: false, listenerRoleMs: 0, pollIntervalMs: 60_000, sweepIntervalMs: 60_000, retentionMs: 1000, clock: Date.now, maxClockSkewMs: 0, hooks: new HookRunner({}, 1000, logger), telemetry: new Telemetry('stub', 'link'), control: { ready: true, pausedUntil: () => null, subscribe: () => () => undefined } as never },
      jobTask,
      { mode: 'single', handler: () => undefined, onCancel: undefined },
      { retry: noRetry(), cancelRetry: noRetry(), leaseMs: 1000, concurrency: 1, timeoutMs: undefined, maxBatchSize: 1, cooldownMs: 0 },
    );
    worker.start();
    await sleep(5300);
    expect(logger.lines()).toContain('warn oncetask: Firestore is not answering; still trying');
    up = true;
    answer!();
    await waitFor(() => logger.lines().includes('info oncetask: Firestore answers again') || undefined, { timeoutMs: 2000 });
    await worker.stop(0);
  }, 15_000);
});
