import type { DocumentData, DocumentSnapshot, Query, QuerySnapshot } from '@google-cloud/firestore';
import type { DecodeResult, TaskStatus } from '../task-document.js';
import type { IdRange, QueryBuilder } from './query-builder.js';
import type { Shards } from './shards.js';
import type { ClaimCursor, MalformedDocument, VersionedTask } from './task-store.js';

/**
 * The queue as the worker path reads it: the due tasks of a kind a page at a time, when the
 * next one comes due, and one resource key's queue. Administration's reads are in
 * {@link TaskListing}; both use the store's query builder and call deadlines, so the store
 * remains the one place that talks to Firestore.
 */

/** What the queue queries use of their store. */
export interface QueueQueryAccess {
  readonly env: string;
  readonly shards: Shards;
  readonly queries: QueryBuilder;
  run(q: Query, what: string): Promise<QuerySnapshot>;
  split(docs: readonly DocumentSnapshot[]): { tasks: VersionedTask[]; malformed: MalformedDocument[] };
  decode(raw: DocumentData | undefined): DecodeResult;
}

/** Which part of the queue {@link QueueQueries.findClaimable} reads: a cursor's continuation, shards, or a range of document IDs. */
export interface ClaimableOptions {
  after?: ClaimCursor;
  shard?: number | readonly number[];
  idRange?: IdRange;
}

export class QueueQueries {
  constructor(private readonly store: QueueQueryAccess) {}

  /**
   * The head of a kind's queue: tasks due by `now` (pending, cancelling, or running under an
   * expired lease) in queue order, a page at a time. Malformed documents are returned apart.
   * On a sharded queue, `shard` names the shard to read (the hot path; `after` continues in the
   * shard it came from) or a list of shards (one `in` query; no cursor); without it, every shard
   * is read, in as few queries as the disjunction limit allows, and the pages merged (no cursor).
   */
  async findClaimable(
    kind: string,
    statuses: readonly TaskStatus[],
    now: Date,
    limit: number,
    options: ClaimableOptions = {},
  ): Promise<{ tasks: VersionedTask[]; malformed: MalformedDocument[]; next: ClaimCursor | null }> {
    const values = { env: this.store.env, kind, status: [...statuses] };
    const after = options.after as unknown as CursorBox | undefined;
    const shard = after?.shard ?? options.shard;
    const idRange = after ? after.idRange : options.idRange;
    if (this.store.shards.sharded && shard === undefined) {
      const pages = await Promise.all(
        this.store.queries.wholeQueue(statuses.length).map((s) => this.store.run(this.store.queries.build('claimable', values, { upTo: now, shard: s }).limit(limit), `${kind}: due tasks`)),
      );
      const { tasks, malformed } = this.store.split(pages.flatMap((p) => p.docs));
      return { tasks: tasks.sort(byQueueOrder).slice(0, limit), malformed, next: null };
    }
    let q = idRange
      ? this.store.queries.build('claimableInIdRange', values, { upTo: now, shard: shard ?? null, idRange })
      : this.store.queries.build('claimable', values, { upTo: now, shard: shard ?? null });
    if (after) q = q.startAfter(after.doc);
    const snap = await this.store.run(q.limit(limit), `${kind}: due tasks`);
    const last = snap.docs[snap.docs.length - 1];
    const box: CursorBox | null = last ? { shard: typeof shard === 'number' ? shard : null, doc: last, idRange } : null;
    const next = snap.docs.length === limit && box && typeof shard !== 'object' ? (box as unknown as ClaimCursor) : null;
    return { ...this.store.split(snap.docs), next };
  }

  /** When the kind's next task comes due (a running one: when its lease expires); null if none. */
  async nextDueAt(kind: string, statuses: readonly TaskStatus[]): Promise<Date | null> {
    const values = { env: this.store.env, kind, status: [...statuses] };
    const snaps = await Promise.all(
      this.store.queries.wholeQueue(statuses.length).map((s) => this.store.run(this.store.queries.build('nextDue', values, { shard: s }).limit(1), `${kind}: next due`)),
    );
    let next: Date | null = null;
    for (const doc of snaps.flatMap((snap) => snap.docs)) {
      const decoded = this.store.decode(doc.data());
      if (decoded.ok && (next === null || decoded.task.waitUntil < next)) next = decoded.task.waitUntil;
    }
    return next;
  }

  /** One resource key's tasks in the given statuses, in queue order. */
  async findByResourceKey(kind: string, resourceKey: string, statuses: readonly TaskStatus[], limit: number): Promise<{ tasks: VersionedTask[]; malformed: MalformedDocument[] }> {
    const snap = await this.store.run(this.store.queries.build('keyQueue', { env: this.store.env, kind, resourceKey, status: [...statuses] }, { shard: this.store.shards.forKey(resourceKey) }).limit(limit), `${kind}: key queue`);
    return this.store.split(snap.docs);
  }
}

/** A claim cursor: the last document of a page, and the shard the page was read from. */
interface CursorBox {
  shard: number | null;
  doc: DocumentSnapshot;
  /** The document ID range the page came from, if any: the next page continues in it. */
  idRange: IdRange | undefined;
}

/** Queue order: due time, then creation order. */
export function byQueueOrder(a: VersionedTask, b: VersionedTask): number {
  return a.task.waitUntil.getTime() - b.task.waitUntil.getTime() || a.task.seq - b.task.seq;
}
