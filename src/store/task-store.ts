import { createHash } from 'node:crypto';
import type { CollectionReference, DocumentData, DocumentReference, DocumentSnapshot, Firestore, Query, QuerySnapshot, Timestamp, Transaction, WriteBatch } from '@google-cloud/firestore';
import pLimit from 'p-limit';
import { OperationCounter } from './op-stats.js';
import { decodeStoredTask, type DecodeResult, type StoredTask, type TaskStatus } from '../task-document.js';
import { DEFAULT_CALL_TIMEOUT_MS, withDeadline } from './calls.js';
import { ConditionalWriter, publicTimeout, type RefWrite, type ConditionalWriteResult, type TaskFields, type WriteOptions } from './conditional-writer.js';
import { LockStore } from './lock-store.js';
import { TaskCreator } from './task-creator.js';
import { CommitGrouper, DEFAULT_WRITE_BATCHING, WriteBatcher, type WriteBatching } from './write-batcher.js';
import { QueryBuilder } from './query-builder.js';
import { Shards } from './shards.js';
import { TaskListing } from './task-listing.js';
import { watchQueueHead, type WindowCallback } from './head-listener.js';
import { PolicyCreator, type CreatePolicy, type PolicyOutcome } from './create-policy.js';
import { AdminWrites, type MutateResult } from './admin-writes.js';
import { QueueQueries, type ClaimableOptions } from './queue-queries.js';

/**
 * The one place that talks to Firestore about tasks. Everything else asks the store; nothing
 * else builds a query or a write. No runtime value is imported from `@google-cloud/firestore`,
 * so the instance from firebase-admin's `getFirestore()` (which may bundle its own copy) works
 * too. Every call has a deadline ({@link withDeadline}); writes go through the
 * {@link ConditionalWriter}, which resolves ambiguous outcomes by a witness. Groups of its work
 * (creation, listings, queue queries, admin writes) live beside it in this folder and use its
 * deadlines and counters.
 */

export type { TaskFields, ConditionalWriteResult, WriteOptions } from './conditional-writer.js';
export type { VersionedLock } from './lock-store.js';
export type { CreatePolicy, PolicyOutcome } from './create-policy.js';

/** A stored task read together with the version it was read at. */
export interface VersionedTask {
  docId: string;
  task: StoredTask;
  /** The document's update time: the precondition for an optimistic write. */
  updateTime: Timestamp;
}

/** A document in our collection and environment that does not have the stored shape. */
export interface MalformedDocument {
  docId: string;
  reason: string;
  updateTime: Timestamp;
}

/** One write of an atomic conditional commit, on a task or on a key lock. */
export interface ConditionalWrite {
  target: 'task' | 'lock';
  docId: string;
  /** The fields to write, or `null` to delete the document. */
  fields: TaskFields | null;
  /** Update only if unchanged since this version; `'absent'` creates and fails if it exists. */
  precondition: Timestamp | 'absent';
}

/** Where the next page of claimable tasks starts (in one shard). */
export type ClaimCursor = { readonly __brand: 'ClaimCursor' };

export { observeQueries } from './query-builder.js';
export { byQueueOrder } from './queue-queries.js';

/** Firestore access for one collection and one environment. */
export class TaskStore {
  readonly firestore: Firestore;
  readonly env: string;
  /** Billed operations this store caused. */
  readonly ops = new OperationCounter();
  /** The resource-key locks of this collection. */
  readonly locks: LockStore;
  private readonly writer: ConditionalWriter;
  private readonly creator: TaskCreator;
  private readonly policies: PolicyCreator;
  private readonly queueQueries: QueueQueries;
  private readonly adminWrites: AdminWrites;
  /** Document listeners opened by {@link watchTask} and not yet closed. */
  private openTaskListeners = 0;
  /** Coalesces single-document conditional writes. */
  readonly batcher: WriteBatcher;
  /** Groups atomic multi-document commits issued together. */
  readonly commits: CommitGrouper;
  private readonly collection: CollectionReference;
  /** @internal Builds every query of the collection (shared with {@link TaskListing} and {@link QueueQueries}). */
  readonly queries: QueryBuilder;
  /** Administration's reads: listings, counts, bulk passes. */
  readonly listing: TaskListing;
  /** How the queue is sharded (1 shard: not at all). */
  readonly shards: Shards;

