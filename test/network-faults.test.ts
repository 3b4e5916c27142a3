/**
 * Network faults through the fault proxy (scripts/fault-proxy.ts) between a worker and the
 * emulator: the hardening issue's failures 1 (partition) and 2 (lost acknowledgement).
 */
import { describe, expect, it } from 'vitest';
import { noRetry } from '../src/index.js';
import { LeaseProtocol } from '../src/lease/protocol.js';
import { isLockFree } from '../src/store/key-lock.js';
import { keyedTask } from './tasks.js';
import { TaskStore } from '../src/store/task-store.js';
import { QueueReader } from '../src/worker/queue-reader.js';
import { CLAIMABLE_STATUSES } from '../src/task-document.js';
import { useFirestore, waitFor } from './fixture.js';
import { KEEP_A_DAY, capturingLogger, jobTask, makeManager, sleep, TEST_COLLECTION, useFaultProxies } from './support.js';

const db = useFirestore();
/** A Firestore client whose traffic goes through a fresh fault proxy. */
const proxied = useFaultProxies();

describe('the proxy', () => {
  it('partitions, black-holes and heals a Firestore client', async () => {
    const { proxy, firestore } = await proxied();
    const ref = firestore.collection(TEST_COLLECTION).doc('proxy-probe');
    await ref.set({ n: 1 });
    proxy.blackhole();
    const hung = await Promise.race([ref.get().then(() => 'answered'), sleep(1500).then(() => 'hung')]);
    expect(hung).toBe('hung');
    proxy.heal();
    await waitFor(async () => (await ref.get()).exists, { timeoutMs: 20_000 });
    expect(proxy.stats.connections).toBeGreaterThan(0);
  }, 40_000);
});

describe('1. partition: the holder stops before anyone else starts', () => {
  it('a black-holed worker aborts its handler at its lease deadline, before another worker takes the task over', async () => {
    const { proxy, firestore } = await proxied();
    const logger = capturingLogger();
    const a = makeManager(firestore, { listen: false, logger });
    const b = makeManager(db, { env: a.env, listen: false });
    const events: { who: string; what: string; at: number }[] = [];
    const handler = (who: string) => async (_task: unknown, ctx: { signal: AbortSignal; attempt: number }) => {
      events.push({ who, what: 'start', at: Date.now() });
      ctx.signal.addEventListener('abort', () => events.push({ who, what: 'abort', at: Date.now() }), { once: true });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, who === 'a' ? 15_000 : 100);
        ctx.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
      });
    };
    a.handle(jobTask, handler('a'), { leaseMs: 3000, retry: noRetry() });
    b.handle(jobTask, handler('b'), { leaseMs: 3000 });
    await b.create(jobTask, { n: 1 });
    a.start();
    await waitFor(() => events.some((e) => e.who === 'a' && e.what === 'start'), { timeoutMs: 15_000 });
    const claimedAt = Date.now();
    proxy.blackhole(); // renewals neither succeed nor fail
    b.start();
    await waitFor(() => events.some((e) => e.who === 'b' && e.what === 'start'), { timeoutMs: 20_000 });
    const aborted = events.find((e) => e.who === 'a' && e.what === 'abort');
    const bStart = events.find((e) => e.who === 'b' && e.what === 'start')!;
    expect(aborted, 'worker A never aborted its handler').toBeDefined();
    expect(aborted!.at).toBeLessThan(bStart.at);
    expect(aborted!.at - claimedAt).toBeLessThan(3000);
    expect(logger.lines().some((l) => l.includes('lease renewal failed'))).toBe(true);
    proxy.heal();
    await a.stop({ graceMs: 0 });
  }, 40_000);
});

