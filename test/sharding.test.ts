/**
 * The sharded queue (`shards: N`): tasks spread over shards, one key's tasks share a shard,
 * workers cover every shard, and `reshard()` moves tasks after N changed (or that predate shards).
 */
import { describe, expect, it } from 'vitest';
import { keyedTask } from './tasks.js';
import { useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager, TEST_COLLECTION } from './support.js';

const db = useFirestore();

async function rawDocs(env: string) {
  return (await db.collection(TEST_COLLECTION).where('env', '==', env).get()).docs;
}

describe('shards: 4', () => {
  it('spreads tasks over the shards, and one worker runs all of them', async () => {
    const m = makeManager(db, { shards: 4 });
    await m.createMany(jobTask, Array.from({ length: 80 }, (_, n) => ({ n })));
    const shards = (await rawDocs(m.env)).map((d) => d.get('shard') as number);
    expect(new Set(shards)).toEqual(new Set([0, 1, 2, 3]));
    const ran = new Set<number>();
    m.handle(jobTask, (task) => void ran.add(task.data.n), { concurrency: 8 });
    m.start();
    await waitFor(() => ran.size === 80, { timeoutMs: 20_000 });
    expect(await m.countPending(jobTask)).toBe(0);
  });

  it("puts one key's tasks in one shard; grouped claims and cancel by key find them", async () => {
    const m = makeManager(db, { shards: 4 });
    await m.createMany(keyedTask, Array.from({ length: 12 }, (_, n) => ({ n, key: `k${n % 3}` })));
    const byKey = new Map<string, Set<number>>();
    for (const d of await rawDocs(m.env)) {
      const key = d.get('resourceKey') as string;
      byKey.set(key, (byKey.get(key) ?? new Set()).add(d.get('shard') as number));
    }
    for (const shardsOfKey of byKey.values()) expect(shardsOfKey.size).toBe(1);
    expect(await m.cancelByResourceKey(keyedTask, 'k1')).toBe(4);
    const batches: number[] = [];
    m.handleGroup(keyedTask, (tasks) => void batches.push(tasks.length));
    m.start();
    await waitFor(async () => batches.reduce((a, b) => a + b, 0) === 8, { timeoutMs: 20_000 });
    expect(batches.some((n) => n > 1)).toBe(true); // a key's ready tasks came as one group
  });

  it('two processes (managers) on a sharded queue run each task once', async () => {
    const a = makeManager(db, { shards: 4 });
    const b = makeManager(db, { shards: 4, env: a.env });
    const runs = new Map<number, number>();
    const handler = (task: { data: { n: number } }) => void runs.set(task.data.n, (runs.get(task.data.n) ?? 0) + 1);
    a.handle(jobTask, handler, { concurrency: 4 });
    b.handle(jobTask, handler, { concurrency: 4 });
    a.start();
    b.start();
    await a.createMany(jobTask, Array.from({ length: 100 }, (_, n) => ({ n })));
    await waitFor(() => runs.size === 100, { timeoutMs: 20_000 });
    await waitFor(async () => (await a.countPending(jobTask)) === 0, { timeoutMs: 10_000 });
    expect([...runs.values()].every((c) => c === 1)).toBe(true);
  });
});

describe.each([8, 1])('shards: %i, four processes draining a backlog', (shards) => {
  it('settle on different lanes (shards, or ranges of document IDs): each reads about what it claims, and few claims are lost', async () => {
    const first = makeManager(db, { shards });
    const managers = [first, ...Array.from({ length: 3 }, () => makeManager(db, { shards, env: first.env }))];
    const count = 800;
    await first.createMany(jobTask, Array.from({ length: count }, (_, n) => ({ n })));
    const runs = new Map<number, number>();
    for (const m of managers) m.handle(jobTask, (task) => void runs.set(task.data.n, (runs.get(task.data.n) ?? 0) + 1), { concurrency: 8 });
    const before = managers.map((m) => m.stats());
    managers.forEach((m) => m.start());
    await waitFor(() => runs.size === count, { timeoutMs: 60_000 });
    const after = managers.map((m) => m.stats());
    const sum = (pick: (s: (typeof after)[number]) => number): number => after.reduce((t, s, i) => t + pick(s) - pick(before[i]!), 0);
    expect([...runs.values()].every((c) => c === 1)).toBe(true);
    // Every process reading the same head would read each task about four times over, and lose
    // most claims; spread over lanes, reads stay close to one per task.
    const readsPerTask = (sum((s) => s.reads) - sum((s) => s.listenerReads)) / count;
    const lostPerTask = sum((s) => s.refusedWrites) / count;
    // (Measured before lanes: 4.2–4.5 reads and 1.3–1.4 lost claims per task unsharded, 1.8–2.4
    // and 0.12–0.3 over 8 shards; with them 1.1–2.3 and 0.01–0.2. Small lanes make the end of
    // the backlog, when processes move often, a large share of this test.)
    expect(readsPerTask).toBeLessThan(shards === 1 ? 2.5 : 2);
    expect(lostPerTask).toBeLessThan(0.4);
  }, 90_000);
});

describe('reshard()', () => {
  it('moves open tasks into the shards of a new count, including tasks without a shard', async () => {
    const before = makeManager(db);
    await before.createMany(jobTask, Array.from({ length: 30 }, (_, n) => ({ n })));
    // A task written before shards existed has no shard field at all.
    const legacy = (await rawDocs(before.env))[0]!;
    const { FieldValue } = await import('@google-cloud/firestore');
    await legacy.ref.update({ shard: FieldValue.delete() });
    expect((await rawDocs(before.env)).every((d) => d.get('shard') === 0 || d.id === legacy.id)).toBe(true);

    const after = makeManager(db, { shards: 8, env: before.env });
    const result = await after.reshard();
    expect(result.checked).toBe(30);
    const docs = await rawDocs(before.env);
    const shards = docs.map((d) => d.get('shard') as number);
    expect(shards.every((s) => Number.isInteger(s) && s >= 0 && s < 8)).toBe(true);
    // Moved: every task whose shard is no longer 0, and the legacy one whatever its shard now.
    expect(result.moved).toBe(docs.filter((d) => d.id === legacy.id || d.get('shard') !== 0).length);
    expect(new Set(shards).size).toBeGreaterThan(3);
    expect(await after.reshard()).toEqual({ checked: 30, moved: 0 }); // nothing left to move
    const ran = new Set<number>();
    after.handle(jobTask, (task) => void ran.add(task.data.n), { concurrency: 8 });
    after.start();
    await waitFor(() => ran.size === 30, { timeoutMs: 20_000 });
  });
});

describe('shards option', () => {
  it('rejects counts outside 1..30 with a typed error', () => {
    expect(() => makeManager(db, { shards: 0 })).toThrow(/shards/);
    expect(() => makeManager(db, { shards: 31 })).toThrow(/shards/);
    expect(() => makeManager(db, { shards: 2.5 })).toThrow(/shards/);
  });
});
