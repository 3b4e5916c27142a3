import type { DocumentSnapshot, Query, QuerySnapshot } from '@google-cloud/firestore';
import type { DecodeResult, StoredTask, TaskStatus } from '../task-document.js';
import type { QueryShapeName } from './query-shapes.js';
import type { QueryBuilder } from './query-builder.js';
import type { Shards } from './shards.js';
import type { OperationCounter } from './op-stats.js';
import type { MalformedDocument, TaskStore, VersionedTask } from './task-store.js';

/**
 * The task collection as administration reads it: listings newest first, a resource key's or a
 * generator's tasks, counts, and the bulk passes that page with a stable cursor (cancel by key,
 * reshard). The worker path's queue reads are in {@link QueueQueries}, admin writes in
 * {@link AdminWrites}, every other write in {@link TaskStore}; this uses the store's query
 * builder and its call deadlines, so the store remains the one place that talks to Firestore.
 */

/** What the listing uses of its store. */
export interface ListingAccess {
  readonly env: string;
  readonly shards: Shards;
  readonly queries: QueryBuilder;
  readonly ops: OperationCounter;
  run(q: Query, what: string): Promise<QuerySnapshot>;
  call<T>(promise: Promise<T>, what: string): Promise<T>;
  split(docs: readonly DocumentSnapshot[]): { tasks: VersionedTask[]; malformed: MalformedDocument[] };
  mutate: TaskStore['mutate'];
  decode(raw: Parameters<TaskStore['decode']>[0]): DecodeResult;
}

/** Page size of {@link TaskListing.reshard}. */
const RESHARD_PAGE = 500;

/** Most pages {@link TaskListing.listByLabels} reads in one call. */
export const LABEL_SCAN_PAGES = 10;
/** Smallest page {@link TaskListing.listByLabels} reads when it filters in the client. */
const LABEL_SCAN_MIN_PAGE = 100;

/** A listing position: after this document, newest first. */
export interface ListPosition {
  createdAt: Date;
  docId: string;
}

export class TaskListing {
  constructor(private readonly store: ListingAccess) {}

  /**
   * One page of a resource key's tasks in the given statuses, in document-ID order after
   * `afterDocId`: a stable cursor for bulk operations, whatever they change on the way.
   */
  async pageByResourceKey(kind: string, resourceKey: string, statuses: readonly TaskStatus[], limit: number, afterDocId?: string): Promise<{ tasks: VersionedTask[]; next: string | null }> {
    let q = this.store.queries.build('keyTasksById', { env: this.store.env, kind, resourceKey, status: [...statuses] }, { shard: this.store.shards.forKey(resourceKey) });
    if (afterDocId !== undefined) q = q.startAfter(afterDocId);
    const snap = await this.store.run(q.limit(limit), `${kind}: key tasks`);
    const last = snap.docs[snap.docs.length - 1];
    return { tasks: this.store.split(snap.docs).tasks, next: snap.docs.length === limit && last ? last.id : null };
  }

  /** All of one resource key's tasks in queue order. */
  async listByResourceKey(kind: string, resourceKey: string, limit: number): Promise<{ tasks: VersionedTask[]; malformed: MalformedDocument[] }> {
    const snap = await this.store.run(this.store.queries.build('listByResourceKey', { env: this.store.env, kind, resourceKey }, { shard: this.store.shards.forKey(resourceKey) }).limit(limit), `${kind}: list by key`);
    return this.store.split(snap.docs);
  }

  /** The occurrences a generator spawned, by slot. */
  async listOccurrences(generatorId: string, limit: number): Promise<{ tasks: VersionedTask[]; malformed: MalformedDocument[] }> {
    const snap = await this.store.run(this.store.queries.build('occurrences', { env: this.store.env, generatorId }, { shard: this.store.shards.all() }).limit(limit), 'occurrences');
    return this.store.split(snap.docs);
  }

