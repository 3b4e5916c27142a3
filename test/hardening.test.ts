/**
 * The hardening issue's numbered failures, one describe block each (the partition and
 * lost-acknowledgement failures through the fault proxy are in test/network-faults.test.ts).
 * Each test failed on the code before the fix.
 */
import type { DocumentReference, Timestamp } from '@google-cloud/firestore';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fixedDelay, noRetry } from '../src/index.js';
import { LeaseKeeper } from '../src/lease/keeper.js';
import type { Lease } from '../src/lease/lease.js';
import { Shards } from '../src/store/shards.js';
import { LeaseProtocol } from '../src/lease/protocol.js';
import { monotonicNow } from '../src/store/calls.js';
import { ConditionalWriter } from '../src/store/conditional-writer.js';
import { OperationCounter } from '../src/store/op-stats.js';
import { TaskStore } from '../src/store/task-store.js';
import { nextPageSize, QueueReader } from '../src/worker/queue-reader.js';
import { useFirestore, waitFor } from './fixture.js';
import { capturingLogger, jobTask, leaseSetup, makeManager, sleep } from './support.js';
import { keyedTask } from './tasks.js';

const db = useFirestore();

afterEach(() => vi.restoreAllMocks());

const setup = (n = 1) => leaseSetup(db, n);

describe('1. a lease with a hard local deadline', () => {
  it('aborts the signal at the deadline while a renewal hangs (the SDK retrying into a partition)', async () => {
    const controller = new AbortController();
    const lease = { token: 't', tasks: [{ taskId: 'x' }], lock: null, expiresAt: new Date(), deadline: monotonicNow() + 300, ended: false } as unknown as Lease;
    const hanging = { renew: () => new Promise<void>(() => undefined) } as unknown as LeaseProtocol;
    const keeper = new LeaseKeeper(lease, hanging, 330, (reason) => controller.abort(reason), capturingLogger());
    const started = monotonicNow();
    keeper.start();
    await new Promise((resolve) => controller.signal.addEventListener('abort', resolve, { once: true }));
    const took = monotonicNow() - started;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(600);
    expect(lease.ended).toBe(true);
    expect((controller.signal.reason as { code?: string }).code).toBe('LEASE_LOST');
    keeper.stop();
  });

  it('measures the deadline from when the claim was sent, before the stored expiry', async () => {
    const { candidates, a } = await setup();
    const before = monotonicNow();
    const lease = (await a.claim([(await candidates())[0]!], { leaseMs: 5000, mode: 'run' }))!;
    expect(lease.deadline).toBeGreaterThan(before);
    expect(lease.deadline).toBeLessThanOrEqual(before + 5000 - 50);
    // After the deadline nothing is written for the attempt.
    lease.deadline = monotonicNow() - 1;
    await expect(a.succeed(lease, lease.tasks[0]!, 'late')).rejects.toThrow(/expired locally/);
  });
});

describe('2. lost acknowledgements are resolved by a witness', () => {
  /**
   * A document reference whose write lands but whose answer is lost; the SDK's re-send is then
   * refused. With `laterWrite`, another write (a worker's claim) lands before we look, so the
   * `rev` stamped by our write is gone and only the witness survives.
   */
  function lostAckRef(code: number, laterWrite = false) {
    let doc: Record<string, unknown> | null = code === 6 ? null : { rev: 'old' };
    let version = 1;
    const ts = (n: number) => ({ isEqual: (o: { n?: number }) => o.n === n, n }) as unknown as Timestamp;
    const apply = (fields: Record<string, unknown>) => {
      doc = { ...doc, ...fields, ...(laterWrite ? { rev: 'someone-else' } : {}) };
      version += laterWrite ? 2 : 1;
      throw Object.assign(new Error('refused on re-send'), { code });
    };
    const ref = {
      firestore: {},
      update: async (fields: Record<string, unknown>) => apply(fields),
      create: async (fields: Record<string, unknown>) => {
        if (doc !== null) throw Object.assign(new Error('exists'), { code: 6 });
        return apply(fields);
      },
      get: async () => ({ exists: doc !== null, data: () => doc ?? undefined, updateTime: ts(version) }),
    };
    return { ref: ref as unknown as DocumentReference, ts };
  }

  it('an update refused on re-send is recognised as applied by its witness', async () => {
    const writer = new ConditionalWriter(new OperationCounter(), 1000);
    const { ref, ts } = lostAckRef(9, true);
    const result = await writer.update(ref, { lease: { token: 'mine' } }, ts(1), { witness: (d) => (d.lease as { token?: string })?.token === 'mine' });
    expect(result.ok).toBe(true);
  });

  it('a create refused on re-send counts as created by its nonce, even after its rev was overwritten', async () => {
    const writer = new ConditionalWriter(new OperationCounter(), 1000);
    const { ref } = lostAckRef(6, true);
    const result = await writer.commit([{ ref, fields: { createNonce: 'n-1' }, precondition: 'absent' }], { witness: (d) => d.createNonce === 'n-1' });
    expect(Array.isArray(result)).toBe(true);
    const foreign = await writer.commit([{ ref, fields: { createNonce: 'n-2' }, precondition: 'absent' }], { witness: (d) => d.createNonce === 'n-2' });
    expect(foreign).toMatchObject({ ok: false, reason: 'exists' });
  });

  it('a refused write without a witness is a conflict', async () => {
    const writer = new ConditionalWriter(new OperationCounter(), 1000);
    const { ref, ts } = lostAckRef(9);
    const result = await writer.update(ref, { x: 1 }, ts(1));
    expect(result).toMatchObject({ ok: false, reason: 'conflict' });
  });
});

