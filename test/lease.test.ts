import { describe, expect, it } from 'vitest';
import { LeaseLostError, noRetry, fixedDelay } from '../src/index.js';
import { useFirestore, waitFor } from './fixture.js';
import { LeaseProtocol } from '../src/lease/protocol.js';
import { TaskStore } from '../src/store/task-store.js';
import { CLAIMABLE_STATUSES } from '../src/task-document.js';
import { jobTask, KEEP_A_DAY, leaseSetup, makeManager, sleep, TEST_COLLECTION } from './support.js';

const db = useFirestore();

const setup = (n = 1) => leaseSetup(db, n);

describe('claim', () => {
  it('gives a document to exactly one of two workers racing with the same snapshot', async () => {
    const { candidates, a, b, raw } = await setup();
    const [candidate] = await candidates();
    const [la, lb] = await Promise.all([a.claim([candidate!], { leaseMs: 60_000, mode: 'run' }), b.claim([candidate!], { leaseMs: 60_000, mode: 'run' })]);
    expect([la, lb].filter(Boolean)).toHaveLength(1);
    const doc = await raw();
    expect(doc.status).toBe('running');
    expect(doc.attempts).toBe(1);
    expect(doc.lease.workerId).toBe(la ? 'worker-a' : 'worker-b');
  });

  it('stamps a fresh token on every claim and moves waitUntil to the lease expiry', async () => {
    const { candidates, a, raw } = await setup();
    const first = await a.claim([(await candidates())[0]!], { leaseMs: 60_000, mode: 'run' });
    const token1 = (await raw()).lease.token;
    await a.release(first!, first!.tasks[0]!);
    const second = await a.claim([(await candidates())[0]!], { leaseMs: 60_000, mode: 'run' });
    const doc = await raw();
    expect(doc.lease.token).not.toBe(token1);
    expect(doc.waitUntil.toMillis()).toBe(second!.expiresAt.getTime());
    expect(doc.attempts).toBe(1); // the released attempt was not counted
  });

  it('does not offer a task under a live lease as due', async () => {
    const { candidates, a } = await setup();
    await a.claim([(await candidates())[0]!], { leaseMs: 60_000, mode: 'run' });
    expect(await candidates()).toEqual([]);
  });
});

describe('fencing', () => {
  it('refuses every write of a worker whose expired lease was taken over', async () => {
    const { candidates, a, b, raw } = await setup();
    const stale = await a.claim([(await candidates())[0]!], { leaseMs: 150, mode: 'run' });
    // A holder frozen past its local deadline (a paused VM, a stopped process) that wakes up and
    // writes: only the server-side fence stops it.
    stale!.deadline = Number.POSITIVE_INFINITY;
    await sleep(200);
    const [expired] = await candidates();
    expect(expired!.task.status).toBe('running');
    const fresh = await b.claim([expired!], { leaseMs: 60_000, mode: 'run' });
    expect(fresh).not.toBeNull();
    await expect(a.succeed(stale!, stale!.tasks[0]!, 'stale result')).rejects.toBeInstanceOf(LeaseLostError);
    await expect(a.renew(stale!, 60_000)).rejects.toThrow(/taken over \(worker worker-b holds attempt 2\)/);
    await expect(a.fail(stale!, stale!.tasks[0]!, new Error('late'), { final: true })).rejects.toBeInstanceOf(LeaseLostError);
    await expect(a.release(stale!, stale!.tasks[0]!)).rejects.toBeInstanceOf(LeaseLostError);
    let doc = await raw();
    expect(doc).toMatchObject({ status: 'running', attempts: 2, result: null });
    expect(doc.lease.workerId).toBe('worker-b');
    expect(doc.errors[0].code).toBe('LEASE_EXPIRED');
    await b.succeed(fresh!, fresh!.tasks[0]!, 'fresh result');
    doc = await raw();
    expect(doc).toMatchObject({ status: 'succeeded', result: 'fresh result', lease: null });
  });

  it('lets the lease holder write after someone changed an unrelated field', async () => {
    const { store, candidates, a, raw } = await setup();
    const lease = await a.claim([(await candidates())[0]!], { leaseMs: 60_000, mode: 'run' });
    await db.collection(TEST_COLLECTION).doc(store.docId('job-1')).update({ note: 'touched by an admin' });
    await a.succeed(lease!, lease!.tasks[0]!, 42);
    expect(await raw()).toMatchObject({ status: 'succeeded', result: 42, note: 'touched by an admin' });
  });

  it('refuses the outcome of a deleted task', async () => {
    const { m, candidates, a } = await setup();
    const lease = await a.claim([(await candidates())[0]!], { leaseMs: 60_000, mode: 'run' });
    await m.delete('job-1');
    await expect(a.succeed(lease!, lease!.tasks[0]!, 1)).rejects.toThrow(/deleted/);
    expect(await m.get('job-1')).toBeNull();
  });

  it('renewal extends the lease and the due time', async () => {
    const { candidates, a, raw } = await setup();
    const lease = await a.claim([(await candidates())[0]!], { leaseMs: 1000, mode: 'run' });
    const before = (await raw()).waitUntil.toMillis();
    await a.renew(lease!, 60_000);
    const doc = await raw();
    expect(doc.waitUntil.toMillis()).toBeGreaterThan(before + 50_000);
    expect(doc.lease.expiresAt.toMillis()).toBe(doc.waitUntil.toMillis());
  });
});

