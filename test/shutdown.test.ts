import { describe, expect, it } from 'vitest';
import { useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager, sleep, useFaultProxies } from './support.js';

const db = useFirestore();
const proxied = useFaultProxies();

describe('stop()', () => {
  it('waits for running handlers that finish within graceMs', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 });
    let started = false;
    let finished = false;
    m.handle(jobTask, async () => {
      started = true;
      await sleep(400);
      finished = true;
      return 'done';
    });
    m.start();
    // The handler's start, not the stored status: a claim written but not yet answered shows
    // 'running' before the handler starts, and a stop() then hands it back unrun (test below).
    await waitFor(() => started);
    const t0 = Date.now();
    await m.stop({ graceMs: 5000 });
    expect(finished).toBe(true);
    expect(Date.now() - t0).toBeLessThan(4000);
    expect((await m.get('job-1'))!.status).toBe('succeeded');
  });

  it('aborts handlers still running after graceMs and releases their leases for another worker at once', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 });
    let reason: unknown;
    let started = false;
    m.handle(jobTask, (_t, ctx) => new Promise<void>((resolve) => {
      started = true;
      ctx.signal.addEventListener('abort', () => {
        reason = ctx.signal.reason;
        resolve();
      });
    })); // default leaseMs: 10 minutes
    m.start();
    await waitFor(() => started);
    await m.stop({ graceMs: 150 });
    expect((reason as { code?: string }).code).toBe('SHUTDOWN');
    const released = (await m.get('job-1'))!;
    expect(released).toMatchObject({ status: 'pending', lease: null, attempts: 0 });
    expect(released.waitUntil.getTime()).toBeLessThanOrEqual(Date.now());

    const next = makeManager(db, { env: m.env });
    const t0 = Date.now();
    let startedAfter = -1;
    next.handle(jobTask, () => {
      startedAfter = Date.now() - t0;
    });
    next.start();
    await waitFor(async () => (await next.get('job-1'))?.status === 'succeeded');
    expect(startedAfter).toBeGreaterThanOrEqual(0);
    expect(startedAfter).toBeLessThan(3000); // not after the 10-minute lease
    expect((await next.get('job-1'))!.attempts).toBe(1);
  });

  it('refuses the late result of an aborted handler that ignored its signal', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 });
    let started = false;
    m.handle(jobTask, async () => {
      started = true;
      await sleep(600); // ignores ctx.signal
      return 'too late';
    });
    m.start();
    await waitFor(() => started);
    await m.stop({ graceMs: 50 });
    await sleep(800);
    expect(await m.get('job-1')).toMatchObject({ status: 'pending', result: null });
  });

  it('hands back unrun a task whose claim was applied but not yet answered when stop() came', async () => {
    // The claim's write reaches the store, its answer is on its way back (400 ms each way through
    // the proxy), and stop() comes in between: the handler must not start after stop(), and the
    // task must be pending again at once, no attempt used, not left leased for leaseMs.
    const { proxy, firestore } = await proxied();
    const m = makeManager(firestore, { listen: false, pollIntervalMs: 100 });
    const observer = makeManager(db, { env: m.env });
    await observer.create(jobTask, { n: 1 });
    let runs = 0;
    m.handle(jobTask, () => {
      runs++;
    }); // default leaseMs: 10 minutes
    proxy.latency(400);
    m.start();
    await waitFor(async () => (await observer.get('job-1'))?.status === 'running', { timeoutMs: 15_000, intervalMs: 20 });
    const t0 = Date.now();
    await m.stop({ graceMs: 5000 });
    expect(Date.now() - t0).toBeLessThan(4000); // the loop ended with the round; nothing ran to wait for
    expect(runs).toBe(0);
    const back = (await observer.get('job-1'))!;
    expect(back).toMatchObject({ status: 'pending', lease: null, attempts: 0 });
    expect(back.waitUntil.getTime()).toBeLessThanOrEqual(Date.now());
    proxy.latency(0);
  }, 30_000);

  it('stops claiming: tasks created after stop() stay pending', async () => {
    const m = makeManager(db);
    let runs = 0;
    m.handle(jobTask, () => {
      runs++;
    });
    m.start();
    await m.stop();
    await m.create(jobTask, { n: 1 });
    await sleep(400);
    expect(runs).toBe(0);
    expect((await m.get('job-1'))!.status).toBe('pending');
  });

  it('resolves at once when nothing runs, also when never started or called twice', async () => {
    const m = makeManager(db);
    m.handle(jobTask, () => undefined);
    await m.stop();
    m.start();
    const t0 = Date.now();
    await Promise.all([m.stop(), m.stop()]);
    expect(Date.now() - t0).toBeLessThan(1000);
    await expect(m.stop({ graceMs: -1 })).rejects.toThrow(/graceMs/);
  });

  it('can start again after stop', async () => {
    const m = makeManager(db);
    let runs = 0;
    m.handle(jobTask, () => {
      runs++;
    });
    m.start();
    await m.stop();
    m.start();
    await m.create(jobTask, { n: 1 });
    await waitFor(async () => (await m.get('job-1'))?.status === 'succeeded');
    expect(runs).toBe(1);
  });
});