describe('2. lost acknowledgement: a re-sent write refused is still ours', () => {
  it('a claim whose answer was lost is held, not left running under a lease nobody holds', async () => {
    const { proxy, firestore } = await proxied();
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 });
    const direct = new TaskStore(db, TEST_COLLECTION, m.env);
    const [candidate] = (await direct.findClaimable('job', CLAIMABLE_STATUSES, new Date(), 10)).tasks;
    const store = new TaskStore(firestore, TEST_COLLECTION, m.env);
    await store.readDoc(candidate!.docId); // connect first, so the next answer is the claim's
    proxy.dropAnswers(1);
    const lease = await new LeaseProtocol(store, 'worker-a', KEEP_A_DAY, Date.now).claim([candidate!], { leaseMs: 60_000, mode: 'run' });
    expect(proxy.stats.answersDropped).toBe(1);
    expect(lease).not.toBeNull();
    const raw = (await db.collection(TEST_COLLECTION).doc(candidate!.docId).get()).data()!;
    expect(raw.lease.token).toBe(lease!.token);
  }, 40_000);

  it('create() reports created when its answer was lost', async () => {
    const { proxy, firestore } = await proxied();
    const m = makeManager(firestore);
    await m.get('warm-up'); // connect first
    proxy.dropAnswers(1);
    expect((await m.create(jobTask, { n: 7 })).created).toBe(true);
    expect(proxy.stats.answersDropped).toBe(1);
    expect(await m.get('job-7')).not.toBeNull();
  }, 40_000);

  it('createMany() counts exactly when answers to its writes were lost', async () => {
    const { proxy, firestore } = await proxied();
    const m = makeManager(firestore);
    // 40 of the 400 exist already (another producer's): exactly the other 360 are new.
    await makeManager(db, { env: m.env }).createMany(jobTask, Array.from({ length: 40 }, (_, n) => ({ n: n * 10 })));
    await m.get('warm-up'); // connect first
    proxy.dropAnswers(3, { after: 1 });
    const result = await m.createMany(jobTask, Array.from({ length: 400 }, (_, n) => ({ n })));
    expect(proxy.stats.answersDropped).toBeGreaterThan(0);
    expect(result.created).toBe(360);
    expect(await m.countPending(jobTask)).toBe(400);
  }, 60_000);

  it('a grouped commit of task + lock pairs whose answer was lost is recognised as applied, pair by pair', async () => {
    const { proxy, firestore } = await proxied();
    const m = makeManager(db);
    await m.createMany(jobTask, Array.from({ length: 5 }, (_, n) => ({ n })));
    const direct = new TaskStore(db, TEST_COLLECTION, m.env);
    const { tasks } = await direct.findClaimable('job', CLAIMABLE_STATUSES, new Date(), 10);
    const store = new TaskStore(firestore, TEST_COLLECTION, m.env);
    await store.readDoc(tasks[0]!.docId); // connect first, so the next answer is the commit's
    proxy.dropAnswers(1);
    const before = { ...store.commits.stats };
    const results = await Promise.all(
      tasks.map((t, i) =>
        store.commitConditional(
          [
            { target: 'task', docId: t.docId, fields: { pairToken: `p${i}` }, precondition: t.updateTime },
            { target: 'lock', docId: `lock-${m.env}-${i}`, fields: { env: m.env, holder: null }, precondition: 'absent' },
          ],
          { witness: (data) => data.pairToken === `p${i}` },
        ),
      ),
    );
    expect(store.commits.stats.groups - before.groups).toBe(1);
    expect(proxy.stats.answersDropped).toBe(1);
    expect(results.every((r) => Array.isArray(r))).toBe(true);
    for (const [i, t] of tasks.entries()) expect((await db.collection(TEST_COLLECTION).doc(t.docId).get()).get('pairToken')).toBe(`p${i}`);
  }, 40_000);

  it('cancel() returns 1 when the answer to its write was lost', async () => {
    const { proxy, firestore } = await proxied();
    const m = makeManager(firestore);
    await m.create(jobTask, { n: 8 }, { waitUntil: new Date(Date.now() + 3600_000) });
    proxy.dropAnswers(1, { after: 1 }); // cancel reads the task, then writes: lose the write's answer
    expect(await m.cancel('job-8')).toBe(1);
    expect(proxy.stats.answersDropped).toBe(1);
    expect((await m.get('job-8'))!.status).toBe('cancelling');
  }, 40_000);
});

/** The due keyed tasks, by task ID. */
const keyedById = async (store: TaskStore) => new Map((await store.findClaimable('keyed', CLAIMABLE_STATUSES, new Date(), 10)).tasks.map((t) => [t.task.id, t]));
/** Key `k`'s lock as `store` reads it, ready to claim with. */
const lockOfK = async (store: TaskStore) => ({ ...(await store.locks.readLocks('keyed', ['k'])).get('k')!, kind: 'keyed', resourceKey: 'k' });