describe('leases in the worker', () => {
  it('a listening idle worker takes over the lease of a task another process claimed (and died with) while it listened, without a sweep', async () => {
    const m = makeManager(db, { sweepIntervalMs: 600_000 });
    const store = new TaskStore(db, TEST_COLLECTION, m.env);
    const a = new LeaseProtocol(store, 'worker-a', KEEP_A_DAY, Date.now);
    const attempts: number[] = [];
    m.handle(jobTask, (_t, ctx) => void attempts.push(ctx.attempt));
    m.start();
    await sleep(500); // first look done, listener attached
    // Due in a minute: the listener shows it as the head and sets a timer for then. "worker-a"
    // claims it at once (with a 300 ms lease) and dies; the task leaves the listened queue.
    await m.create(jobTask, { n: 1 }, { waitUntil: new Date(Date.now() + 60_000) });
    const [candidate] = (await store.findClaimable('job', CLAIMABLE_STATUSES, new Date(Date.now() + 61_000), 10)).tasks;
    expect(await a.claim([candidate!], { leaseMs: 300, mode: 'run' })).not.toBeNull();
    // Not the head timer (a minute) nor the sweep (ten): the lease lookup after the claim.
    await waitFor(() => (attempts.length > 0 ? true : undefined), { timeoutMs: 8000, message: 'attempt 2 ran' });
    expect(attempts).toEqual([2]);
  });

  it('renews the lease so a handler that outlives leaseMs runs once', async () => {
    const first = makeManager(db);
    const second = makeManager(db, { env: first.env });
    await first.create(jobTask, { n: 1 });
    let runs = 0;
    for (const m of [first, second]) {
      m.handle(jobTask, async () => {
        runs++;
        await sleep(2500);
      }, { leaseMs: 1000 });
      m.start();
    }
    const t = await waitFor(async () => {
      const task = await first.get('job-1');
      return task?.status === 'succeeded' ? task : undefined;
    });
    expect(runs).toBe(1);
    expect(t.attempts).toBe(1);
    expect(t.errorCount).toBe(0);
  });

  it('claims a task again after its worker died, as attempt + 1', async () => {
    const { m, candidates, a } = await setup();
    await a.claim([(await candidates())[0]!], { leaseMs: 300, mode: 'run' }); // "worker-a" dies holding the lease
    const attempts: number[] = [];
    m.handle(jobTask, (_t, ctx) => {
      attempts.push(ctx.attempt);
      return 'recovered';
    });
    m.start();
    const t = await waitFor(async () => {
      const task = await m.get('job-1');
      return task?.status === 'succeeded' ? task : undefined;
    });
    expect(attempts).toEqual([2]);
    expect(t.errors.map((e) => e.code)).toEqual(['LEASE_EXPIRED']);
  });

  it('fails a task whose lease expired when the policy allows no more attempts', async () => {
    const { m, candidates, a } = await setup();
    await a.claim([(await candidates())[0]!], { leaseMs: 100, mode: 'run' });
    let ran = false;
    m.handle(jobTask, () => {
      ran = true;
    }, { retry: noRetry() });
    m.start();
    const t = await waitFor(async () => {
      const task = await m.get('job-1');
      return task?.status === 'failed' ? task : undefined;
    });
    expect(ran).toBe(false);
    expect(t.errors[0]!.code).toBe('LEASE_EXPIRED');
  });

  it('aborts the handler signal when the lease is lost', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 });
    let reason: unknown;
    m.handle(jobTask, (_t, ctx) => new Promise<void>((resolve) => {
      ctx.signal.addEventListener('abort', () => {
        reason = ctx.signal.reason;
        resolve();
      });
    }), { leaseMs: 300, retry: fixedDelay({ maxAttempts: 1, delayMs: 0 }) });
    m.start();
    await waitFor(async () => (await m.get('job-1'))?.status === 'running');
    await m.delete('job-1');
    await waitFor(() => reason !== undefined, { timeoutMs: 3000 });
    expect((reason as { code?: string }).code).toBe('LEASE_LOST');
    expect(await m.get('job-1')).toBeNull(); // the late outcome did not resurrect it
  });
});