  /**
   * Gives every open task the shard it belongs in under this store's shard count (tasks
   * written before shards existed have none; a change of the count moves others). Pages each
   * open status in document-ID order (a stable cursor) and moves tasks one conditional write
   * each (a task that changes meanwhile is read again). Returns how many were checked and moved.
   */
  async reshard(statuses: readonly TaskStatus[]): Promise<{ checked: number; moved: number }> {
    let checked = 0;
    let moved = 0;
    for await (const tasks of this.openPages(statuses, 'reshard')) {
      checked += tasks.length;
      for (const { docId, task } of tasks) {
        const shard = this.store.shards.forTask(docId, task.resourceKey);
        if (task.shard === shard) continue;
        const result = await this.store.mutate(task.id, (current) => (current.shard === shard ? null : { shard }));
        if (result.outcome === 'updated') moved++;
      }
    }
    return { checked, moved };
  }

  /**
   * Pages of the open tasks in the given statuses, whatever their shard, in document-ID order:
   * a stable cursor, whatever the caller changes on the way (a page is read after the last one
   * was handled).
   */
  private async *openPages(statuses: readonly TaskStatus[], what: string): AsyncGenerator<VersionedTask[]> {
    for (const status of statuses) {
      let after: string | undefined;
      do {
        let q = this.store.queries.build('openById', { env: this.store.env, status });
        if (after !== undefined) q = q.startAfter(after);
        const snap = await this.store.run(q.limit(RESHARD_PAGE), what);
        yield this.store.split(snap.docs).tasks;
        after = snap.docs.length === RESHARD_PAGE ? snap.docs[snap.docs.length - 1]!.id : undefined;
      } while (after !== undefined);
    }
  }

  /**
   * Recurring generators (of one kind, or of every kind with `kind` null) by queue position:
   * those marked `generator: true` (at create, or by their first spawn since the marker exists).
   * One read per generator returned (at least one).
   */
  async listSchedules(kind: string | null, limit: number): Promise<{ tasks: VersionedTask[]; malformed: MalformedDocument[] }> {
    const { env } = this.store;
    const q =
      kind === null
        ? this.store.queries.build('schedules', { env, generator: true }, { shard: this.store.shards.all() })
        : this.store.queries.build('schedulesByKind', { env, kind, generator: true }, { shard: this.store.shards.all() });
    const snap = await this.store.run(q.limit(limit), 'schedules');
    return this.store.split(snap.docs);
  }

  /**
   * Every open task of the environment in the given statuses (the testing kit's look at what
   * comes due next), paged in document-ID order. One read per task: for tests, not production.
   */
  async openTasks(statuses: readonly TaskStatus[]): Promise<StoredTask[]> {
    const found: StoredTask[] = [];
    for await (const tasks of this.openPages(statuses, 'open tasks')) found.push(...tasks.map((t) => t.task));
    return found;
  }

  /** Environments other than ours that hold a task with this ID (to explain a refusal). */
  async otherEnvironmentsOf(id: string): Promise<string[]> {
    const snap = await this.store.run(this.store.queries.build('byIdInAnyEnv', { id }).limit(10), 'find id');
    const envs = snap.docs.map((d) => d.get('env') as unknown).filter((e): e is string => typeof e === 'string' && e !== this.store.env);
    return [...new Set(envs)];
  }

  /** Counts a kind's tasks (or, with `kind` null, every kind's) in one status with an aggregation query (1 read per 1000 entries, at least 1). */
  async countByStatus(kind: string | null, status: TaskStatus): Promise<number> {
    const { env } = this.store;
    const q = kind === null ? this.store.queries.build('countByStatusAllKinds', { env, status }, { shard: this.store.shards.all() }) : this.store.queries.build('countByStatus', { env, kind, status }, { shard: this.store.shards.all() });
    return this.count(q, `${kind ?? 'all kinds'}: count`);
  }