describe('3. lost acknowledgement of a key release, then another worker takes the key', () => {
  // A worker that ends a keyed task releases the key's lock and remembers the released version,
  // so its next claim of that key needs no read. If the answer to the release is lost and another
  // worker claims the key before the first one reads back, the version it sees is the other
  // worker's claim: remembering that as "released" would let it claim the key a second time.
  for (const ending of ['release', 'outcome'] as const) {
    it(`a worker does not take a key another worker holds (answer to its ${ending === 'release' ? 'lock release' : 'outcome + release commit'} lost)`, async () => {
      const { proxy, firestore } = await proxied();
      const m = makeManager(db);
      await m.createMany(keyedTask, [1, 2, 3].map((n) => ({ n, key: 'k' })));
      const storeA = new TaskStore(firestore, TEST_COLLECTION, m.env);
      const storeB = new TaskStore(db, TEST_COLLECTION, m.env);
      const a = new LeaseProtocol(storeA, 'worker-a', KEEP_A_DAY, Date.now);
      const b = new LeaseProtocol(storeB, 'worker-b', KEEP_A_DAY, Date.now);
      const readerA = new QueueReader(storeA, a, 'keyed', capturingLogger(), Date.now);
      const byId = await keyedById(storeB);
      const leaseA = await a.claim([byId.get('keyed-1')!], { leaseMs: 60_000, mode: 'run', lock: await lockOfK(storeA) });
      expect(leaseA).not.toBeNull();

      proxy.dropAnswers(1, { thenPartition: true });
      // The outcome: keyed-1 failed and is due again at once, so B may take the task itself.
      const ended = ending === 'release' ? a.releaseLock(leaseA!) : a.fail(leaseA!, leaseA!.tasks[0]!, new Error('try again'), { retryAt: new Date() });
      await waitFor(() => proxy.stats.answersDropped === 1);
      // While A cannot reach Firestore, B finds the key free and takes it.
      const lockForB = await lockOfK(storeB);
      expect(lockForB.lock?.holder).toBeNull();
      const forB = ending === 'release' ? byId.get('keyed-2')! : (await keyedById(storeB)).get('keyed-1')!;
      const leaseB = await b.claim([forB], { leaseMs: 60_000, mode: 'run', lock: lockForB });
      expect(leaseB).not.toBeNull();
      proxy.heal();
      await ended;

      readerA.rememberReleasedLock(leaseA!, 'k');
      const lockForA = (await readerA.locksFor(['k'])).get('k')!;
      const again = isLockFree(lockForA.lock, Date.now())
        ? await a.claim([byId.get('keyed-3')!], { leaseMs: 60_000, mode: 'run', lock: { ...lockForA, kind: 'keyed', resourceKey: 'k' } })
        : null;
      expect(again).toBeNull();
      const stored = (await db.collection(`${TEST_COLLECTION}_keys`).doc(lockForB.docId).get()).data()!;
      expect(stored.holder.token).toBe(leaseB!.token);
    }, 60_000);
  }
});

describe('3b. lost acknowledgement of a key release, nobody else acting', () => {
  it('the outcome + release commit is recognised as applied, and the remembered version claims the key next without a read', async () => {
    const { proxy, firestore } = await proxied();
    const m = makeManager(db);
    await m.createMany(keyedTask, [1, 2].map((n) => ({ n, key: 'k' })));
    const store = new TaskStore(firestore, TEST_COLLECTION, m.env);
    const a = new LeaseProtocol(store, 'worker-a', KEEP_A_DAY, Date.now);
    const reader = new QueueReader(store, a, 'keyed', capturingLogger(), Date.now);
    const byId = await keyedById(store);
    const first = await a.claim([byId.get('keyed-1')!], { leaseMs: 60_000, mode: 'run', lock: await lockOfK(store) });
    proxy.dropAnswers(1);
    await a.succeed(first!, first!.tasks[0]!, null);
    expect(proxy.stats.answersDropped).toBe(1);
    expect(first!.lock!.released).toBe(true);
    expect((await m.get('keyed-1'))!.status).toBe('succeeded');

    reader.rememberReleasedLock(first!, 'k');
    const reads = store.ops.snapshot().reads;
    const remembered = (await reader.locksFor(['k'])).get('k')!;
    expect(store.ops.snapshot().reads).toBe(reads);
    const second = await a.claim([byId.get('keyed-2')!], { leaseMs: 60_000, mode: 'run', lock: { ...remembered, kind: 'keyed', resourceKey: 'k' } });
    expect(second).not.toBeNull();
  }, 60_000);
});