  constructor(
    firestore: Firestore,
    collectionName: string,
    env: string,
    /** Deadline of one Firestore call that names none, in ms. */
    readonly callTimeoutMs: number = DEFAULT_CALL_TIMEOUT_MS,
    /** How single-document conditional writes are coalesced. */
    batching: WriteBatching = DEFAULT_WRITE_BATCHING,
    /** Number of queue shards (1: unsharded). */
    shardCount = 1,
  ) {
    this.firestore = firestore;
    this.env = env;
    this.collection = firestore.collection(collectionName);
    this.shards = new Shards(shardCount, env);
    this.queries = new QueryBuilder(this.collection, this.shards);
    this.listing = new TaskListing(this);
    this.locks = new LockStore(firestore, collectionName, env, this.ops, callTimeoutMs);
    this.writer = new ConditionalWriter(this.ops, callTimeoutMs);
    this.batcher = new WriteBatcher(firestore, this.writer, batching);
    this.commits = new CommitGrouper(this.writer, batching);
    this.creator = new TaskCreator(firestore, (id) => this.ref(this.docId(id)), this.ops, this.writer, callTimeoutMs);
    this.policies = new PolicyCreator({ ref: (docId) => this.ref(docId), decode: (raw) => this.decode(raw), writer: this.writer });
    this.queueQueries = new QueueQueries(this);
    this.adminWrites = new AdminWrites(this, (docId) => this.ref(docId));
  }

  /**
   * Document ID of a task: a short hash of (env, id) in front of the id. The hash scopes IDs
   * per environment and spreads deterministic, often sequential IDs over the key space so
   * writes do not hotspot one tablet.
   */
  docId(id: string): string {
    const hash = createHash('sha256').update(this.env).update('\u0000').update(id).digest('hex').slice(0, 12);
    return `${hash}_${id}`;
  }

  private ref(docId: string): DocumentReference {
    return this.collection.doc(docId);
  }

  /**
   * Awaits a read within the call deadline; a timeout becomes a BackendTimeoutError.
   * @internal Shared with {@link TaskListing} and {@link AdminWrites}.
   */
  async call<T>(promise: Promise<T>, what: string): Promise<T> {
    try {
      return await withDeadline(promise, this.callTimeoutMs, what);
    } catch (err) {
      throw publicTimeout(err, what);
    }
  }

  // ---- creating -------------------------------------------------------------------------

  /**
   * Creates the task unless its document exists (exact even if an answer was lost). Returns
   * null when it existed; when created, the task as written with its version (`head`, for a
   * local worker to claim without reading it; null if it does not decode, which ours always do).
   */
  async create(id: string, fields: TaskFields): Promise<{ head: VersionedTask | null } | null> {
    const docId = this.docId(id);
    const written = this.withShard(docId, fields);
    const updateTime = await this.creator.create(id, written);
    if (updateTime === null) return null;
    const decoded = this.decode(written);
    return { head: decoded.ok ? { docId, task: decoded.task, updateTime } : null };
  }

  /** A new task's fields with its shard (always stored, 0 on an unsharded queue, so a queue can be sharded later). */
  private withShard(docId: string, fields: TaskFields): TaskFields {
    const key = typeof fields.resourceKey === 'string' ? fields.resourceKey : null;
    return { ...fields, shard: this.shards.forTask(docId, key) };
  }

  /** Inside a caller's transaction: reads the document (reads must come first) and creates it if absent. */
  createInTransaction(tx: Transaction, id: string, fields: TaskFields): Promise<boolean> {
    return this.creator.createInTransaction(tx, id, this.withShard(this.docId(id), fields));
  }

  /** Adds a create to a caller's batch unless the task exists now (see {@link TaskCreator.createInBatch}). */
  createInBatch(batch: WriteBatch, id: string, fields: TaskFields): Promise<boolean> {
    return this.creator.createInBatch(batch, id, this.withShard(this.docId(id), fields));
  }

  /** Creates many tasks; returns, per item, whether it was new (exact, see {@link TaskCreator.createMany}). */
  createMany(items: readonly { id: string; fields: TaskFields }[]): Promise<boolean[]> {
    return this.creator.createMany(items.map((item) => ({ id: item.id, fields: this.withShard(this.docId(item.id), item.fields) })));
  }

  /**
   * Creates a task of a `throttle` or `debounce` kind (see {@link PolicyCreator}): may replace a
   * finished task of the ID or move a pending one; `now` is the caller's clock. Exact across
   * processes and when an answer is lost. `head` as in {@link create}, when a task was written anew.
   */
  async createWithPolicy(id: string, fields: TaskFields, policy: CreatePolicy, now: Date): Promise<{ outcome: PolicyOutcome; head: VersionedTask | null }> {
    const docId = this.docId(id);
    const { outcome, written } = await this.policies.create(docId, id, this.withShard(docId, fields), policy, now);
    if (written === null) return { outcome, head: null };
    const decoded = this.decode(written.fields);
    return { outcome, head: decoded.ok ? { docId, task: decoded.task, updateTime: written.updateTime } : null };
  }

