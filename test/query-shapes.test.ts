import { readFileSync, existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask } from '../src/index.js';
import { QUERY_SHAPES, type QueryShape, type QueryShapeName } from '../src/store/query-shapes.js';
import { observeQueries } from '../src/store/task-store.js';
import { internalsOf } from '../src/testing/internals.js';
import { useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager } from './support.js';

/**
 * The emulator does not enforce composite indexes; production fails such queries with
 * FAILED_PRECONDITION. These tests check every query shape the library issues against the
 * shipped firestore.indexes.json, and that the other shipped config is what it says.
 */

interface IndexFile {
  indexes: { collectionGroup: string; queryScope: string; fields: { fieldPath: string; order?: string; arrayConfig?: string }[] }[];
  fieldOverrides: { collectionGroup: string; fieldPath: string; ttl?: boolean; indexes: unknown[] }[];
}
const indexFile = JSON.parse(readFileSync('firestore.indexes.json', 'utf8')) as IndexFile;
/** The indexes of a sharded queue (`shards` > 1): `shard` leads every composite index. */
const shardedFile = JSON.parse(readFileSync('firestore.indexes.sharded.json', 'utf8')) as IndexFile;
const COLLECTION = 'onceTasks';
const direction = (d: 'asc' | 'desc') => (d === 'asc' ? 'ASCENDING' : 'DESCENDING');

/** A shape as it runs on a sharded queue: a `shard` filter first, unless the shape is never sharded. */
function shardedShape(shape: QueryShape): QueryShape {
  return shape.sharded === false ? shape : { ...shape, equals: ['shard', ...shape.equals] };
}

/**
 * Why a shape cannot run in production, or null when an index serves it. A field exempted from
 * single-field indexing can still be part of a composite index, but no query can rely on its
 * single-field index.
 */
function missingIndex(shape: QueryShape, file: IndexFile = indexFile): string | null {
  const exempt = new Set(file.fieldOverrides.filter((o) => o.collectionGroup === COLLECTION && o.indexes.length === 0).map((o) => o.fieldPath));
  const composite = file.indexes.filter((index) => index.collectionGroup === COLLECTION && index.queryScope === 'COLLECTION');
  const inComposite = new Set(composite.flatMap((index) => index.fields.map((f) => f.fieldPath)));
  const arrays = shape.arrayContains === undefined ? [] : [shape.arrayContains];
  for (const field of [...shape.equals, ...arrays, ...(shape.range ? [shape.range] : []), ...shape.orderBy.map((o) => o.field)]) {
    if (exempt.has(field) && !inComposite.has(field)) return `field ${field} is exempted from indexing`;
  }
  if (shape.range !== undefined && shape.orderBy[0]?.field !== shape.range) return `range field ${shape.range} must be ordered first`;
  // A trailing __name__ in the direction of the previous clause rides on that index implicitly.
  const order = [...shape.orderBy];
  const last = order[order.length - 1];
  if (last?.field === '__name__' && order.length > 1 && order[order.length - 2]!.direction === last.direction) order.pop();
  // Equality filters with only ascending __name__ order are served by merging single-field indexes.
  if (order.length === 1 && order[0]!.field === '__name__' && order[0]!.direction === 'asc') order.pop();
  // Equality-only queries are served by merging single-field indexes; so is one ordered field alone.
  // (An array-contains field has an automatic single-field CONTAINS index, which merges the same way.)
  const singleFieldsOk = [...shape.equals, ...arrays, ...order.map((o) => o.field)].every((f) => !exempt.has(f));
  if (singleFieldsOk && (order.length === 0 || (shape.equals.length + arrays.length === 0 && order.length === 1))) return null;
  const found = composite.some((index) => {
    const fields = index.fields.filter((f) => f.fieldPath !== '__name__');
    const prefixLength = shape.equals.length + arrays.length;
    if (fields.length !== prefixLength + order.length) return false;
    // The prefix: the equality fields (ordered, any direction) and the array-contains field (CONTAINS), in any order.
    const prefix = fields.slice(0, prefixLength);
    const ordered = new Set(prefix.filter((f) => f.order !== undefined && f.arrayConfig === undefined).map((f) => f.fieldPath));
    const contains = new Set(prefix.filter((f) => f.arrayConfig === 'CONTAINS' && f.order === undefined).map((f) => f.fieldPath));
    if (!shape.equals.every((f) => ordered.has(f)) || !arrays.every((f) => contains.has(f))) return false;
    return order.every((o, i) => {
      const f = fields[prefixLength + i]!;
      return f.fieldPath === o.field && f.order === direction(o.direction);
    });
  });
  return found ? null : `no composite index (${[...shape.equals, ...arrays.map((f) => `${f} array-contains`), ...order.map((o) => `${o.field} ${o.direction}`)].join(', ')})`;
}

