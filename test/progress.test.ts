import { describe, expect, it } from 'vitest';
import { InvalidOptionsError, LeaseLostError, fixedDelay, type TaskContext } from '../src/index.js';
import { useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager, sleep, startWorkerProcess } from './support.js';

const db = useFirestore();

/** A gate a handler waits on, opened by the test. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe('progress', () => {
  it('a report from a worker in another process is visible to get() while the task runs', async () => {
    const m = makeManager(db);
    const child = await startWorkerProcess(m.env, `ledger-${m.env}`, { PROGRESS: '1', CONCURRENCY: '1' });
    await m.create(jobTask, { n: 1, sleepMs: 4000 });
    const running = await waitFor(async () => {
      const t = await m.get('job-1');
      return t?.status === 'running' && t.progress !== null ? t : undefined;
    }, { message: 'progress of the running task', timeoutMs: 10_000 });
    expect(running.progress).toEqual({ pid: child.pid });
    expect(running.startedAt).not.toBeNull();
    expect(running.durationMs).toBeNull();
    const done = await waitFor(async () => {
      const t = await m.get('job-1');
      return t?.status === 'succeeded' ? t : undefined;
    }, { timeoutMs: 15_000 });
    // The last report stays; the attempt's duration is written with the outcome.
    expect(done.progress).toEqual({ pid: child.pid });
    expect(done.durationMs).toBeGreaterThanOrEqual(4000);
    expect(done.durationMs).toBeLessThan(10_000);
    expect(done.startedAt!.getTime()).toBeGreaterThanOrEqual(done.createdAt.getTime());
  });

  it('without flush, a report rides on the next lease renewal and costs no write of its own', async () => {
    const m = makeManager(db);
    const reported = gate();
    const finish = gate();
    m.handle(
      jobTask,
      async (_task, ctx) => {
        await ctx.setProgress(0.25);
        reported.open();
        await finish.wait;
      },
      { leaseMs: 3000 }, // renewed every second
    );
    await m.create(jobTask, { n: 1 });
    m.start();
    await reported.wait;
    const writesAfterReport = m.stats().writes;
    expect((await m.get('job-1'))!.progress).toBeNull(); // not written yet
    await waitFor(async () => (await m.get('job-1'))!.progress === 0.25, { message: 'progress written by the renewal', timeoutMs: 3000 });
    // Only the renewal wrote (one write for the task); no write for the report itself.
    expect(m.stats().writes - writesAfterReport).toBeLessThanOrEqual(2);
    finish.open();
    await waitFor(async () => (await m.get('job-1'))!.status === 'succeeded');
  });

  it('flush writes now, at most once a second per task, and the newest report wins', async () => {
    const m = makeManager(db);
    const seen: { value: unknown; ms: number }[] = [];
    const finish = gate();
    m.handle(
      jobTask,
      async (_task, ctx) => {
        const t0 = Date.now();
        await ctx.setProgress(0.1, { flush: true });
        seen.push({ value: (await m.get('job-1'))!.progress, ms: Date.now() - t0 });
        const second = ctx.setProgress(0.2, { flush: true });
        const third = ctx.setProgress({ step: 3 }, { flush: true });
        await Promise.all([second, third]);
        seen.push({ value: (await m.get('job-1'))!.progress, ms: Date.now() - t0 });
        await finish.wait;
      },
      { leaseMs: 120_000 },
    );
    await m.create(jobTask, { n: 1 });
    m.start();
    await waitFor(() => seen.length === 2, { timeoutMs: 5000 });
    expect(seen[0]!.value).toBe(0.1);
    expect(seen[0]!.ms).toBeLessThan(900);
    expect(seen[1]!.value).toEqual({ step: 3 });
    expect(seen[1]!.ms).toBeGreaterThanOrEqual(950);
    finish.open();
  });

  it('is reset when a new attempt starts, and refused once the lease is lost', async () => {
    const m = makeManager(db);
    const atStart: unknown[] = [];
    const refusals: unknown[] = [];
    const deleted = gate();
    m.handle(
      jobTask,
      async (task, ctx: TaskContext) => {
        atStart.push((await m.get(task.id))!.progress);
        await ctx.setProgress(ctx.attempt / 10, { flush: true });
        if (ctx.attempt === 1) throw new Error('first attempt fails');
        await deleted.wait;
        await ctx.setProgress(0.9, { flush: true }).catch((err: unknown) => refusals.push(err));
      },
      { retry: fixedDelay({ delayMs: 10, maxAttempts: 3 }), leaseMs: 120_000 },
    );
    await m.create(jobTask, { n: 1 });
    m.start();
    await waitFor(() => atStart.length === 2, { message: 'second attempt started' });
    expect(atStart).toEqual([null, null]);
    await waitFor(async () => (await m.get('job-1'))!.progress === 0.2);
    await m.delete('job-1');
    deleted.open();
    await waitFor(() => refusals.length === 1);
    expect(refusals[0]).toBeInstanceOf(LeaseLostError);
  });

  it('rejects values that are not a fraction in [0, 1] or a small plain object', async () => {
    const m = makeManager(db);
    const errors: unknown[] = [];
    m.handle(jobTask, async (_task, ctx) => {
      for (const bad of [1.5, -0.1, Number.NaN, [1, 2], { big: 'x'.repeat(5000) }] as never[]) {
        await ctx.setProgress(bad).catch((err: unknown) => errors.push(err));
      }
    });
    await m.create(jobTask, { n: 1 });
    m.start();
    await waitFor(() => errors.length === 5);
    for (const err of errors) expect(err).toBeInstanceOf(InvalidOptionsError);
    await waitFor(async () => (await m.get('job-1'))!.status === 'succeeded');
    expect((await m.get('job-1'))!.progress).toBeNull();
  });
});

describe('attempt timing', () => {
  it('records startedAt with the claim and durationMs with the outcome, for failures too', async () => {
    const m = makeManager(db);
    m.handle(
      jobTask,
      async (_task, ctx) => {
        await sleep(ctx.attempt === 1 ? 300 : 100);
        if (ctx.attempt === 1) throw new Error('fails once');
      },
      { retry: fixedDelay({ delayMs: 2000, maxAttempts: 2 }) },
    );
    const before = Date.now();
    await m.create(jobTask, { n: 1 });
    m.start();
    const retrying = await waitFor(async () => {
      const t = await m.get('job-1');
      return t?.status === 'pending' && t.attempts === 1 ? t : undefined;
    });
    expect(retrying.durationMs).toBeGreaterThanOrEqual(300);
    expect(retrying.startedAt!.getTime()).toBeGreaterThanOrEqual(before - 50);
    const done = await waitFor(async () => {
      const t = await m.get('job-1');
      return t?.status === 'succeeded' ? t : undefined;
    }, { timeoutMs: 8000 });
    expect(done.durationMs).toBeGreaterThanOrEqual(100);
    expect(done.durationMs).toBeLessThan(300);
    expect(done.startedAt!.getTime()).toBeGreaterThan(retrying.startedAt!.getTime());
  });
});
