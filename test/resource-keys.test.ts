import { describe, expect, it } from 'vitest';
import { LeaseProtocol } from '../src/lease/protocol.js';
import { TaskStore } from '../src/store/task-store.js';
import { CLAIMABLE_STATUSES } from '../src/task-document.js';
import { useFirestore, waitFor } from './fixture.js';
import { KEEP_A_DAY, makeManager, sleep, startWorkerProcess, TEST_COLLECTION } from './support.js';
import { keyedTask } from './tasks.js';

const db = useFirestore();

/** Records handler starts and ends, and the most handlers of one key ever running at once. */
function tracker() {
  const active = new Map<string, number>();
  const order: string[] = [];
  let peakPerKey = 0;
  let peakOverall = 0;
  let overall = 0;
  return {
    order,
    get peakPerKey() { return peakPerKey; },
    get peakOverall() { return peakOverall; },
    async run(key: string, id: string, ms: number) {
      order.push(id);
      const now = (active.get(key) ?? 0) + 1;
      active.set(key, now);
      peakPerKey = Math.max(peakPerKey, now);
      peakOverall = Math.max(peakOverall, ++overall);
      await sleep(ms);
      active.set(key, active.get(key)! - 1);
      overall--;
    },
  };
}

const allSucceeded = (m: ReturnType<typeof makeManager>, count: number) =>
  waitFor(async () => (await m.list({ limit: 1000, kind: keyedTask, status: 'succeeded' })).tasks.length === count, {
    timeoutMs: 30_000,
    message: `${count} tasks succeeded`,
  });

describe('resource keys in one process', () => {
  it('never run two tasks of one key at once with concurrency 4, while keys run in parallel', async () => {
    const m = makeManager(db);
    const data = ['a', 'b', 'c'].flatMap((key) => Array.from({ length: 6 }, (_, i) => ({ n: key.charCodeAt(0) * 100 + i, key, sleepMs: 40 })));
    await m.createMany(keyedTask, data);
    const t = tracker();
    m.handle(keyedTask, (task) => t.run(task.data.key, task.id, task.data.sleepMs), { concurrency: 4 });
    m.start();
    await allSucceeded(m, 18);
    expect(t.peakPerKey).toBe(1);
    expect(t.peakOverall).toBeGreaterThanOrEqual(2);
  });

  it('start tasks of a key in waitUntil order, then creation order', async () => {
    const m = makeManager(db);
    await m.createMany(keyedTask, [1, 2, 3, 4, 5].map((n) => ({ n, key: 'k' })));
    await m.create(keyedTask, { n: 0, key: 'k' }, { waitUntil: new Date(Date.now() - 60_000) });
    const t = tracker();
    m.handle(keyedTask, (task) => t.run('k', task.id, 5), { concurrency: 4 });
    m.start();
    await allSucceeded(m, 6);
    expect(t.order).toEqual(['keyed-0', 'keyed-1', 'keyed-2', 'keyed-3', 'keyed-4', 'keyed-5']);
  });

  it('listByResourceKey lists a key in queue order', async () => {
    const m = makeManager(db);
    await m.createMany(keyedTask, [3, 1, 2].map((n) => ({ n, key: 'x' })));
    await m.create(keyedTask, { n: 9, key: 'y' });
    await m.create(keyedTask, { n: 0, key: 'x' }, { waitUntil: new Date(Date.now() - 1000) });
    expect((await m.listByResourceKey(keyedTask, 'x')).map((t) => t.id)).toEqual(['keyed-0', 'keyed-3', 'keyed-1', 'keyed-2']);
    await expect(m.listByResourceKey(keyedTask, '')).rejects.toThrow(/resourceKey/);
  });

  it('does not let a busy key hold up other keys, even behind a page of its own tasks', async () => {
    const m = makeManager(db);
    await m.create(keyedTask, { n: 0, key: 'busy', sleepMs: 4000 });
    await m.createMany(keyedTask, Array.from({ length: 30 }, (_, i) => ({ n: i + 1, key: 'busy' })));
    await sleep(5);
    await m.createMany(keyedTask, [100, 101].map((n) => ({ n, key: 'free' })));
    const started = new Map<string, number>();
    const t0 = Date.now();
    m.handle(keyedTask, async (task) => {
      started.set(task.id, Date.now() - t0);
      await sleep(task.data.sleepMs);
    }, { concurrency: 2 });
    m.start();
    await waitFor(() => started.has('keyed-101'), { timeoutMs: 3000, message: 'the free key ran while the busy key was held' });
    expect(started.get('keyed-0')).toBeLessThan(1000);
    expect(started.get('keyed-101')!).toBeLessThan(1500); // not after the 4 s task on the busy key
    expect(started.has('keyed-1')).toBe(false);
  });
});

