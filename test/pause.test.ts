import { describe, expect, it } from 'vitest';
import { useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager, readLedger, sleep, startWorkerProcess } from './support.js';
import { internalsOf } from '../src/testing/internals.js';
import { keyedTask } from './tasks.js';

const db = useFirestore();

describe('pause and resume', () => {
  it('stops every worker process of a kind within about a second, and resume starts them again', async () => {
    const m = makeManager(db);
    const ledger = `ledger-${m.env}`;
    const children = await Promise.all([1, 2].map(() => startWorkerProcess(m.env, ledger, { CONCURRENCY: '2' })));
    // Both processes are working before the pause: a backlog that keeps the listener's holder
    // saturated for longer than a second (its 2 slots; 2.4 s alone), so it hands the role on and
    // the other process joins in. (4 tasks of 300 ms clear by themselves in 0.6 s.)
    await m.createMany(jobTask, Array.from({ length: 8 }, (_, i) => ({ n: i, sleepMs: 600 })));
    await waitFor(async () => (await m.countByStatus(jobTask)).succeeded === 8, { timeoutMs: 15_000 });
    await m.pause({ kind: jobTask });
    const pausedAt = Date.now();
    expect(await m.paused()).toEqual([{ kind: 'job', since: expect.any(Date), until: null }]);
    await sleep(1000);
    await m.createMany(jobTask, Array.from({ length: 6 }, (_, i) => ({ n: 100 + i })));
    await sleep(2500);
    const during = (await readLedger(db, ledger)).filter((e) => e.start > pausedAt + 1000);
    expect(during).toEqual([]);
    expect((await m.countByStatus(jobTask)).pending).toBe(6);
    await m.resume({ kind: jobTask });
    await waitFor(async () => (await m.countByStatus(jobTask)).succeeded === 14, { timeoutMs: 15_000, message: 'all ran after resume' });
    const pids = new Set((await readLedger(db, ledger)).map((e) => e.pid));
    expect(pids).toEqual(new Set(children.map((c) => c.pid)));
    expect(await m.paused()).toEqual([]);
  });

  it("a pause of one kind does not make the workers of other kinds look at their queues", async () => {
    const m = makeManager(db, { listen: true });
    m.handle(jobTask, () => undefined);
    m.handle(keyedTask, () => undefined);
    m.start();
    const probe = (kind: string) => internalsOf(m).workers().find((w) => w.kind === kind)!;
    await waitFor(() => probe('keyed').ready && probe('keyed').rounds > 0 && !probe('keyed').busy, { timeoutMs: 10_000 });
    await sleep(300); // its first look done, now idle: the listener would wake it for work
    const before = probe('keyed').rounds;
    await m.pause({ kind: jobTask });
    await sleep(800); // this process's write, then its listener's snapshot
    await m.resume({ kind: jobTask });
    await sleep(800);
    // Each wake is a look (a query on the emulator, a scan): the keyed kind's pause never changed.
    expect(probe('keyed').rounds).toBe(before);
    await m.stop();
  });

  it('running tasks finish; a pause with `until` ends by itself then', async () => {
    const m = makeManager(db);
    const starts: { id: string; at: number }[] = [];
    m.handle(jobTask, async (task) => {
      starts.push({ id: task.id, at: Date.now() });
      await sleep(task.data.sleepMs);
    }, { concurrency: 2 });
    m.start();
    await m.create(jobTask, { n: 1, sleepMs: 1500 });
    await waitFor(() => starts.length === 1);
    const until = new Date(Date.now() + 2000);
    await m.pause({ until });
    await m.create(jobTask, { n: 2 });
    // The running one completes while paused.
    await waitFor(async () => (await m.get('job-1'))!.status === 'succeeded', { timeoutMs: 5000 });
    expect(starts.map((s) => s.id)).toEqual(['job-1']);
    await waitFor(() => starts.length === 2, { timeoutMs: 6000 });
    expect(starts[1]!.at).toBeGreaterThanOrEqual(until.getTime());
    expect(starts[1]!.at).toBeLessThan(until.getTime() + 1500);
  });

  it('a pause of every kind holds all kinds; resuming one kind leaves it paused by the pause of all; resume() lifts every pause', async () => {
    const m = makeManager(db);
    const ran: string[] = [];
    m.handle(jobTask, (task) => void ran.push(task.id));
    m.handle(keyedTask, (task) => void ran.push(task.id));
    await m.pause();
    await m.pause({ kind: 'keyed' });
    m.start();
    await m.create(jobTask, { n: 1 });
    await m.create(keyedTask, { n: 1, key: 'a' });
    await m.resume({ kind: keyedTask });
    await sleep(1000);
    expect(ran).toEqual([]);
    expect(await m.paused()).toEqual([{ kind: null, since: expect.any(Date), until: null }]);
    await m.resume();
    await waitFor(() => ran.length === 2);
    // drain() of a paused kind ends at once instead of waiting for tasks it may not run.
    await m.pause({ kind: jobTask });
    await m.create(jobTask, { n: 2 });
    await m.stop();
    const started = Date.now();
    const result = await m.drain({ maxMs: 10_000 });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result).toMatchObject({ ran: 0, emptied: true });
  });

  it('a worker started while its kind is paused claims nothing', async () => {
    const admin = makeManager(db);
    await admin.pause({ kind: jobTask });
    await admin.create(jobTask, { n: 1 });
    const worker = makeManager(db, { env: admin.env });
    const ran: string[] = [];
    worker.handle(jobTask, (task) => void ran.push(task.id));
    worker.start();
    await sleep(1500);
    expect(ran).toEqual([]);
    await admin.resume();
    await waitFor(() => ran.length === 1);
  });
});