describe('firestore.indexes.json', () => {
  it.each(Object.entries(QUERY_SHAPES))('serves the %s query', (_name, shape) => {
    expect(missingIndex(shape)).toBeNull();
  });

  it.each(Object.entries(QUERY_SHAPES))('firestore.indexes.sharded.json serves the sharded %s query', (_name, shape) => {
    expect(missingIndex(shardedShape(shape), shardedFile)).toBeNull();
  });

  it('the sharded index file is the default one with shard leading each composite index, and the monotonic fields exempted', () => {
    const expected = indexFile.indexes.map((index) =>
      index.collectionGroup === COLLECTION ? { ...index, fields: [{ fieldPath: 'shard', order: 'ASCENDING' }, ...index.fields] } : index,
    );
    expect(shardedFile.indexes).toEqual(expected);
    const exempted = shardedFile.fieldOverrides.filter((o) => o.collectionGroup === COLLECTION && o.indexes.length === 0).map((o) => o.fieldPath);
    for (const field of ['waitUntil', 'createdAt', 'seq', 'updatedAt']) expect(exempted).toContain(field);
    expect(shardedFile.fieldOverrides.filter((o) => !['waitUntil', 'createdAt', 'seq', 'slot'].includes(o.fieldPath) || o.collectionGroup !== COLLECTION)).toEqual(indexFile.fieldOverrides);
  });

  it('would catch a query without an index', () => {
    expect(missingIndex({ equals: ['env', 'resourceKey'], orderBy: [{ field: 'waitUntil', direction: 'asc' }] })).toMatch(/no composite index/);
    expect(missingIndex({ equals: ['env'], orderBy: [{ field: 'data', direction: 'asc' }] })).toMatch(/exempted/);
    expect(missingIndex({ equals: ['env', 'kind', 'status'], range: 'createdAt', orderBy: [{ field: 'waitUntil', direction: 'asc' }] })).toMatch(/ordered first/);
    // array-contains needs a CONTAINS index field: an ordered one of the same path does not serve it.
    expect(missingIndex({ equals: ['env', 'kind'], arrayContains: 'labelPairs', orderBy: [{ field: 'createdAt', direction: 'desc' }] })).toMatch(/no composite index \(env, kind, labelPairs array-contains/);
    expect(missingIndex({ equals: ['env', 'labelPairs'], orderBy: [{ field: 'createdAt', direction: 'desc' }] })).toMatch(/no composite index/);
  });

  it('declares expireAt as the TTL field of the task collection', () => {
    const ttl = indexFile.fieldOverrides.filter((o) => o.ttl === true);
    expect(ttl).toEqual([
      { collectionGroup: COLLECTION, fieldPath: 'expireAt', ttl: true, indexes: [] },
      { collectionGroup: `${COLLECTION}_keys`, fieldPath: 'expireAt', ttl: true, indexes: [] },
    ]);
  });
});

describe.each([1, 4])('queries the library issues at run time with %i shard(s)', (shards) => {
  const db = useFirestore();
  const issued = new Set<QueryShapeName>();
  let unsharded = 0;
  beforeAll(() => observeQueries((shape, sharded) => (issued.add(shape), sharded || (QUERY_SHAPES[shape] as QueryShape).sharded === false || unsharded++)));
  afterAll(() => observeQueries(undefined));

  it('are all declared shapes with an index, and every declared shape is used', async () => {
    const m = makeManager(db, { shards });
    const other = defineTask({ kind: 'other', schema: z.object({}), id: () => 'other' });
    await m.createMany(jobTask, [{ n: 1 }, { n: 2 }]);
    await m.create(other, {});
    m.handle(jobTask, () => 'ok');
    m.start();
    await waitFor(async () => (await m.countPending(jobTask)) === 0);
    for (const filter of [{}, { kind: jobTask }, { status: 'succeeded' as const }, { kind: 'other', status: 'pending' as const }, { labels: { tenant: 'acme' } }]) {
      await m.list({ limit: 1, ...filter });
    }
    const keyed = defineTask({ kind: 'keyed', schema: z.object({ n: z.number() }), id: (d) => `k${d.n}`, resourceKey: () => 'acct' });
    await m.createMany(keyed, [{ n: 1 }, { n: 2 }]);
    m.handleGroup(keyed, () => undefined);
    await waitFor(async () => (await m.countPending(keyed)) === 0);
    await m.listByResourceKey(keyed, 'acct');
    await m.cancelByResourceKey(keyed, 'acct');
    await expect(m.cancel('never-created')).rejects.toThrow(/does not exist/);
    await m.listOccurrences('job-1');
    await m.listSchedules();
    await m.listSchedules({ kind: jobTask });
    await m.countByStatus();
    await m.queueDepth(jobTask);
    await m.reshard();
    // A lane of the queue (a range of document IDs): workers read one when another process
    // shares their queue, which one manager never meets; the store is asked directly.
    await internalsOf(m).store.findClaimable(jobTask.kind, ['pending'], new Date(), 1, { idRange: { from: '0', to: '1' }, ...(shards > 1 ? { shard: 0 } : {}) });
    expect([...issued].sort()).toEqual(Object.keys(QUERY_SHAPES).sort());
    for (const shape of issued) {
      if (shards === 1) expect(missingIndex(QUERY_SHAPES[shape]), shape).toBeNull();
      else expect(missingIndex(shardedShape(QUERY_SHAPES[shape]), shardedFile), shape).toBeNull();
    }
    // On a sharded queue every sharded shape filtered on the shard.
    if (shards > 1) expect(unsharded).toBe(0);
  });
});

describe('firestore.rules and firebase.json', () => {
  it('firebase.json names the rules and index files that ship', () => {
    const config = JSON.parse(readFileSync('firebase.json', 'utf8')) as { firestore: { rules: string; indexes: string } };
    expect(config.firestore).toEqual({ rules: 'firestore.rules', indexes: 'firestore.indexes.json' });
    expect(existsSync(config.firestore.rules) && existsSync(config.firestore.indexes)).toBe(true);
  });

  it.each(['onceTasks', 'onceTasks_keys'])('firestore.rules denies every client access to %s', (collection) => {
    const rules = readFileSync('firestore.rules', 'utf8').replace(/\/\/.*$/gm, '');
    expect(rules).toMatch(/rules_version = '2';/);
    const block = new RegExp(`match /${collection}/\\{\\w+\\}\\s*\\{([^}]*)\\}`).exec(rules);
    expect(block).not.toBeNull();
    expect(block![1]!.trim()).toBe('allow read, write: if false;');
    expect(rules).not.toMatch(/if true/);
  });
});
