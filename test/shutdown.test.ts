import { describe, expect, it } from 'vitest';
import { useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager, sleep } from './support.js';

const db = useFirestore();

describe('stop()', () => {
  it('waits for running handlers that finish within graceMs', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 });
    let finished = false;
    m.handle(jobTask, async () => {
      await sleep(400);
      finished = true;
      return 'done';
    });
    m.start();
    await waitFor(async () => (await m.get('job-1'))?.status === 'running');
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
    m.handle(jobTask, (_t, ctx) => new Promise<void>((resolve) => {
      ctx.signal.addEventListener('abort', () => {
        reason = ctx.signal.reason;
        resolve();
      });
    })); // default leaseMs: 10 minutes
    m.start();
    await waitFor(async () => (await m.get('job-1'))?.status === 'running');
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
    m.handle(jobTask, async () => {
      await sleep(600); // ignores ctx.signal
      return 'too late';
    });
    m.start();
    await waitFor(async () => (await m.get('job-1'))?.status === 'running');
    await m.stop({ graceMs: 50 });
    await sleep(800);
    expect(await m.get('job-1')).toMatchObject({ status: 'pending', result: null });
  });

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