  /** Counts a kind's pending tasks due by `now`, over the queue's own index (1 read per 1000 entries, at least 1). */
  async countDue(kind: string, now: Date): Promise<number> {
    const counts = await Promise.all(
      this.store.queries.wholeQueue().map((shard) => this.count(this.store.queries.build('claimable', { env: this.store.env, kind, status: 'pending' }, { upTo: now, shard }), `${kind}: count due`)),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  private async count(q: Query, what: string): Promise<number> {
    const { count } = (await this.store.call(q.count().get(), what)).data();
    this.store.ops.query(Math.ceil(count / 1000));
    return count;
  }

  /**
   * One page of tasks that carry every label of `labels` (and, if given, are of `kind` and in
   * `status`), newest first, after `after`. The first label is the one queried (the
   * `listByLabel` shape: `labelPairs` array-contains it, one composite index for every label);
   * the other labels, kind and status are checked here while paging. So a call reads at most
   * {@link LABEL_SCAN_PAGES} pages: of `limit + 1` documents when the first label is the only
   * filter (then every document read is listed: `limit + 1` reads), else of max(limit + 1, 100)
   * (at most 1000). When those pages run out before `limit` tasks matched, `next` is where the
   * scan stopped (the page holds fewer tasks, perhaps none; the caller continues from there);
   * `next` is null when no document is left. Malformed documents that carry the first label are
   * returned too (they count towards `limit`).
   */
  async listByLabels(filter: {
    labels: readonly (readonly [string, string])[];
    kind?: string;
    status?: TaskStatus;
    limit: number;
    after?: ListPosition;
  }): Promise<{ items: { docId: string; decoded: DecodeResult }[]; next: ListPosition | null }> {
    const [first, ...rest] = filter.labels;
    if (first === undefined) throw new Error('internal: listByLabels needs a label');
    const clientFiltered = rest.length > 0 || filter.kind !== undefined || filter.status !== undefined;
    const pageSize = clientFiltered ? Math.min(1000, Math.max(filter.limit + 1, LABEL_SCAN_MIN_PAGE)) : filter.limit + 1;
    const matches = (task: StoredTask): boolean =>
      (filter.kind === undefined || task.kind === filter.kind) && (filter.status === undefined || task.status === filter.status) && rest.every(([k, v]) => task.labels[k] === v);
    const items: { docId: string; decoded: DecodeResult }[] = [];
    let after = filter.after;
    let lastListed: ListPosition | undefined;
    for (let page = 0; page < LABEL_SCAN_PAGES; page++) {
      let q = this.store.queries.build('listByLabel', { env: this.store.env, labelPairs: `${first[0]}=${first[1]}` }, { shard: this.store.shards.all() });
      if (after) q = q.startAfter(after.createdAt, after.docId);
      const snap = await this.store.run(q.limit(pageSize), 'list by label');
      for (const doc of snap.docs) {
        const decoded = this.store.decode(doc.data());
        const raw = doc.get('createdAt') as { toDate?: () => Date } | undefined;
        const createdAt = decoded.ok ? decoded.task.createdAt : typeof raw?.toDate === 'function' ? raw.toDate() : null;
        if (createdAt === null) return { items, next: null }; // (not a Timestamp: no cursor can pass it)
        const position = { createdAt, docId: doc.id };
        if (!decoded.ok || matches(decoded.task)) {
          if (items.length === filter.limit) return { items, next: lastListed ?? null };
          items.push({ docId: doc.id, decoded });
          lastListed = position;
        }
        after = position;
      }
      if (snap.docs.length < pageSize) return { items, next: null };
    }
    // The page budget ran out: continue after the last document read.
    return { items, next: after ?? null };
  }

  /** One page of tasks, newest first, after the `(createdAt, docId)` cursor if given. */
  async list(filter: {
    kind?: string;
    status?: TaskStatus;
    limit: number;
    after?: { createdAt: Date; docId: string };
  }): Promise<{ items: { docId: string; decoded: DecodeResult; createdAt: Date | null }[]; hasMore: boolean }> {
    const shape: QueryShapeName =
      filter.kind !== undefined && filter.status !== undefined ? 'listByKindAndStatus' : filter.kind !== undefined ? 'listByKind' : filter.status !== undefined ? 'listByStatus' : 'listAll';
    let q = this.store.queries.build(shape, { env: this.store.env, kind: filter.kind, status: filter.status }, { shard: this.store.shards.all() });
    if (filter.after) q = q.startAfter(filter.after.createdAt, filter.after.docId);
    const snap = await this.store.run(q.limit(filter.limit + 1), 'list');
    const docs = snap.docs.slice(0, filter.limit);
    return {
      items: docs.map((doc) => {
        const decoded = this.store.decode(doc.data());
        return { docId: doc.id, decoded, createdAt: decoded.ok ? decoded.task.createdAt : null };
      }),
      hasMore: snap.docs.length > filter.limit,
    };
  }
}
