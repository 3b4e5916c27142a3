import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager, readLedger, startWorkerProcess } from './support.js';

const db = useFirestore();
describe('several worker processes', () => {
  it('run every task exactly once between them', async () => {
    const producer = makeManager(db);
    const ledger = `ledger-${producer.env}`;
    // More work than one process's 2 slots drain quickly: the listener's holder, saturated,
    // hands the role on, and the others join in.
    await Promise.all([1, 2, 3].map(() => startWorkerProcess(producer.env, ledger, { CONCURRENCY: '2' })));
    await producer.createMany(jobTask, Array.from({ length: 90 }, (_, n) => ({ n, sleepMs: 50 })));
    await waitFor(async () => (await producer.countPending(jobTask)) === 0 && (await producer.list({ limit: 100, status: 'succeeded' })).tasks.length === 90, {
      timeoutMs: 40_000,
      message: '90 tasks succeeded',
    });
    const entries = await readLedger(db, ledger);
    const perTask = new Map<string, number>();
    for (const e of entries) perTask.set(e.taskId, (perTask.get(e.taskId) ?? 0) + 1);
    expect(perTask.size).toBe(90);
    expect([...perTask.values()].every((n) => n === 1)).toBe(true);
    expect(new Set(entries.map((e) => e.pid)).size).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('re-run a task whose worker was killed only after its lease expired, as attempt 2', async () => {
    const producer = makeManager(db);
    const ledger = `ledger-${producer.env}`;
    const leaseMs = 1500;
    // The killed process held the listener role too: its successor takes the role (and with it
    // the queue listener that reports the expired lease) once the role's lease runs out.
    const settings = { LEASE_MS: String(leaseMs), LISTENER_ROLE_MS: '2000' };
    const doomed = await startWorkerProcess(producer.env, ledger, settings);
    await producer.create(jobTask, { n: 1, sleepMs: 1000 });
    await waitFor(async () => (await readLedger(db, ledger)).length === 1, { message: 'first attempt started' });
    doomed.kill('SIGKILL');
    await once(doomed, 'exit');
    await startWorkerProcess(producer.env, ledger, settings);
    const task = await waitFor(async () => {
      const t = await producer.get('job-1');
      return t?.status === 'succeeded' ? t : undefined;
    }, { timeoutMs: 15_000 });
    expect(task.attempts).toBe(2);
    expect(task.errors.map((e) => e.code)).toEqual(['LEASE_EXPIRED']);
    const [first, second] = (await readLedger(db, ledger)).sort((a, b) => a.start - b.start);
    expect(first!.end).toBeUndefined(); // killed mid-run
    expect(second!.attempt).toBe(2);
    expect(second!.start - first!.start).toBeGreaterThanOrEqual(leaseMs - 100); // not while the lease was live
  }, 30_000);

  it('hand a running task back on SIGTERM so it is not lost or counted', async () => {
    const producer = makeManager(db);
    const ledger = `ledger-${producer.env}`;
    const worker = await startWorkerProcess(producer.env, ledger, { GRACE_MS: '100' });
    await producer.create(jobTask, { n: 1, sleepMs: 60_000 });
    await waitFor(async () => (await producer.get('job-1'))?.status === 'running');
    await waitFor(async () => (await readLedger(db, ledger)).length === 1, { message: 'the handler started' });
    worker.kill('SIGTERM');
    const [code] = (await once(worker, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(await producer.get('job-1')).toMatchObject({ status: 'pending', attempts: 0, lease: null });
    const [entry] = await readLedger(db, ledger);
    expect(entry).toMatchObject({ aborted: true });
  }, 30_000);
});
