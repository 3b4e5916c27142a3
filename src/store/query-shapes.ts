/**
 * Every query the store issues, declared as data. The store builds queries only from these
 * shapes, so `test/query-shapes.test.ts` can check each against `firestore.indexes.json`
 * (the emulator does not enforce composite indexes; production does). On a sharded queue
 * (`shards` > 1) each shape but those marked `sharded: false` also filters on `shard` first,
 * served by `firestore.indexes.sharded.json`.
 */

/** One ordering clause of a query shape. */
export interface OrderClause {
  field: string;
  direction: 'asc' | 'desc';
}

/** The parts of a query that decide which index it needs. */
export interface QueryShape {
  /** Fields compared with `==` or `in` (order does not matter for indexing). */
  equals: readonly string[];
  /**
   * An array field compared with `array-contains` (one value). Its index field is
   * `{ fieldPath, arrayConfig: 'CONTAINS' }`, among the equality fields of the composite index.
   */
  arrayContains?: string;
  /** A field compared with `<=` (Firestore requires it to be the first order-by field). */
  range?: string;
  /**
   * Also filtered to a range of document IDs (`__name__ >= from` and `< to`): a second
   * inequality (Firestore's range filters on multiple fields). `__name__` is the last field of
   * every composite index, so the index that serves the shape without it serves it with it.
   */
  idRange?: true;
  /** Order-by clauses, in order (a trailing `__name__` rides on the previous field's index). */
  orderBy: readonly OrderClause[];
  /** `false`: never filtered on the shard, even on a sharded queue (the index leads with `shard` otherwise). */
  sharded?: false;
}

const byCreated: readonly OrderClause[] = [
  { field: 'createdAt', direction: 'desc' },
  { field: '__name__', direction: 'desc' },
];

/** Queue order: due time, then creation order. */
const queueOrder: readonly OrderClause[] = [
  { field: 'waitUntil', direction: 'asc' },
  { field: 'seq', direction: 'asc' },
];

/** All query shapes, by name. */
export const QUERY_SHAPES = {
  /** Due (and lease-expired) tasks of a kind in queue order. */
  claimable: { equals: ['env', 'kind', 'status'], range: 'waitUntil', orderBy: queueOrder },
  /**
   * The same within a range of document IDs: one lane of an unsharded queue, so that worker
   * processes sharing it read (and claim from) different parts of it (see src/worker/lanes.ts).
   */
  claimableInIdRange: { equals: ['env', 'kind', 'status'], range: 'waitUntil', idRange: true, orderBy: queueOrder },
  /** The next task of a kind to come due (idle workers sleep until then). */
  nextDue: { equals: ['env', 'kind', 'status'], orderBy: queueOrder },
  /** One resource key's open tasks in queue order (grouped claims, cancel by key). */
  keyQueue: { equals: ['env', 'kind', 'resourceKey', 'status'], orderBy: queueOrder },
  /** One resource key's tasks in some statuses by document ID: the stable cursor of bulk operations. */
  keyTasksById: { equals: ['env', 'kind', 'resourceKey', 'status'], orderBy: [{ field: '__name__', direction: 'asc' }] },
  /** All of one resource key's tasks in queue order. */
  listByResourceKey: { equals: ['env', 'kind', 'resourceKey'], orderBy: queueOrder },
  /** The occurrences a generator spawned, by slot. */
  occurrences: { equals: ['env', 'generatorId'], orderBy: [{ field: 'slot', direction: 'asc' }] },
  /**
   * Open tasks in one status by document ID, whatever their shard (a stable cursor for
   * `reshard()`, which finds tasks whose shard is missing or out of range). Equality filters
   * only: served by merging single-field indexes on either queue.
   */
  openById: { equals: ['env', 'status'], orderBy: [{ field: '__name__', direction: 'asc' }], sharded: false },
  /** A task ID in any environment (only to explain a cross-environment refusal). */
  byIdInAnyEnv: { equals: ['id'], orderBy: [], sharded: false },
  /** Count of a kind's tasks in one status (aggregation). */
  countByStatus: { equals: ['env', 'kind', 'status'], orderBy: [] },
  /** Count of all kinds' tasks in one status (aggregation; equality filters only). */
  countByStatusAllKinds: { equals: ['env', 'status'], orderBy: [] },
  /** Listing, newest first, optionally narrowed by kind and/or status. */
  listAll: { equals: ['env'], orderBy: byCreated },
  listByKind: { equals: ['env', 'kind'], orderBy: byCreated },
  listByStatus: { equals: ['env', 'status'], orderBy: byCreated },
  listByKindAndStatus: { equals: ['env', 'kind', 'status'], orderBy: byCreated },
  /**
   * Listing by a label, newest first: `labelPairs` array-contains one `key=value` pair. Further
   * labels, kind and status are filtered in the client (one composite index for every label).
   */
  listByLabel: { equals: ['env'], arrayContains: 'labelPairs', orderBy: byCreated },
  /** Recurring generators (marked `generator: true` at create or by their next spawn), by queue position (next slot). */
  schedules: { equals: ['env', 'generator'], orderBy: [{ field: 'waitUntil', direction: 'asc' }] },
  /** One kind's recurring generators, by queue position (next slot). */
  schedulesByKind: { equals: ['env', 'kind', 'generator'], orderBy: [{ field: 'waitUntil', direction: 'asc' }] },
} as const satisfies Record<string, QueryShape>;

/** Name of a declared query shape. */
export type QueryShapeName = keyof typeof QUERY_SHAPES;
