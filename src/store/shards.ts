import { createHash } from 'node:crypto';

/**
 * The sharded queue ("sharded timestamps"): a collection whose indexes hold a steadily increasing
 * field (`waitUntil`, `createdAt`, `seq`) takes about 500 writes/s, because every new index entry
 * lands at the end of one key range. With `shards: N`, every task carries a `shard` in [0, N)
 * that leads every composite index, which spreads those entries over N ranges (~500×N writes/s).
 *
 * A task's shard comes from its document ID (itself a hash of env and ID), except for tasks with
 * a resource key: they take the key's shard, so one key's queue is one shard and the queries
 * of a key (grouped claims, cancel by key) name it.
 */

/** Most shards: a query over all of them is one `in` filter, and Firestore allows 30 disjunctions. */
export const MAX_SHARDS = 30;
/** Most disjunctions (products of `in` values) Firestore allows in one query. */
const MAX_DISJUNCTIONS = 30;

export class Shards {
  constructor(
    /** Number of shards; 1 is the unsharded queue (no shard filter in any query). */
    readonly count: number,
    private readonly env: string,
  ) {}

  /** Whether queries filter on the shard. */
  get sharded(): boolean {
    return this.count > 1;
  }

  /** Every shard number. */
  all(): number[] {
    return Array.from({ length: this.count }, (_, i) => i);
  }

  /** The shard of a new task. */
  forTask(docId: string, resourceKey: string | null): number {
    if (resourceKey !== null) return this.forKey(resourceKey);
    return hashToShard(docId, this.count);
  }

  /** The shard every task of a resource key lives in. */
  forKey(resourceKey: string): number {
    return hashToShard(`${this.env}\u0000${resourceKey}`, this.count);
  }

  /**
   * All shards split into lists small enough to share a query with another `in` filter of
   * `otherValues` values (Firestore multiplies them into disjunctions, at most 30).
   */
  chunks(otherValues: number): number[][] {
    const size = Math.max(1, Math.floor(MAX_DISJUNCTIONS / Math.max(1, otherValues)));
    const all = this.all();
    const out: number[][] = [];
    for (let i = 0; i < all.length; i += size) out.push(all.slice(i, i + size));
    return out;
  }
}

function hashToShard(text: string, count: number): number {
  if (count <= 1) return 0;
  return createHash('sha256').update(text).digest().readUInt32BE(0) % count;
}