describe('3. a claim completing after stop() began', () => {
  it('hands the task back without calling the handler or counting the attempt', async () => {
    const m = makeManager(db, { listen: false });
    let claimed!: () => void;
    const claimSeen = new Promise<void>((resolve) => (claimed = resolve));
    let letGo!: () => void;
    const held = new Promise<void>((resolve) => (letGo = resolve));
    const original = LeaseProtocol.prototype.claim;
    vi.spyOn(LeaseProtocol.prototype, 'claim').mockImplementation(async function (this: LeaseProtocol, ...args) {
      const lease = await original.apply(this, args);
      claimed();
      await held; // the claim's answer arrives only after stop() began
      return lease;
    });
    const calls: string[] = [];
    m.handle(jobTask, (task) => void calls.push(task.id));
    await m.create(jobTask, { n: 1 });
    m.start();
    await claimSeen;
    const stopped = m.stop({ graceMs: 2000 });
    await sleep(50);
    letGo();
    await stopped;
    expect(calls).toEqual([]);
    const task = (await m.get('job-1'))!;
    expect(task.status).toBe('pending');
    expect(task.attempts).toBe(0);
    expect(task.lease).toBeNull();
  });
});

describe('4. a handler that ignores its signal', () => {
  /** Records each execution's [start, end) and returns them. */
  function recorder() {
    const runs: { id: string; attempt: number; start: number; end: number }[] = [];
    const stubborn = async (id: string, attempt: number, ms: number) => {
      const run = { id, attempt, start: Date.now(), end: Infinity };
      runs.push(run);
      await sleep(ms); // ignores ctx.signal
      run.end = Date.now();
    };
    return { runs, stubborn };
  }

  it('keeps the key lock until the handler returns, so the next task of the key waits', async () => {
    const logger = capturingLogger();
    const m = makeManager(db, { logger });
    const { runs, stubborn } = recorder();
    m.handle(keyedTask, async (task) => stubborn(task.id, task.attempt, task.data.n === 1 ? 3300 : 10), { timeoutMs: 200, retry: noRetry(), concurrency: 2 });
    await m.create(keyedTask, { n: 1, key: 'k' });
    await m.create(keyedTask, { n: 2, key: 'k' }, { waitUntil: new Date(Date.now() + 100) });
    m.start();
    await waitFor(async () => (await m.get('keyed-2'))?.status === 'succeeded', { timeoutMs: 15_000 });
    const first = runs.find((r) => r.id === 'keyed-1')!;
    const second = runs.find((r) => r.id === 'keyed-2')!;
    expect(second.start).toBeGreaterThanOrEqual(first.end);
    const t1 = (await m.get('keyed-1'))!;
    expect(t1.status).toBe('failed');
    expect(t1.errors[0]!.code).toBe('HANDLER_TIMEOUT');
    expect(logger.lines()).toContain('warn oncetask: handler ignores its aborted signal; its task, key and slot stay held until it returns');
  });

  it("does not start the same task's retry beside its timed-out attempt", async () => {
    const m = makeManager(db);
    const { runs, stubborn } = recorder();
    m.handle(jobTask, async (task) => {
      if (task.attempt === 1) await stubborn(task.id, 1, 1200);
      else await stubborn(task.id, task.attempt, 10);
    }, { timeoutMs: 150, retry: fixedDelay({ delayMs: 0, maxAttempts: 2 }), concurrency: 4 });
    await m.create(jobTask, { n: 1 });
    m.start();
    await waitFor(async () => (await m.get('job-1'))?.status === 'succeeded', { timeoutMs: 15_000 });
    expect(runs.map((r) => r.attempt)).toEqual([1, 2]);
    expect(runs[1]!.start).toBeGreaterThanOrEqual(runs[0]!.end);
  });

  it('holds the slot: with concurrency 1 nothing else starts until the handler returns', async () => {
    const m = makeManager(db);
    const { runs, stubborn } = recorder();
    m.handle(jobTask, async (task) => stubborn(task.id, task.attempt, task.data.n === 1 ? 1000 : 10), { timeoutMs: 100, retry: noRetry() });
    await m.createMany(jobTask, [{ n: 1 }, { n: 2 }]);
    m.start();
    await waitFor(async () => (await m.get('job-2'))?.status === 'succeeded', { timeoutMs: 15_000 });
    expect(runs[1]!.start).toBeGreaterThanOrEqual(runs[0]!.end);
    expect((await m.get('job-1'))!.errors[0]!.code).toBe('HANDLER_TIMEOUT');
  });
});

