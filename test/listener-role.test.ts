import { describe, expect, it } from 'vitest';
import type { OnceTaskManager } from '../src/index.js';
import { useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager, sleep, useFaultProxies } from './support.js';

const db = useFirestore();
const proxied = useFaultProxies();

/** Three listening workers of one kind, and a producer in the same environment. */
function workers(listenerRoleMs?: number): { all: OnceTaskManager[]; producer: OnceTaskManager; ran: Map<OnceTaskManager, number> } {
  const first = makeManager(db, { pollIntervalMs: 60_000, ...(listenerRoleMs === undefined ? {} : { listenerRoleMs }) });
  const all = [first, ...[1, 2].map(() => makeManager(db, { env: first.env, pollIntervalMs: 60_000, ...(listenerRoleMs === undefined ? {} : { listenerRoleMs }) }))];
  const ran = new Map<OnceTaskManager, number>();
  for (const m of all) {
    ran.set(m, 0);
    m.handle(jobTask, () => void ran.set(m, ran.get(m)! + 1), { concurrency: 4 });
    m.start();
  }
  return { all, producer: makeManager(db, { env: first.env }), ran };
}

const total = (ran: Map<OnceTaskManager, number>): number => [...ran.values()].reduce((s, n) => s + n, 0);

async function trickle(producer: OnceTaskManager, count: number): Promise<void> {
  for (let n = 0; n < count; n++) {
    await producer.create(jobTask, { n });
    await sleep(30);
  }
}

describe('the listener role', () => {
  it('lets one of several idle processes listen: a trickle costs the listener reads of one process, not of each', async () => {
    const measure = async (listenerRoleMs?: number): Promise<{ reads: number; perProcess: number[] }> => {
      const { all, producer, ran } = workers(listenerRoleMs);
      await sleep(1500); // first looks done, the role taken
      const before = all.map((m) => m.stats().listenerReads);
      await trickle(producer, 30);
      await waitFor(() => total(ran) === 30 || undefined, { timeoutMs: 10_000, message: '30 tasks ran' });
      await sleep(300);
      const perProcess = all.map((m, i) => m.stats().listenerReads - before[i]!);
      await Promise.all(all.map((m) => m.stop()));
      return { reads: perProcess.reduce((s, n) => s + n, 0), perProcess };
    };
    const shared = await measure();
    const every = await measure(0);
    // Each new task is read as it enters the head, and again when claimed if the queue is
    // otherwise empty: up to 2 per task per listening process.
    expect(shared.reads).toBeLessThanOrEqual(2 * 30 + 6);
    expect(shared.perProcess.filter((n) => n > 6)).toHaveLength(1); // one listens, the others read the role now and then
    expect(every.perProcess.filter((n) => n >= 15)).toHaveLength(3); // every process reads the heads
    expect(shared.reads).toBeLessThan(every.reads / 2);
  });

  it('is handed to another process when its holder stops: new work still starts within moments', async () => {
    const { all, producer, ran } = workers();
    await sleep(1500);
    await producer.create(jobTask, { n: 0 });
    await waitFor(() => total(ran) === 1 || undefined, { message: 'the first task ran' });
    const holder = [...ran].find(([, n]) => n === 1)![0];
    await holder.stop();
    const createdAt = Date.now();
    await producer.create(jobTask, { n: 1 });
    await waitFor(() => total(ran) === 2 || undefined, { timeoutMs: 10_000, message: 'the second task ran' });
    // Not after the role's 30 s lease: the stopping holder gave the role up.
    expect(Date.now() - createdAt).toBeLessThan(3000);
    expect(ran.get(holder)).toBe(1);
    expect(all.filter((m) => m !== holder).some((m) => ran.get(m) === 1)).toBe(true);
  });

  it('is given up by a holder with more due work than free slots, so idle processes help with a backlog', async () => {
    const first = makeManager(db, { pollIntervalMs: 60_000 });
    const all = [first, makeManager(db, { env: first.env, pollIntervalMs: 60_000 })];
    const ran = new Map(all.map((m) => [m, 0]));
    for (const m of all) {
      m.handle(jobTask, async () => {
        ran.set(m, ran.get(m)! + 1);
        await sleep(50);
      }, { concurrency: 2 });
      m.start();
    }
    await sleep(1500);
    await makeManager(db, { env: first.env }).createMany(jobTask, Array.from({ length: 60 }, (_, n) => ({ n })));
    await waitFor(() => total(ran) === 60 || undefined, { timeoutMs: 15_000, message: '60 tasks ran' });
    for (const m of all) expect(ran.get(m)).toBeGreaterThanOrEqual(5);
  });

  it('is taken over when its holder is partitioned away past the role lease; healed, the old holder stops listening', async () => {
    const { proxy, firestore } = await proxied();
    const options = { pollIntervalMs: 60_000, listenerRoleMs: 1500, maxClockSkewMs: 100 };
    const ran = { a: 0, b: 0 };
    const a = makeManager(firestore, { ...options, callTimeoutMs: 3000 }); // behind the proxy
    a.handle(jobTask, () => void ran.a++);
    a.start();
    await sleep(1000); // a has looked, and taken the role
    const b = makeManager(db, { ...options, env: a.env });
    b.handle(jobTask, () => void ran.b++);
    b.start();
    await sleep(1000);
    expect(b.stats().listenerReads).toBeLessThanOrEqual(5); // the role document and the two control documents only: b does not listen to the queue
    proxy.blackhole();
    await sleep(2500); // a's role lease (1.5 s + skew) runs out unrenewed; b takes the role over
    const producer = makeManager(db, { env: a.env });
    await producer.create(jobTask, { n: 1 });
    await waitFor(() => ran.b === 1 || undefined, { timeoutMs: 5000, message: 'b ran the task created during the partition' });
    proxy.heal();
    await sleep(5000); // a's renewal is refused: it has lost the role, and detaches its listener
    const aReads = a.stats().listenerReads;
    const since = Date.now();
    for (let n = 2; n <= 21; n++) await producer.create(jobTask, { n });
    await waitFor(() => ran.a + ran.b === 21 || undefined, { timeoutMs: 5000, message: 'all 21 ran' });
    await sleep(300);
    // Listening to the queue, a would read each of the 20 new heads. Watching the role, it reads
    // b's renewals only: one per 500 ms (a third of the 1.5 s role lease), and its first answer.
    const reads = a.stats().listenerReads - aReads;
    expect(reads).toBeLessThanOrEqual(Math.ceil((Date.now() - since) / 500) + 2);
    expect(reads).toBeLessThan(15);
  }, 30_000);

  it('is taken again when a stopped worker is started again', async () => {
    const m = makeManager(db, { pollIntervalMs: 60_000 });
    let ran = 0;
    m.handle(jobTask, () => void ran++);
    m.start();
    await sleep(1000);
    await m.stop();
    m.start();
    await sleep(1000);
    const before = m.stats().listenerReads;
    // (A create in this process wakes the worker directly; the listener reports it as well.)
    await makeManager(db, { env: m.env }).create(jobTask, { n: 1 });
    await waitFor(() => ran === 1 || undefined, { timeoutMs: 5000, message: 'the task ran' });
    await sleep(300);
    expect(m.stats().listenerReads).toBeGreaterThan(before); // it listens again
  });
});