  /**
   * {@link createWithPolicy} for many tasks: outcomes in input order. Items of one ID go one
   * after the other in input order (so the last payload of a debounced ID wins); different IDs
   * at most 16 at a time.
   */
  async createManyWithPolicy(items: readonly { id: string; fields: TaskFields }[], policy: CreatePolicy, now: Date): Promise<PolicyOutcome[]> {
    const byId = new Map<string, number[]>();
    items.forEach((item, i) => byId.set(item.id, [...(byId.get(item.id) ?? []), i]));
    const outcomes: PolicyOutcome[] = new Array(items.length);
    const limit = pLimit(16);
    await Promise.all(
      [...byId.values()].map((indexes) =>
        limit(async () => {
          for (const i of indexes) outcomes[i] = (await this.createWithPolicy(items[i]!.id, items[i]!.fields, policy, now)).outcome;
        }),
      ),
    );
    return outcomes;
  }

  // ---- reading --------------------------------------------------------------------------

  /** Reads one task by document ID; `null` when absent. */
  async readDoc(docId: string): Promise<{ docId: string; decoded: DecodeResult; updateTime: Timestamp } | null> {
    const snap = await this.call(this.ref(docId).get(), `read ${docId}`);
    this.ops.read();
    if (!snap.exists || !snap.updateTime) return null;
    return { docId, decoded: this.decode(snap.data()), updateTime: snap.updateTime };
  }

  /** Reads tasks by their IDs (one round trip), in the order given; `null` for absent ones. */
  async getMany(ids: readonly string[]): Promise<(DecodeResult | null)[]> {
    if (ids.length === 0) return [];
    const snaps = await this.call(this.firestore.getAll(...ids.map((id) => this.ref(this.docId(id)))), 'read tasks');
    this.ops.read(snaps.length);
    return snaps.map((snap) => (snap.exists ? this.decode(snap.data()) : null));
  }

  /** Decodes a document and checks it belongs to this environment. */
  decode(raw: DocumentData | undefined): DecodeResult {
    const decoded = decodeStoredTask(raw);
    if (decoded.ok && decoded.task.env !== this.env) {
      return { ok: false, reason: `field "env": belongs to "${decoded.task.env}", not "${this.env}"` };
    }
    return decoded;
  }

  /**
   * Runs a query within the call deadline, counting its billed reads.
   * @internal Shared with {@link TaskListing} and {@link QueueQueries}.
   */
  async run(q: Query, what: string): Promise<QuerySnapshot> {
    const snap = await this.call(q.get(), what);
    this.ops.query(snap.size);
    return snap;
  }

  /** Which of these task IDs exist (one round trip). */
  async existing(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const snaps = await this.call(this.firestore.getAll(...ids.map((id) => this.ref(this.docId(id)))), 'read tasks');
    this.ops.read(snaps.length);
    return new Set(ids.filter((_, i) => snaps[i]!.exists));
  }

  /** @internal Shared with {@link TaskListing} and {@link QueueQueries}. */
  split(docs: readonly DocumentSnapshot[]): { tasks: VersionedTask[]; malformed: MalformedDocument[] } {
    const tasks: VersionedTask[] = [];
    const malformed: MalformedDocument[] = [];
    for (const doc of docs) {
      const decoded = this.decode(doc.data());
      if (decoded.ok) tasks.push({ docId: doc.id, task: decoded.task, updateTime: doc.updateTime! });
      else malformed.push({ docId: doc.id, reason: decoded.reason, updateTime: doc.updateTime! });
    }
    return { tasks, malformed };
  }

  // ---- the worker path's queue reads (QueueQueries) -------------------------------------

  /** Tasks of a kind's queue due by `now`, in queue order, a page at a time; see {@link QueueQueries.findClaimable}. */
  findClaimable(
    kind: string,
    statuses: readonly TaskStatus[],
    now: Date,
    limit: number,
    options: ClaimableOptions = {},
  ): Promise<{ tasks: VersionedTask[]; malformed: MalformedDocument[]; next: ClaimCursor | null }> {
    return this.queueQueries.findClaimable(kind, statuses, now, limit, options);
  }

  /** When the kind's next task comes due (a running one: when its lease expires); null if none. */
  nextDueAt(kind: string, statuses: readonly TaskStatus[]): Promise<Date | null> {
    return this.queueQueries.nextDueAt(kind, statuses);
  }

  /** One resource key's tasks in the given statuses, in queue order. */
  findByResourceKey(kind: string, resourceKey: string, statuses: readonly TaskStatus[], limit: number): Promise<{ tasks: VersionedTask[]; malformed: MalformedDocument[] }> {
    return this.queueQueries.findByResourceKey(kind, resourceKey, statuses, limit);
  }

