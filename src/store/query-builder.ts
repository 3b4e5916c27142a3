import type { CollectionReference, Query } from '@google-cloud/firestore';
import { QUERY_SHAPES, type QueryShape, type QueryShapeName } from './query-shapes.js';
import type { Shards } from './shards.js';

/**
 * Builds every query of the task collection from its declared shape ({@link QUERY_SHAPES}), so
 * the index test sees exactly what runs. On a sharded queue, shapes that are sharded get a
 * leading `shard` filter: one shard (`==`) or a list of them (`in`).
 */

/** Which shards a query covers: one, a list, or (unsharded queue or unsharded shape) none. */
export type ShardFilter = number | readonly number[] | null;

/** A range of document IDs: `from` inclusive, `to` exclusive. */
export interface IdRange {
  from: string;
  to: string;
}

/** Observer of issued query shapes; the index test uses it to see every query the library runs. */
let queryObserver: ((shape: QueryShapeName, sharded: boolean) => void) | undefined;

/** @internal Test hook: called with the shape name of every query the store issues, and whether it filtered on the shard. */
export function observeQueries(observer: ((shape: QueryShapeName, sharded: boolean) => void) | undefined): void {
  queryObserver = observer;
}

export class QueryBuilder {
  constructor(
    private readonly collection: CollectionReference,
    readonly shards: Shards,
  ) {}

  /**
   * A query of a declared shape. `values` gives the equality values (an array becomes `in`)
   * and the `arrayContains` field's value, `upTo` the upper bound of the range field, `shard` the shards it covers (ignored on an
   * unsharded queue; required there for sharded shapes, so no query forgets it), `idRange` the
   * document IDs of a shape with `idRange`.
   */
  build(shape: QueryShapeName, values: Record<string, unknown>, options: { upTo?: unknown; shard?: ShardFilter; idRange?: IdRange } = {}): Query {
    const spec: QueryShape = QUERY_SHAPES[shape];
    let q: Query = this.collection;
    const sharded = this.shards.sharded && spec.sharded !== false;
    if (sharded) {
      const shard = options.shard ?? null;
      if (shard === null) throw new Error(`internal: query "${shape}" on a sharded queue needs its shards`);
      q = typeof shard === 'number' ? q.where('shard', '==', shard) : q.where('shard', 'in', [...shard]);
    }
    for (const field of spec.equals) {
      const value = values[field];
      q = Array.isArray(value) ? q.where(field, 'in', value) : q.where(field, '==', value);
    }
    if (spec.arrayContains !== undefined) q = q.where(spec.arrayContains, 'array-contains', values[spec.arrayContains]);
    if (spec.range !== undefined) q = q.where(spec.range, '<=', options.upTo);
    if (spec.idRange) {
      const range = options.idRange;
      if (!range) throw new Error(`internal: query "${shape}" needs its document ID range`);
      q = q.where('__name__', '>=', range.from).where('__name__', '<', range.to);
    }
    for (const clause of spec.orderBy) q = q.orderBy(clause.field, clause.direction);
    queryObserver?.(shape, sharded);
    return q;
  }

  /**
   * The shard lists a query over the whole queue runs with: one list on an unsharded queue
   * (`[null]`), else all shards in as few lists as Firestore's disjunction limit allows next to
   * an `in` filter of `otherValues` values.
   */
  wholeQueue(otherValues = 1): ShardFilter[] {
    return this.shards.sharded ? this.shards.chunks(otherValues) : [null];
  }
}
