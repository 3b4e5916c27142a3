/**
 * Write coalescing (src/store/write-batcher.ts): claims of one round go out in one round trip,
 * each keeping its own precondition, so a lost race loses that write only.
 */
import { describe, expect, it } from 'vitest';
import { LeaseProtocol } from '../src/lease/protocol.js';
import { TaskStore } from '../src/store/task-store.js';
import { CLAIMABLE_STATUSES } from '../src/task-document.js';
import { useFirestore } from './fixture.js';
import { KEEP_A_DAY, jobTask, makeManager, TEST_COLLECTION } from './support.js';

const db = useFirestore();

async function setup(n: number) {
  const m = makeManager(db);
  await m.createMany(jobTask, Array.from({ length: n }, (_, i) => ({ n: i + 1 })));
  const store = new TaskStore(db, TEST_COLLECTION, m.env);
  const { tasks } = await store.findClaimable('job', CLAIMABLE_STATUSES, new Date(), 100);
  return { store, tasks, protocol: new LeaseProtocol(store, 'worker-a', KEEP_A_DAY, Date.now) };
}

describe('write batching', () => {
  it('sends the claims of one round in a single flush', async () => {
    const { store, tasks, protocol } = await setup(20);
    const before = { ...store.batcher.stats };
    const leases = await Promise.all(tasks.map((t) => protocol.claim([t], { leaseMs: 60_000, mode: 'run' })));
    expect(leases.every((l) => l !== null)).toBe(true);
    expect(store.batcher.stats.flushes - before.flushes).toBe(1);
    expect(store.batcher.stats.writes - before.writes).toBe(20);
    const raw = await db.collection(TEST_COLLECTION).doc(tasks[7]!.docId).get();
    expect(raw.get('lease.token')).toBe(leases[7]!.token);
  });

  it('loses only the writes whose precondition failed; the others land', async () => {
    const { store, tasks, protocol } = await setup(10);
    // Another worker claims three of them first: our stale versions lose those three only.
    const rival = new LeaseProtocol(new TaskStore(db, TEST_COLLECTION, store.env), 'worker-b', KEEP_A_DAY, Date.now);
    const taken = await Promise.all(tasks.slice(0, 3).map((t) => rival.claim([t], { leaseMs: 60_000, mode: 'run' })));
    expect(taken.every((l) => l !== null)).toBe(true);
    const leases = await Promise.all(tasks.map((t) => protocol.claim([t], { leaseMs: 60_000, mode: 'run' })));
    expect(leases.map((l) => l !== null)).toEqual([false, false, false, true, true, true, true, true, true, true]);
    for (const [i, t] of tasks.entries()) {
      const raw = await db.collection(TEST_COLLECTION).doc(t.docId).get();
      expect(raw.get('lease.workerId')).toBe(i < 3 ? 'worker-b' : 'worker-a');
    }
  });

  it('with batching off, every write is its own round trip', async () => {
    const m = makeManager(db);
    await m.createMany(jobTask, Array.from({ length: 5 }, (_, i) => ({ n: i + 1 })));
    const store = new TaskStore(db, TEST_COLLECTION, m.env, 20_000, { windowMs: 0, maxWrites: 1 });
    const { tasks } = await store.findClaimable('job', CLAIMABLE_STATUSES, new Date(), 100);
    const protocol = new LeaseProtocol(store, 'worker-a', KEEP_A_DAY, Date.now);
    const leases = await Promise.all(tasks.map((t) => protocol.claim([t], { leaseMs: 60_000, mode: 'run' })));
    expect(leases.every((l) => l !== null)).toBe(true);
    expect(store.batcher.stats.flushes).toBe(0);
  });
});

describe('grouped commits', () => {
  it('sends atomic task + lock pairs of one turn in one commit; a refused pair costs that pair only', async () => {
    const { store, tasks } = await setup(6);
    // One task changes after we read it: its pair's precondition fails, and with it the group.
    const stale = tasks[2]!;
    await db.collection(TEST_COLLECTION).doc(stale.docId).update({ touched: true });
    const before = { ...store.commits.stats };
    const results = await Promise.all(
      tasks.map((t, i) =>
        store.commitConditional([
          { target: 'task', docId: t.docId, fields: { claimedBy: 'x' }, precondition: t.updateTime },
          { target: 'lock', docId: `lock-${store.env}-${i}`, fields: { env: store.env, holder: null }, precondition: 'absent' },
        ]),
      ),
    );
    expect(store.commits.stats.groups - before.groups).toBe(1);
    expect(results.map((r) => Array.isArray(r))).toEqual([true, true, false, true, true, true]);
    for (const [i, t] of tasks.entries()) {
      const raw = await db.collection(TEST_COLLECTION).doc(t.docId).get();
      expect(raw.get('claimedBy')).toBe(i === 2 ? undefined : 'x');
      expect((await db.collection(`${TEST_COLLECTION}_keys`).doc(`lock-${store.env}-${i}`).get()).exists).toBe(i !== 2);
    }
  });

  it('never puts one document twice in a commit', async () => {
    const { store, tasks } = await setup(1);
    const t = tasks[0]!;
    const lock = `lock-${store.env}-same`;
    const [first, second] = await Promise.all([
      store.commitConditional([
        { target: 'task', docId: t.docId, fields: { a: 1 }, precondition: t.updateTime },
        { target: 'lock', docId: lock, fields: { env: store.env }, precondition: 'absent' },
      ]),
      store.commitConditional([
        { target: 'task', docId: t.docId, fields: { b: 1 }, precondition: t.updateTime },
        { target: 'lock', docId: lock, fields: { env: store.env }, precondition: 'absent' },
      ]),
    ]);
    // Two commits on the same version: exactly one wins, neither fails with INVALID_ARGUMENT.
    expect([Array.isArray(first), Array.isArray(second)].sort()).toEqual([false, true]);
  });
});
