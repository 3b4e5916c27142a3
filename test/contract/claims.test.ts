/**
 * Contract: claims and fencing. Two managers on one kit stand for two processes sharing a
 * database; a crashed worker's task is taken over after its lease, and a worker whose lease was
 * taken over cannot write over the newer attempt.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, noRetry, ShutdownError } from '../../src/index.js';
import { BACKENDS, deferred, useKits } from './backends.js';

const job = defineTask({ kind: 'job', schema: z.object({ n: z.number().int() }), id: (d) => `job-${d.n}` });
const keyed = defineTask({
  kind: 'keyed',
  schema: z.object({ n: z.number().int(), key: z.string() }),
  id: (d) => `keyed-${d.n}`,
  resourceKey: (d) => d.key,
});

const LEASE_MS = 60_000;

/** Real time to let a late handler's return reach the store (or be kept from it). */
const settleReal = (ms = 30): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls (real time) until `fn` is true. */
async function until(fn: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await settleReal(5);
  }
}

describe.each(BACKENDS)('%s backend', (backend) => {
  const newKit = useKits(backend);

  it('two managers (two processes) share the queue: every task runs exactly once', async () => {
    const kit = await newKit();
    const [a, b] = [kit.manager(), kit.manager()];
    const ran = new Map<string, string[]>();
    for (const m of [a, b]) {
      m.handle(job, async (task) => {
        ran.set(task.id, [...(ran.get(task.id) ?? []), m.workerId]);
        await settleReal(1);
        return m.workerId;
      }, { concurrency: 3 });
    }
    await a.createMany(job, Array.from({ length: 24 }, (_, n) => ({ n })));

    await kit.drain();

    expect(ran.size).toBe(24);
    expect([...ran.values()].every((workers) => workers.length === 1)).toBe(true);
    expect(await b.countByStatus(job)).toMatchObject({ pending: 0, running: 0, succeeded: 24 });
    expect(kit.runs.filter((r) => r.outcome === 'succeeded')).toHaveLength(24);
  });

  it('four managers draining one unsharded backlog (they spread over lanes of document IDs) run every task exactly once', async () => {
    const kit = await newKit();
    const managers = [kit.manager(), kit.manager(), kit.manager(), kit.manager()];
    const ran = new Map<string, number>();
    for (const m of managers) m.handle(job, (task) => void ran.set(task.id, (ran.get(task.id) ?? 0) + 1), { concurrency: 4 });
    await managers[0]!.createMany(job, Array.from({ length: 200 }, (_, n) => ({ n })));

    await kit.drain();

    expect(ran.size).toBe(200);
    expect([...ran.values()].every((count) => count === 1)).toBe(true);
    expect(await managers[1]!.countByStatus(job)).toMatchObject({ pending: 0, running: 0, succeeded: 200 });
  });

  it('a sharded queue (shards: 4) is claimed, counted and listed across its shards by two managers', async () => {
    const kit = await newKit();
    const [a, b] = [kit.manager({ shards: 4 }), kit.manager({ shards: 4 })];
    const ran = new Map<string, number>();
    for (const m of [a, b]) {
      m.handle(job, (task) => void ran.set(task.id, (ran.get(task.id) ?? 0) + 1), { concurrency: 2 });
      m.handle(keyed, (task) => void ran.set(task.id, (ran.get(task.id) ?? 0) + 1), { concurrency: 2 });
    }
    await a.createMany(job, Array.from({ length: 16 }, (_, n) => ({ n })));
    await b.createMany(keyed, Array.from({ length: 8 }, (_, n) => ({ n, key: `k${n % 3}` })));
    expect((await a.list({ limit: 100 })).tasks).toHaveLength(24);
    expect(await b.queueDepth(job)).toMatchObject({ dueNow: 16 });

    await kit.drain();

    expect(ran.size).toBe(24);
    expect([...ran.values()].every((times) => times === 1)).toBe(true);
    expect(await a.countByStatus()).toMatchObject({ pending: 0, succeeded: 24 });
    expect((await b.listByResourceKey(keyed, 'k1')).map((t) => t.id)).toEqual(['keyed-1', 'keyed-4', 'keyed-7']);
  });

  it('a crashed worker\'s task runs again after its lease expires, with LEASE_EXPIRED recorded; the late return writes nothing', async () => {
    const kit = await newKit();
    const doomed = kit.manager();
    const started = deferred();
    const release = deferred();
    doomed.handle(job, async () => {
      started.resolve();
      await release.promise;
      return 'from the crashed worker';
    }, { leaseMs: LEASE_MS });
    const survivor = kit.manager();
    survivor.handle(job, (task) => `rerun of attempt ${task.attempt}`, { leaseMs: LEASE_MS });
    const t0 = kit.now().getTime();
    await doomed.create(job, { n: 1 });
    doomed.start();
    await started.promise;
    const running = (await survivor.get('job-1'))!;
    expect(running).toMatchObject({ status: 'running', attempts: 1, lease: { workerId: doomed.workerId, expiresAt: new Date(t0 + LEASE_MS) } });

    await kit.crashWorker(doomed);
    expect(await kit.advance(LEASE_MS - 1000)).toEqual([]); // still leased
    const runs = await kit.advance('2s');

    expect(runs.map((r) => [r.outcome, r.attempt, r.at.getTime()])).toEqual([['succeeded', 2, t0 + LEASE_MS]]);
    const done = (await survivor.get('job-1'))!;
    expect(done).toMatchObject({ status: 'succeeded', attempts: 2, errorCount: 1, result: 'rerun of attempt 2', lease: null });
    expect(done.errors.map((e) => [e.attempt, e.code])).toEqual([[1, 'LEASE_EXPIRED']]);

    const writesBefore = doomed.stats().writes;
    release.resolve();
    await settleReal();
    expect(doomed.stats().writes).toBe(writesBefore);
    expect(await survivor.get('job-1')).toEqual(done);
  });

  it('a crashed worker\'s task whose retries are used up is failed without running again', async () => {
    const kit = await newKit();
    const doomed = kit.manager();
    const started = deferred();
    doomed.handle(job, async () => {
      started.resolve();
      await new Promise(() => undefined); // never returns
    }, { leaseMs: LEASE_MS, retry: noRetry() });
    const survivor = kit.manager();
    const reruns: string[] = [];
    survivor.handle(job, (task) => void reruns.push(task.id), { leaseMs: LEASE_MS, retry: noRetry() });
    await doomed.create(job, { n: 1 });
    doomed.start();
    await started.promise;
    await kit.crashWorker(doomed);

    await kit.advance(LEASE_MS + 1000);

    expect(reruns).toEqual([]);
    const task = (await survivor.get('job-1'))!;
    expect([task.status, task.attempts, task.errors.map((e) => e.code)]).toEqual(['failed', 1, ['LEASE_EXPIRED']]);
  });

  it('fencing: a live worker whose lease expired and was taken over cannot write its outcome over the new attempt', async () => {
    const kit = await newKit();
    const slow = kit.manager();
    const started = deferred();
    const release = deferred();
    slow.handle(job, async () => {
      started.resolve();
      await release.promise;
      return 'stale';
    }, { leaseMs: LEASE_MS });
    const other = kit.manager();
    other.handle(job, () => 'fresh', { leaseMs: LEASE_MS });
    await slow.create(job, { n: 1 });
    slow.start();
    await started.promise;

    // The slow worker is stalled (no renewal reached the store) past its lease: another takes over.
    kit.clock!.set(kit.now().getTime() + LEASE_MS + 1);
    other.start();
    const fresh = await kit.waitFor('job-1', 'succeeded');
    expect(fresh).toMatchObject({ attempts: 2, result: 'fresh', errors: [{ attempt: 1, code: 'LEASE_EXPIRED' }] });

    const before = slow.stats();
    release.resolve();
    await until(() => slow.stats().refusedWrites > before.refusedWrites, 'the stale outcome write to be refused');
    await settleReal();
    expect(slow.stats().writes).toBe(before.writes);
    expect(await other.get('job-1')).toEqual(fresh);
    expect(kit.runs.map((r) => [r.outcome, r.attempt])).toEqual([['succeeded', 2]]);
  });

  it('stop() hands a running task back without counting the attempt; it then runs again as attempt 1', async () => {
    const kit = await newKit();
    const leaving = kit.manager();
    const started = deferred();
    const attempts: number[] = [];
    let reason: unknown;
    const handler = async (_task: unknown, ctx: { attempt: number; signal: AbortSignal }): Promise<string> => {
      attempts.push(ctx.attempt);
      if (attempts.length > 1) return 'done';
      started.resolve();
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      reason = ctx.signal.reason;
      throw reason;
    };
    leaving.handle(job, handler, { leaseMs: LEASE_MS });
    await leaving.create(job, { n: 1 });
    leaving.start();
    await started.promise;

    await leaving.stop({ graceMs: 0 });

    expect(reason).toBeInstanceOf(ShutdownError);
    expect(await leaving.get('job-1')).toMatchObject({ status: 'pending', attempts: 0, errorCount: 0, lease: null });
    expect(kit.runs.map((r) => r.outcome)).toEqual(['released']);
    // Another process runs it (the kit's drain starts the new manager; the stopped one stays stopped).
    kit.manager().handle(job, handler, { leaseMs: LEASE_MS });
    await kit.drain();
    expect(attempts).toEqual([1, 1]);
    expect(await leaving.get('job-1')).toMatchObject({ status: 'succeeded', attempts: 1, errorCount: 0, result: 'done' });
  });

  it('manager.drain() (serverless mode) runs what is due, leaves what is due later, and says what ran', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    tasks.handle(job, (task) => {
      if (task.data.n === 2) throw new Error('retry me');
    }, { retry: { shouldRetry: () => true, nextDelayMs: () => 60_000 } });
    await tasks.createMany(job, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    await tasks.create(job, { n: 4 }, { waitUntil: new Date(kit.now().getTime() + 3_600_000) });

    const result = await tasks.drain({ maxMs: 20_000 });

    expect(result).toMatchObject({ ran: 3, emptied: true, outcomes: { succeeded: 2, retrying: 1, failed: 0, cancelled: 0, cancelling: 0, released: 0 } });
    expect(await tasks.countByStatus(job)).toMatchObject({ pending: 2, succeeded: 2 });
    expect(await tasks.drain({ maxMs: 20_000 })).toMatchObject({ ran: 0, emptied: true });
  });
});