  // ---- listeners ------------------------------------------------------------------------

  /**
   * Listens to the first `size` tasks of a kind's queue by due time; see {@link watchQueueHead}.
   * Returns the unsubscribe function.
   */
  watchHead(kind: string, statuses: readonly TaskStatus[], size: number, onWindow: WindowCallback, onError: (err: Error) => void): () => void {
    return watchQueueHead(this, kind, statuses, size, onWindow, onError);
  }

  /**
   * Listens to one task's document: `onChange` gets it on the first snapshot and on every change
   * (null while it does not exist), with its version; `onError` if the listener dies (it is then
   * closed). Returns the unsubscribe function (idempotent). Billed: 1 read for the first
   * snapshot and 1 per change. {@link liveListeners} counts the listeners open.
   */
  watchTask(id: string, onChange: (decoded: DecodeResult | null, docId: string) => void, onError: (err: Error) => void): () => void {
    const docId = this.docId(id);
    let open = true;
    const close = (): void => {
      if (!open) return;
      open = false;
      this.openTaskListeners--;
      unsubscribe();
    };
    const unsubscribe = this.ref(docId).onSnapshot(
      (snap) => {
        if (!open) return;
        this.ops.listener(1);
        onChange(snap.exists ? this.decode(snap.data()) : null, docId);
      },
      (err) => {
        if (!open) return;
        close();
        onError(err);
      },
    );
    this.openTaskListeners++; // (after onSnapshot, which may throw; its callbacks come later)
    return close;
  }

  /** How many task-document listeners ({@link watchTask}: `waitFor`, `watch`) are open now. */
  get liveListeners(): number {
    return this.openTaskListeners;
  }

  // ---- conditional writes ---------------------------------------------------------------

  /**
   * Updates the task (with `fields` null: deletes it) only if it has not changed since
   * `updateTime`. No transaction and no lock: two workers racing for one document cost one
   * failed precondition, never a stall.
   */
  async updateIfUnchanged(docId: string, fields: TaskFields | null, updateTime: Timestamp, options?: WriteOptions): Promise<ConditionalWriteResult> {
    return this.batcher.update(this.ref(docId), fields, updateTime, options);
  }

  /**
   * Commits task and lock writes atomically, each with its precondition. Returns the new
   * versions in order, or why not (see {@link ConditionalWriter.commit}).
   */
  async commitConditional(writes: readonly ConditionalWrite[], options?: WriteOptions): ReturnType<ConditionalWriter['commit']> {
    const only = writes[0];
    if (writes.length === 1 && only!.target === 'task' && only!.precondition !== 'absent') {
      // A single task write (a claim without a key lock): coalesced with others.
      const result = await this.batcher.update(this.ref(only!.docId), only!.fields, only!.precondition, options);
      return result.ok ? [result.updateTime] : result.reason === 'missing' ? { ok: false, reason: 'missing', current: null } : { ok: false, reason: 'conflict', current: result.current };
    }
    const mapped: RefWrite[] = writes.map((w) => ({
      ref: w.target === 'task' ? this.ref(w.docId) : this.locks.ref(w.docId),
      // A task created here (a spawned occurrence) gets its shard like any other.
      fields: w.target === 'task' && w.precondition === 'absent' && w.fields !== null ? this.withShard(w.docId, w.fields) : w.fields,
      precondition: w.precondition,
    }));
    return this.commits.commit(mapped, options);
  }

  /** Like {@link commitConditional}, answering `'exists'` or `'conflict'` (missing counts as a conflict). */
  async commitConditionalDetailed(writes: readonly ConditionalWrite[], options?: WriteOptions): Promise<Timestamp[] | 'conflict' | 'exists'> {
    const result = await this.commitConditional(writes, options);
    return Array.isArray(result) ? result : result.reason === 'exists' ? 'exists' : 'conflict';
  }

  // ---- admin writes (AdminWrites) -------------------------------------------------------

  /** Optimistic read-decide-write of one task for admin operations; see {@link AdminWrites.mutate}. */
  mutate(id: string, decide: (task: StoredTask) => TaskFields | null): Promise<MutateResult> {
    return this.adminWrites.mutate(id, decide);
  }

  /** Deletes a task; true when it existed. */
  delete(id: string): Promise<boolean> {
    return this.adminWrites.delete(id);
  }

  /** Deletes many tasks (at most 16 requests in flight); returns how many existed. */
  deleteMany(ids: readonly string[]): Promise<number> {
    return this.adminWrites.deleteMany(ids);
  }
}