describe('5. no renewal after the outcome', () => {
  it('a renewal queued behind a success does not put a lease back', async () => {
    const { candidates, a, raw } = await setup();
    const lease = (await a.claim([(await candidates())[0]!], { leaseMs: 60_000, mode: 'run' }))!;
    const outcome = a.succeed(lease, lease.tasks[0]!, 'done');
    const renewal = a.renew(lease, 60_000);
    await Promise.allSettled([outcome, renewal]);
    await outcome;
    const doc = await raw();
    expect(doc.status).toBe('succeeded');
    expect(doc.lease).toBeNull();
  });

  it("a renewal queued behind a retry keeps the policy's retry time", async () => {
    const { candidates, a, raw } = await setup();
    const lease = (await a.claim([(await candidates())[0]!], { leaseMs: 60_000, mode: 'run' }))!;
    const retryAt = new Date(Date.now() + 5000);
    const outcome = a.fail(lease, lease.tasks[0]!, new Error('boom'), { retryAt });
    const renewal = a.renew(lease, 60_000);
    await Promise.allSettled([outcome, renewal]);
    await outcome;
    const doc = await raw();
    expect(doc.status).toBe('pending');
    expect(doc.lease).toBeNull();
    expect(doc.waitUntil.toMillis()).toBe(retryAt.getTime());
  });

  it('through the worker: fast renewals around outcomes leave no finished task with a lease', async () => {
    const m = makeManager(db);
    m.handle(jobTask, async (task) => {
      await sleep(task.data.sleepMs);
      if (task.data.failTimes >= task.attempt) throw new Error('flaky');
    }, { leaseMs: 600, retry: fixedDelay({ delayMs: 3000, maxAttempts: 2 }), concurrency: 8 });
    // Renewals every 200 ms; handlers end around then, so renewals and outcomes meet.
    await m.createMany(jobTask, Array.from({ length: 16 }, (_, i) => ({ n: i + 1, sleepMs: 180 + (i % 5) * 12, failTimes: i % 2 })));
    m.start();
    await waitFor(async () => {
      const tasks = await m.getMany(Array.from({ length: 16 }, (_, i) => `job-${i + 1}`));
      return tasks.every((t) => t && (t.status === 'succeeded' || (t.status === 'pending' && t.attempts === 1)));
    }, { timeoutMs: 15_000, intervalMs: 500 });
    await sleep(300); // any queued renewal would have landed by now
    const tasks = await m.getMany(Array.from({ length: 16 }, (_, i) => `job-${i + 1}`));
    for (const t of tasks) {
      expect(t!.lease).toBeNull();
      if (t!.status === 'pending') expect(t!.waitUntil.getTime() - (t!.errors[0]!.at.getTime())).toBeGreaterThanOrEqual(2900);
    }
  });
});