describe('resource-key locks', () => {
  async function setup() {
    const m = makeManager(db);
    await m.createMany(keyedTask, [{ n: 1, key: 'k' }, { n: 2, key: 'k' }]);
    const store = new TaskStore(db, TEST_COLLECTION, m.env);
    const claimFirst = async (protocol: LeaseProtocol, leaseMs: number) => {
      const { tasks } = await store.findClaimable('keyed', CLAIMABLE_STATUSES, new Date(), 10);
      const due = tasks.filter((t) => t.task.waitUntil.getTime() <= Date.now());
      const lock = (await store.locks.readLocks('keyed', ['k'])).get('k')!;
      return protocol.claim([due[0]!], { leaseMs, mode: 'run', lock: { ...lock, kind: 'keyed', resourceKey: 'k' } });
    };
    return { m, store, claimFirst, a: new LeaseProtocol(store, 'worker-a', KEEP_A_DAY, Date.now), b: new LeaseProtocol(store, 'worker-b', KEEP_A_DAY, Date.now) };
  }

  it('free the key of a dead worker once its lease expires', async () => {
    const { m, claimFirst, a } = await setup();
    expect(await claimFirst(a, 400)).not.toBeNull(); // worker-a dies holding keyed-1 and the key
    const t0 = Date.now();
    const ran: string[] = [];
    m.handle(keyedTask, (task) => {
      ran.push(task.id);
    });
    m.start();
    await allSucceeded(m, 2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    // A recovered task re-enters its key's queue at its lease expiry, like a retry at its new due time.
    expect(ran).toEqual(['keyed-2', 'keyed-1']);
    expect((await m.get('keyed-1'))!.errors[0]!.code).toBe('LEASE_EXPIRED');
  });

  it('refuse a second claim on a held key and fence a stale holder out of the lock', async () => {
    const { store, claimFirst, a, b } = await setup();
    const first = await claimFirst(a, 200);
    expect(first).not.toBeNull();
    first!.deadline = Number.POSITIVE_INFINITY; // frozen past its local deadline: only the fence stops it
    // Worker B read the lock before A's claim: its claim with that stale version fails as a whole.
    const { tasks } = await store.findClaimable('keyed', CLAIMABLE_STATUSES, new Date(), 10);
    const second = tasks.find((t) => t.task.id === 'keyed-2')!;
    const staleLock = { docId: first!.lock!.docId, lock: null, updateTime: null };
    expect(await b.claim([second], { leaseMs: 60_000, mode: 'run', lock: { ...staleLock, kind: 'keyed', resourceKey: 'k' } })).toBeNull();
    await sleep(250);
    const taken = await claimFirst(b, 60_000);
    expect(taken).not.toBeNull();
    await a.releaseLock(first!); // stale: must not free B's lock
    const lock = (await store.locks.readLocks('keyed', ['k'])).get('k')!;
    expect(lock.lock!.holder!.workerId).toBe('worker-b');
    await expect(a.renew(first!, 60_000)).rejects.toThrow(/lock was taken over|taken over/);
  });
});

describe('resource keys across processes', () => {
  it('never run two tasks of one key at once in 3 worker processes', async () => {
    const m = makeManager(db);
    const ledger = `ledger-${m.env}`;
    // 8 keys, 2 slots per worker: no single worker can hold every key; the listener's holder,
    // overflowing, hands the role on, so the others take part.
    await Promise.all([1, 2, 3].map(() => startWorkerProcess(m.env, ledger, { KIND: 'keyed', CONCURRENCY: '2' })));
    await m.createMany(keyedTask, Array.from({ length: 40 }, (_, i) => ({ n: i, key: `acct-${i % 8}`, sleepMs: 100 })));
    await allSucceeded(m, 40);
    const entries = (await db.collection(ledger).get()).docs.map((d) => d.data() as { key: string; pid: number; start: number; end: number; taskId: string });
    expect(new Set(entries.map((e) => e.taskId)).size).toBe(40);
    expect(entries).toHaveLength(40);
    expect(new Set(entries.map((e) => e.pid)).size).toBeGreaterThanOrEqual(2);
    for (const key of Array.from({ length: 8 }, (_, i) => `acct-${i}`)) {
      const runs = entries.filter((e) => e.key === key).sort((x, y) => x.start - y.start);
      for (let i = 1; i < runs.length; i++) expect(runs[i]!.start, `${key} overlap`).toBeGreaterThanOrEqual(runs[i - 1]!.end);
    }
  }, 60_000);
});
