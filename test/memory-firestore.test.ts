/**
 * The in-memory database (src/store/memory/): the Firestore semantics the library relies on,
 * checked directly, then the library itself running on it. Pure: no emulator is used.
 */
import type { Firestore } from '@google-cloud/firestore';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, OnceTaskManager, type RetryPolicy } from '../src/index.js';
import { createMemoryFirestore, MemoryTimestamp, type MemoryDocumentSnapshot, type MemoryFirestore, type MemoryQuerySnapshot } from '../src/store/memory/index.js';
import { TaskStore } from '../src/store/task-store.js';
import { isTimestampLike } from '../src/values.js';

const tick = (ms = 0): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await tick(10);
  }
}

/** The error a promise rejects with. */
async function failure(promise: Promise<unknown>): Promise<Error & { code?: number }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & { code?: number };
  }
  throw new Error('expected a rejection');
}

const micros = (t: { seconds: number; nanoseconds: number } | undefined): number => t!.seconds * 1e6 + t!.nanoseconds / 1000;

describe('values', () => {
  it('stores Dates as Timestamp-like values, keeps Timestamp-likes (to the microsecond), and other types as they are', async () => {
    const db = createMemoryFirestore();
    const ref = db.collection('c').doc('a');
    const at = new Date('2026-03-29T01:30:00.250Z');
    const foreign = { seconds: 100, nanoseconds: 123_456_789, toDate: () => new Date(100_123) }; // another SDK's Timestamp
    await ref.set({ at, nested: { list: [at, 1, 'x', null, true] }, foreign, bytes: new Uint8Array([1, 2]), big: 12n });
    const data = (await ref.get()).data()!;
    expect(isTimestampLike(data.at)).toBe(true);
    expect(data.at).toBeInstanceOf(MemoryTimestamp);
    expect((data.at as MemoryTimestamp).toDate()).toEqual(at);
    expect((data.at as MemoryTimestamp).toMillis()).toBe(at.getTime());
    expect((data.nested as { list: unknown[] }).list).toEqual([MemoryTimestamp.fromDate(at), 1, 'x', null, true]);
    expect(data.foreign).toMatchObject({ seconds: 100, nanoseconds: 123_456_000 });
    expect(Buffer.isBuffer(data.bytes) && [...(data.bytes as Buffer)]).toEqual([1, 2]);
    expect(data.big).toBe(12);
  });

  it('Timestamps compare by instant: isEqual, valueOf ordering', () => {
    const a = new MemoryTimestamp(5, 1000);
    const b = new MemoryTimestamp(5, 2000);
    expect(a.isEqual(new MemoryTimestamp(5, 1000))).toBe(true);
    expect(a.isEqual({ seconds: 5, nanoseconds: 1000, toDate: () => new Date(5000) })).toBe(true);
    expect(a.isEqual(b)).toBe(false);
    expect(a < b && new MemoryTimestamp(-5, 0) < a).toBe(true);
    expect(a).toEqual(new MemoryTimestamp(5, 1000)); // (own fields, as the SDK's: deep equality compares instants)
    expect(a).not.toEqual(b);
  });

  it('copies on write and on read: no caller shares an object with the store', async () => {
    const db = createMemoryFirestore();
    const ref = db.doc('c/a');
    const input = { m: { list: [1, 2] }, bytes: new Uint8Array([7]) };
    await ref.set(input);
    input.m.list.push(3);
    input.bytes[0] = 9;
    const snap = await ref.get();
    const first = snap.data()!;
    (first.m as { list: number[] }).list.push(4);
    (first.bytes as Buffer)[0] = 8;
    expect(snap.data()).toEqual({ m: { list: [1, 2] }, bytes: Buffer.from([7]) });
    expect((await ref.get()).get('m.list')).toEqual([1, 2]);
    expect(snap.get('m')).not.toBe(snap.get('m'));
  });

  it('refuses what the SDK refuses at the call, and what the server refuses with INVALID_ARGUMENT', async () => {
    const db = createMemoryFirestore();
    const ref = db.doc('c/a');
    expect(() => ref.set({ a: undefined })).toThrow(/Cannot use "undefined" as a Firestore value \(found in field "a"\)/);
    expect(() => ref.set({ a: new Map() })).toThrow(/Couldn't serialize object of type "Map"/);
    expect(() => ref.update({})).toThrow(/At least one field/);
    expect((await failure(ref.set({ a: [[1]] }))).code).toBe(3);
    expect((await failure(ref.set({ s: 'x'.repeat(1_048_600) }))).code).toBe(3);
    expect((await ref.get()).exists).toBe(false);
    const lenient = createMemoryFirestore({ ignoreUndefinedProperties: true });
    await lenient.doc('c/a').set({ a: undefined, b: 1 });
    expect((await lenient.doc('c/a').get()).data()).toEqual({ b: 1 });
  });
});

describe('versions and preconditions', () => {
  it('gives every change a new, strictly increasing updateTime; createTime stays; writeTime is the version', async () => {
    const db = createMemoryFirestore();
    const a = db.doc('c/a');
    const w1 = await a.create({ n: 1 });
    const s1 = await a.get();
    expect(s1.updateTime!.isEqual(w1.writeTime)).toBe(true);
    expect(s1.createTime!.isEqual(w1.writeTime)).toBe(true);
    const w2 = await db.doc('c/b').set({ n: 1 });
    const w3 = await a.update({ n: 2 });
    expect(micros(w2.writeTime)).toBeGreaterThan(micros(w1.writeTime));
    expect(micros(w3.writeTime)).toBeGreaterThan(micros(w2.writeTime));
    const s3 = await a.get();
    expect(s3.updateTime!.isEqual(w3.writeTime) && s3.createTime!.isEqual(w1.writeTime)).toBe(true);
    expect(micros(s3.readTime)).toBeGreaterThanOrEqual(micros(w3.writeTime));
    expect(s3.id).toBe('a');
    expect(s3.ref.path).toBe('c/a');
  });

  it('keeps the version of a write that changes nothing (as Firestore does)', async () => {
    const db = createMemoryFirestore();
    const a = db.doc('c/a');
    const w1 = await a.set({ n: 1, m: { k: 'v' } });
    const w2 = await a.set({ m: { k: 'v' }, n: 1 });
    expect(w2.writeTime.isEqual(w1.writeTime)).toBe(true);
    expect((await a.update({ n: 1 }, { lastUpdateTime: w1.writeTime })).writeTime.isEqual(w1.writeTime)).toBe(true);
  });

  it('answers refused writes with Firestore codes: 6 exists, 5 missing, 9 other version', async () => {
    const db = createMemoryFirestore();
    const a = db.doc('c/a');
    const { writeTime } = await a.create({ n: 1 });
    expect((await failure(a.create({ n: 2 }))).code).toBe(6);
    expect((await failure(db.doc('c/none').update({ n: 1 }))).code).toBe(5);
    expect((await failure(db.doc('c/none').delete({ exists: true }))).code).toBe(5);
    // A version precondition on a missing document fails as a version mismatch (as the emulator answers).
    expect((await failure(db.doc('c/none').update({ n: 1 }, { lastUpdateTime: writeTime }))).code).toBe(9);
    const { writeTime: v2 } = await a.update({ n: 2 }, { lastUpdateTime: writeTime });
    const stale = await failure(a.update({ n: 3 }, { lastUpdateTime: writeTime }));
    expect(stale.code).toBe(9);
    expect(stale.message).toMatch(/^9 FAILED_PRECONDITION: /);
    expect((await failure(a.delete({ lastUpdateTime: writeTime }))).code).toBe(9);
    expect((await a.get()).get('n')).toBe(2);
    await a.delete({ lastUpdateTime: v2 });
    expect((await a.get()).exists).toBe(false);
    await db.doc('c/none').delete(); // absent, no precondition: fine
    expect(() => a.update({ n: 1 }, { exists: true } as never)).toThrow(/not an allowed precondition/);
  });

  it('set replaces, set with merge deep-merges maps, update replaces each field given (dotted keys reach into maps)', async () => {
    const db = createMemoryFirestore();
    const a = db.doc('c/a');
    await a.set({ m: { x: 1, y: 2 }, top: 1 });
    await a.set({ m: { z: 3 }, other: true }, { merge: true });
    expect((await a.get()).data()).toEqual({ m: { x: 1, y: 2, z: 3 }, top: 1, other: true });
    await a.update({ m: { only: 1 } });
    expect((await a.get()).get('m')).toEqual({ only: 1 });
    await a.update({ 'm.more': 2, 'n.deep': 3 });
    expect((await a.get()).data()).toEqual({ m: { only: 1, more: 2 }, n: { deep: 3 }, top: 1, other: true });
    await a.set({ fresh: 1 });
    expect((await a.get()).data()).toEqual({ fresh: 1 });
    expect((await a.get()).get('m.only')).toBeUndefined();
  });
});

describe('batch and bulk writer', () => {
  it('commits a batch atomically, in order, at one write time', async () => {
    const db = createMemoryFirestore();
    const { writeTime } = await db.doc('c/x').create({ n: 0 });
    const results = await db
      .batch()
      .create(db.doc('c/a'), { n: 1 })
      .set(db.doc('c/b'), { n: 2 })
      .update(db.doc('c/x'), { n: 3 }, { lastUpdateTime: writeTime })
      .delete(db.doc('c/none'))
      .commit();
    expect(results).toHaveLength(4);
    expect(results.every((r) => r.writeTime.isEqual(results[0]!.writeTime))).toBe(true);
    expect((await db.doc('c/x').get()).updateTime!.isEqual(results[0]!.writeTime)).toBe(true);
    expect((await db.getAll(db.doc('c/a'), db.doc('c/b'))).map((s) => s.get('n'))).toEqual([1, 2]);
  });

  it('applies nothing of a batch when one precondition fails, and says which', async () => {
    const db = createMemoryFirestore();
    await db.doc('c/exists').create({ n: 0 });
    const batch = db.batch().set(db.doc('c/a'), { n: 1 }).create(db.doc('c/exists'), { n: 1 }).update(db.doc('c/none'), { n: 1 });
    expect((await failure(batch.commit())).code).toBe(6);
    expect((await db.doc('c/a').get()).exists).toBe(false);
    expect((await db.doc('c/exists').get()).get('n')).toBe(0);
    expect(() => batch.set(db.doc('c/b'), {})).toThrow(/committed/);
  });

  it('applies several writes to one document in order, and refuses the sequences Firestore refuses', async () => {
    const db = createMemoryFirestore();
    const a = db.doc('c/a');
    await db.batch().set(a, { n: 1, m: 1 }).update(a, { n: 2 }).commit();
    expect((await a.get()).data()).toEqual({ n: 2, m: 1 });
    await db.batch().delete(a).create(a, { fresh: true }).commit();
    expect((await a.get()).data()).toEqual({ fresh: true });
    expect(await failure(db.batch().set(a, {}).create(a, {}).commit())).toMatchObject({ code: 3, message: expect.stringMatching(/Cannot upsert then insert/) });
    expect((await failure(db.batch().delete(a).update(a, { n: 1 }).commit())).code).toBe(3);
    expect((await a.get()).data()).toEqual({ fresh: true });
  });

  it('runs bulk writes independently, each with its own result or coded error, once flushed', async () => {
    const db = createMemoryFirestore();
    const { writeTime } = await db.doc('c/x').create({ n: 0 });
    const bulk = db.bulkWriter({ throttling: false });
    const errors: number[] = [];
    bulk.onWriteError((err) => {
      errors.push(err.code);
      return false;
    });
    const ok = bulk.create(db.doc('c/a'), { n: 1 });
    const exists = bulk.create(db.doc('c/x'), { n: 1 });
    const updated = bulk.update(db.doc('c/x'), { n: 2 }, { lastUpdateTime: writeTime });
    const stale = bulk.delete(db.doc('c/x'), { lastUpdateTime: writeTime });
    await tick();
    expect((await db.doc('c/a').get()).exists).toBe(false); // not sent before a flush
    await bulk.close();
    expect((await ok).writeTime).toBeInstanceOf(MemoryTimestamp);
    expect(await failure(exists)).toMatchObject({ code: 6, operationType: 'create', failedAttempts: 1 });
    expect((await updated).writeTime.isEqual((await db.doc('c/x').get()).updateTime)).toBe(true);
    expect((await failure(stale)).code).toBe(9);
    expect(errors).toEqual([6, 9]);
    expect(() => bulk.create(db.doc('c/b'), {})).toThrow(/already been closed/);
  });
});

describe('references and reads', () => {
  it('reads many documents in order, absent ones included; references know their place', async () => {
    const db = createMemoryFirestore();
    const tasks = db.collection('tasks');
    await tasks.doc('b').set({ n: 2 });
    const snaps = await db.getAll(tasks.doc('b'), tasks.doc('zz'), tasks.doc('b'));
    expect(snaps.map((s) => [s.id, s.exists, s.get('n')])).toEqual([['b', true, 2], ['zz', false, undefined], ['b', true, 2]]);
    expect(snaps[1]!.data()).toBeUndefined();
    expect(snaps[1]!.updateTime).toBeUndefined();
    const ref = tasks.doc('b');
    expect([ref.id, ref.path, ref.parent.path, ref.parent.id]).toEqual(['b', 'tasks/b', 'tasks', 'tasks']);
    expect(ref.firestore).toBe(db);
    expect(tasks.doc().id).toMatch(/^[A-Za-z0-9]{20}$/);
    expect(ref.collection('sub').doc('c').path).toBe('tasks/b/sub/c');
    expect(() => db.collection('a/b')).toThrow(/odd number/);
  });
});

describe('queries', () => {
  async function seed(db: MemoryFirestore): Promise<void> {
    const rows: [string, Record<string, unknown>][] = [
      ['a', { kind: 'x', n: 1, at: new Date(3000), tags: ['red'], meta: { k: 1 } }],
      ['b', { kind: 'x', n: 2, at: new Date(1000), tags: ['red', 'blue'], meta: { k: 2 } }],
      ['c', { kind: 'y', n: 2, at: new Date(2000), tags: [], meta: { k: 2 } }],
      ['d', { kind: 'x', n: 3, at: new Date(1000) }],
      ['e', { kind: 'x', n: 'three' }],
      ['f', { kind: 'x' }],
    ];
    for (const [id, data] of rows) await db.collection('q').doc(id).set(data);
  }
  const ids = (snap: MemoryQuerySnapshot): string[] => snap.docs.map((d) => d.id);

  it('filters with ==, in, <, <=, >, >=, array-contains, on nested fields, comparing values of one type only', async () => {
    const db = createMemoryFirestore();
    await seed(db);
    const q = db.collection('q');
    expect(ids(await q.where('kind', '==', 'y').get())).toEqual(['c']);
    expect(ids(await q.where('n', 'in', [1, 3]).get())).toEqual(['a', 'd']);
    expect(ids(await q.where('n', '<=', 2).get())).toEqual(['a', 'b', 'c']);
    expect(ids(await q.where('n', '<', 2).get())).toEqual(['a']);
    expect(ids(await q.where('n', '>', 1).get())).toEqual(['b', 'c', 'd']); // not 'three': another type
    expect(ids(await q.where('n', '>=', 'a').get())).toEqual(['e']);
    expect(ids(await q.where('tags', 'array-contains', 'red').get())).toEqual(['a', 'b']);
    expect(ids(await q.where('meta.k', '==', 2).get())).toEqual(['b', 'c']);
    // Timestamps compare by instant, with a Date or a Timestamp as the operand.
    expect(ids(await q.where('at', '<=', new Date(2000)).get())).toEqual(['b', 'd', 'c']); // ordered by the inequality field first
    expect(ids(await q.where('at', '>', MemoryTimestamp.fromMillis(1000)).get())).toEqual(['c', 'a']);
    expect(ids(await q.where('kind', '==', 'x').where('n', '==', 2).get())).toEqual(['b']);
  });

  it('orders by several fields, then by document name in the last direction; leaves out documents missing an ordered field', async () => {
    const db = createMemoryFirestore();
    await seed(db);
    const q = db.collection('q');
    expect(ids(await q.get())).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    expect(ids(await q.orderBy('at').get())).toEqual(['b', 'd', 'c', 'a']);
    expect(ids(await q.orderBy('at', 'desc').get())).toEqual(['a', 'c', 'd', 'b']);
    expect(ids(await q.orderBy('n').orderBy('kind', 'desc').get())).toEqual(['a', 'c', 'b', 'd', 'e']);
    expect(ids(await q.orderBy('__name__', 'desc').limit(2).get())).toEqual(['f', 'e']);
    expect(ids(await q.where('kind', '==', 'x').orderBy('at').limit(2).get())).toEqual(['b', 'd']);
  });

  it('pages with startAfter(snapshot), startAfter(values..., docId) and startAfter(docId)', async () => {
    const db = createMemoryFirestore();
    for (let i = 0; i < 25; i++) await db.collection('p').doc(`d${String(i).padStart(2, '0')}`).set({ g: i % 3, at: new Date(1000 + (i % 5)) });
    const base = db.collection('p').where('g', 'in', [0, 1]).orderBy('at', 'desc').orderBy('__name__', 'desc');
    const all = ids(await base.get());
    const paged: string[] = [];
    let last: MemoryDocumentSnapshot | undefined;
    for (;;) {
      const snap = await (last ? base.startAfter(last) : base).limit(4).get();
      paged.push(...ids(snap));
      if (snap.size < 4) break;
      last = snap.docs[snap.size - 1];
    }
    expect(paged).toEqual(all);
    const third = (await base.get()).docs[2]!;
    expect(ids(await base.startAfter((third.get('at') as MemoryTimestamp).toDate(), third.id).get())).toEqual(all.slice(3));
    const byName = db.collection('p').orderBy('__name__');
    expect(ids(await byName.startAfter('d20').get())).toEqual(['d21', 'd22', 'd23', 'd24']);
    // A snapshot cursor on a query with an inequality orders by it implicitly, as the SDK does.
    const ranged = db.collection('p').where('g', '>=', 1);
    const first = (await ranged.limit(1).get()).docs[0]!;
    expect(ids(await ranged.startAfter(first).get())).toEqual(ids(await ranged.get()).slice(1));
    expect(() => db.collection('p').orderBy('g').startAfter(1, 'd01')).toThrow(/Too many cursor values/);
  });

  it('counts (limit applied), and refuses what the SDK or the server refuses', async () => {
    const db = createMemoryFirestore();
    await seed(db);
    const q = db.collection('q');
    expect((await q.where('kind', '==', 'x').count().get()).data()).toEqual({ count: 5 });
    expect((await q.limit(2).count().get()).data().count).toBe(2);
    expect((await failure(q.where('n', 'in', Array.from({ length: 31 }, (_, i) => i)).get())).code).toBe(3);
    expect((await failure(q.where('n', 'in', [1, 2, 3]).where('kind', 'in', Array.from({ length: 11 }, (_, i) => `${i}`)).get())).code).toBe(3);
    expect((await failure(q.where('n', 'in', []).get())).code).toBe(3);
    const listenerError = await new Promise<Error & { code?: number }>((resolve) => q.where('n', 'in', []).onSnapshot(() => undefined, resolve));
    expect(listenerError.code).toBe(3); // (the listener ends with the error)
    expect(() => q.limit(1.5)).toThrow(/not a valid integer/);
    expect(() => q.where('n', '<', null)).toThrow(/Null/);
    expect(() => q.where('n', '!=', 1)).toThrow(/not supported by the memory backend/);
    expect(() => q.orderBy('n').startAfter(1).orderBy('kind')).toThrow(/orderBy\(\) constraint after/);
  });
});

describe('listeners', () => {
  it('document: a first snapshot soon after (also when absent), one per new version, none for a no-op; unsubscribe stops at once', async () => {
    const db = createMemoryFirestore();
    const ref = db.doc('c/a');
    const seen: (unknown[] | null)[] = [];
    let inWriter = false;
    const unsubscribe = ref.onSnapshot((snap) => {
      expect(inWriter).toBe(false);
      seen.push(snap.exists ? [snap.get('n'), micros(snap.updateTime)] : null);
    });
    expect(seen).toEqual([]); // never synchronous
    await until(() => seen.length === 1);
    expect(seen[0]).toBeNull();
    inWriter = true;
    const { writeTime } = await ref.set({ n: 1 });
    inWriter = false;
    await until(() => seen.length === 2);
    expect(seen[1]).toEqual([1, micros(writeTime)]);
    await ref.set({ n: 1 }); // no change
    await ref.delete();
    await until(() => seen.length === 3);
    expect(seen[2]).toBeNull();
    void ref.set({ n: 2 });
    unsubscribe();
    await tick(20);
    expect(seen).toHaveLength(3);
    await db.terminate();
  });

  it('query: the first result, then changes with docChanges against the previous one', async () => {
    const db = createMemoryFirestore();
    const col = db.collection('q');
    const snaps: { ids: string[]; changes: string[] }[] = [];
    const unsubscribe = col
      .where('n', '>=', 0)
      .orderBy('n')
      .limit(2)
      .onSnapshot((snap) => snaps.push({ ids: snap.docs.map((d) => d.id), changes: snap.docChanges().map((c) => `${c.type}:${c.doc.id}:${c.oldIndex}>${c.newIndex}`) }));
    await until(() => snaps.length === 1);
    expect(snaps[0]).toEqual({ ids: [], changes: [] });
    const step = async (write: () => Promise<unknown>, expected: { ids: string[]; changes: string[] }): Promise<void> => {
      const before = snaps.length;
      await write();
      await until(() => snaps.length === before + 1);
      expect(snaps[before]).toEqual(expected);
    };
    await step(() => col.doc('x').set({ n: 5 }), { ids: ['x'], changes: ['added:x:-1>0'] });
    await step(() => col.doc('y').set({ n: 3 }), { ids: ['y', 'x'], changes: ['added:y:-1>0'] });
    await step(() => col.doc('z').set({ n: 1 }), { ids: ['z', 'y'], changes: ['removed:x:1>-1', 'added:z:-1>0'] });
    await step(() => col.doc('y').update({ n: 0 }), { ids: ['y', 'z'], changes: ['modified:y:1>0'] });
    // Changes that leave the result as it was are not heard of.
    await col.doc('x').update({ n: 6 });
    await col.doc('other').set({ m: 1 });
    await col.doc('y').set({ n: 0 });
    await tick(20);
    expect(snaps).toHaveLength(5);
    await step(() => col.doc('z').delete(), { ids: ['y', 'x'], changes: ['removed:z:1>-1', 'added:x:-1>1'] });
    unsubscribe();
  });

  it('several commits in one turn reach a listener as one snapshot of the latest state', async () => {
    const db = createMemoryFirestore();
    const sizes: number[] = [];
    const unsubscribe = db.collection('q').onSnapshot((snap) => sizes.push(snap.size));
    await until(() => sizes.length === 1);
    await Promise.all([1, 2, 3].map((n) => db.collection('q').doc(`d${n}`).set({ n })));
    await until(() => sizes.length === 2);
    await tick(20);
    expect(sizes).toEqual([0, 3]);
    unsubscribe();
  });
});

describe('transactions and terminate', () => {
  it('runs a transaction on what it read, again when that changed meanwhile', async () => {
    const db = createMemoryFirestore();
    const ref = db.doc('c/counter');
    await ref.set({ n: 0 });
    let attempts = 0;
    const result = await db.runTransaction(async (tx) => {
      attempts++;
      const snap = await tx.get(ref);
      if (attempts === 1) await ref.update({ n: 10 }); // another writer slips in
      tx.update(ref, { n: (snap.get('n') as number) + 1 });
      return snap.get('n');
    });
    expect([attempts, result, (await ref.get()).get('n')]).toEqual([2, 10, 11]);
    await expect(db.runTransaction(async (tx) => {
      tx.set(db.doc('c/other'), { a: 1 });
      throw new Error('caller aborts');
    })).rejects.toThrow('caller aborts');
    expect((await db.doc('c/other').get()).exists).toBe(false);
    await expect(db.runTransaction(async (tx) => {
      tx.set(ref, { n: 0 });
      await tx.get(ref);
    })).rejects.toThrow(/reads to be executed before all writes/);
  });

  it('refuses to terminate while a listener or bulk writer is open; afterwards every call fails', async () => {
    const db = createMemoryFirestore();
    const unsubscribe = db.doc('c/a').onSnapshot(() => undefined);
    const bulk = db.bulkWriter();
    await expect(db.terminate()).rejects.toThrow(/1 active listeners and 1 open BulkWriter/);
    unsubscribe();
    await bulk.close();
    await db.terminate();
    await expect(db.doc('c/a').get()).rejects.toThrow('The client has already been terminated');
    await expect(db.doc('c/a').set({})).rejects.toThrow('terminated');
    await expect(db.collection('c').get()).rejects.toThrow('terminated');
    const listenerError = await new Promise<Error>((resolve) => db.doc('c/a').onSnapshot(() => undefined, resolve));
    expect(listenerError.message).toBe('The client has already been terminated');
  });
});

describe('the library on the memory database', () => {
  const job = defineTask({ kind: 'job', schema: z.object({ n: z.number().int(), failTimes: z.number().int().default(0) }), id: (d) => `job-${d.n}` });
  const keyed = defineTask({ kind: 'keyed', schema: z.object({ n: z.number().int(), key: z.string() }), id: (d) => `keyed-${d.n}`, resourceKey: (d) => d.key });
  const quickRetry: RetryPolicy = { shouldRetry: (attempt) => attempt < 5, nextDelayMs: () => 10 };
  const managers: OnceTaskManager[] = [];
  const manager = (db: MemoryFirestore, env: string): OnceTaskManager => {
    const m = new OnceTaskManager({ firestore: db as unknown as Firestore, env, listen: true, pollIntervalMs: 50 });
    managers.push(m);
    return m;
  };
  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.stop({ graceMs: 0 })));
  });

  it('the store reads and writes it: create, conditional update, queue query', async () => {
    const db = createMemoryFirestore();
    const m = manager(db, 'store');
    await m.create(job, { n: 1 });
    const store = new TaskStore(db as unknown as Firestore, 'onceTasks', 'store');
    const { tasks } = await store.findClaimable('job', ['pending'], new Date(Date.now() + 60_000), 10);
    expect(tasks.map((t) => t.task.id)).toEqual(['job-1']);
    const written = await store.updateIfUnchanged(tasks[0]!.docId, { attempts: 0 }, tasks[0]!.updateTime);
    expect(written.ok).toBe(true);
    expect((await store.updateIfUnchanged(tasks[0]!.docId, { attempts: 0 }, tasks[0]!.updateTime)).ok).toBe(false);
  });

  it('runs tasks to success, retries a failing one, and serializes a resource key', async () => {
    const db = createMemoryFirestore();
    const m = manager(db, 'run');
    const attemptsOf = new Map<number, number>();
    m.handle(job, (task) => {
      const n = (attemptsOf.get(task.data.n) ?? 0) + 1;
      attemptsOf.set(task.data.n, n);
      if (n <= task.data.failTimes) throw new Error(`fail ${n}`);
      return { n: task.data.n };
    }, { retry: quickRetry });
    let running = 0;
    let overlap = false;
    m.handle(keyed, async () => {
      if (++running > 1) overlap = true;
      await tick(15);
      running--;
    }, { concurrency: 4 });
    m.start();
    await m.createMany(job, [{ n: 1 }, { n: 2 }, { n: 3, failTimes: 2 }]);
    for (let n = 0; n < 4; n++) await m.create(keyed, { n, key: 'account-1' });
    await until(async () => (await m.countByStatus(job)).succeeded === 3 && (await m.countByStatus(keyed)).succeeded === 4, 10_000);
    expect(await m.get('job-1')).toMatchObject({ status: 'succeeded', attempts: 1, result: { n: 1 } });
    expect(await m.get('job-3')).toMatchObject({ status: 'succeeded', attempts: 3, errorCount: 2 });
    expect(overlap).toBe(false);
  });

  it('two managers sharing one database share its tasks like two processes: each runs once', async () => {
    const db = createMemoryFirestore();
    const runs: string[] = [];
    for (const name of ['a', 'b']) {
      const m = manager(db, 'shared');
      m.handle(job, async (task) => {
        runs.push(`${name}:${task.id}`);
        await tick(5);
      }, { concurrency: 2 });
      m.start();
    }
    for (let n = 0; n < 12; n++) await managers[n % 2]!.create(job, { n });
    await until(async () => (await managers[0]!.countByStatus(job)).succeeded === 12, 10_000);
    const ids = runs.map((r) => r.split(':')[1]);
    expect(new Set(ids).size).toBe(12);
    expect(ids).toHaveLength(12);
    await Promise.all(managers.splice(0).map((m) => m.stop()));
    await db.terminate(); // every listener and bulk writer was closed by stop()
  });
});