describe('7. cancelByResourceKey over more than one page', () => {
  it('cancels all 600 future tasks of a key', async () => {
    const m = makeManager(db);
    const later = new Date(Date.now() + 3600_000);
    await m.createMany(keyedTask, Array.from({ length: 600 }, (_, i) => ({ n: i + 1, key: 'bulk' })), { waitUntil: later });
    expect(await m.cancelByResourceKey(keyedTask, 'bulk')).toBe(600);
    const tasks = await m.listByResourceKey(keyedTask, 'bulk', { limit: 1000 });
    expect(tasks.filter((t) => t.status === 'pending')).toEqual([]);
    expect(await m.cancelByResourceKey(keyedTask, 'bulk')).toBe(0);
  }, 60_000);
});

describe('8. queue page size', () => {
  it('stays an integer as it shrinks', () => {
    let size = 1000;
    for (let i = 0; i < 20; i++) {
      size = nextPageSize(size, 1, false);
      expect(Number.isInteger(size)).toBe(true);
    }
    expect(size).toBe(8);
    // Slow but short: the queue is short, the backend slow; a larger page would not help.
    expect(nextPageSize(8, 500, false)).toBe(8);
  });

  it('grows for a backlog the worker has to itself, and shrinks while others win its candidates', () => {
    // A slow full page (a scanning backend): the largest page at once, contested or not...
    expect(nextPageSize(8, 500, true)).toBe(1000);
    expect(nextPageSize(8, 500, true, 0.9)).toBe(1000);
    // ...once a page's claims were all won there; before, it doubles (others may read the same head).
    expect(nextPageSize(8, 500, true, 0, false)).toBe(16);
    // Fast full pages double while this worker wins its candidates...
    let size = 36;
    for (let i = 0; i < 3; i++) size = nextPageSize(size, 10, true, 0);
    expect(size).toBe(288);
    expect(nextPageSize(800, 10, true, 0)).toBe(1000);
    // ...and halve once most of them go to other workers (reading them was wasted).
    for (let i = 0; i < 3; i++) size = nextPageSize(size, 10, true, 0.5);
    expect(size).toBe(36);
    expect(Number.isInteger(nextPageSize(37, 10, true, 0.5))).toBe(true);
  });

  it('a worker keeps reading its queue after slow queries', async () => {
    const limits: number[] = [];
    let slow = 2;
    const store = {
      env: 'stub',
      shards: new Shards(1, 'stub'),
      findClaimable: async (_k: string, _s: unknown, _n: Date, limit: number) => {
        if (!Number.isInteger(limit)) throw new Error(`limit is not a valid integer: ${limit}`);
        limits.push(limit);
        if (slow > 0) {
          // Slow queries that fill their pages: once a page's claims are all won, the next page
          // after a slow one jumps to the largest size.
          slow--;
          await sleep(150);
          const due = new Date();
          return { tasks: Array.from({ length: limit }, (_, seq) => ({ docId: `d${seq}`, task: { waitUntil: due, seq }, updateTime: null })), malformed: [], next: null };
        }
        return { tasks: [], malformed: [], next: null };
      },
    } as unknown as TaskStore;
    const reader = new QueueReader(store, {} as LeaseProtocol, 'job', capturingLogger(), Date.now);
    await reader.nextPage(1, undefined);
    reader.recordPageClaims(1, 0);
    for (let i = 0; i < 11; i++) await reader.nextPage(1, undefined);
    expect(limits.every(Number.isInteger)).toBe(true);
    expect(Math.max(...limits)).toBe(1000);
  });
});

describe('clock skew', () => {
  it('a worker whose clock runs 1.9 s ahead never takes over a live, renewed lease', async () => {
    const env = `skew-${Date.now()}`;
    const a = makeManager(db, { env });
    const b = makeManager(db, { env, clock: () => Date.now() + 1900 });
    const runs: string[] = [];
    const handler = async (task: { id: string; attempt: number }) => {
      runs.push(`${task.id}#${task.attempt}`);
      await sleep(3500);
    };
    a.handle(jobTask, handler, { leaseMs: 1500 });
    b.handle(jobTask, handler, { leaseMs: 1500 });
    await a.create(jobTask, { n: 1 });
    a.start();
    await waitFor(async () => (await a.get('job-1'))?.status === 'running');
    b.start();
    await waitFor(async () => (await a.get('job-1'))?.status === 'succeeded', { timeoutMs: 15_000 });
    expect(runs).toEqual(['job-1#1']);
    expect((await a.get('job-1'))!.attempts).toBe(1);
  });
});
