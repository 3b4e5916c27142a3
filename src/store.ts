import { createHash, randomUUID } from 'node:crypto';
import type {
  CollectionReference,
  DocumentData,
  DocumentReference,
  DocumentSnapshot,
  Firestore,
  Query,
  QuerySnapshot,
  Timestamp,
  Transaction,
  WriteBatch,
} from '@google-cloud/firestore';
import pLimit from 'p-limit';
import { MalformedTaskError } from './errors.js';
import { OperationCounter } from './op-stats.js';
import { keyLockSchema, type KeyLock } from './key-lock.js';
import { QUERY_SHAPES, type QueryShape, type QueryShapeName } from './query-shapes.js';
import { decodeStoredTask, type DecodeResult, type StoredTask, type TaskStatus } from './task-document.js';

/**
 * The one module that talks to Firestore. Everything else asks the store; nothing else builds
 * a query or a write. No runtime value is imported from `@google-cloud/firestore`, so the
 * instance from firebase-admin's `getFirestore()` (which may bundle its own copy) works too.
 */

/** gRPC status codes the store reacts to. */
const GRPC = { NOT_FOUND: 5, ALREADY_EXISTS: 6, FAILED_PRECONDITION: 9 } as const;
/**
 * Codes after which a write may or may not have been applied (CANCELLED, UNKNOWN,
 * DEADLINE_EXCEEDED, UNAVAILABLE). The store then reads the document back and looks for the
 * `rev` it wrote. (The emulator answers UNKNOWN or CANCELLED to writes it did apply when a
 * listener closes meanwhile.)
 */
const AMBIGUOUS = new Set([1, 2, 4, 14]);
/** How often an ambiguous write that turned out not applied is tried again. */
const MAX_AMBIGUOUS_RETRIES = 3;

/** A random revision stamped on every write, so an ambiguous outcome can be checked. */
function newRev(): string {
  return randomUUID();
}

function grpcCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

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

/** A key lock read together with its version (`null` lock: no document yet). */
export interface VersionedLock {
  docId: string;
  lock: KeyLock | null;
  updateTime: Timestamp | null;
}

/** One write of an atomic conditional commit. */
export interface ConditionalWrite {
  target: 'task' | 'lock';
  docId: string;
  fields: TaskFields;
  /** Update only if unchanged since this version; `'absent'` creates and fails if it exists. */
  precondition: Timestamp | 'absent';
}

/** Where the next page of claimable tasks starts. */
export type ClaimCursor = { readonly __brand: 'ClaimCursor' };

/** Outcome of a conditional write. */
export type ConditionalWriteResult = { ok: true; updateTime: Timestamp } | { ok: false; reason: 'conflict' | 'missing' };

/** Fields of a document as written (Dates become Timestamps in Firestore). */
export type TaskFields = Record<string, unknown>;

/** Name of the collection holding the resource-key locks of a task collection. */
export function lockCollectionName(collectionName: string): string {
  return `${collectionName}_keys`;
}

/** Observer of issued query shapes; the index test uses it to see every query the library runs. */
let queryObserver: ((shape: QueryShapeName) => void) | undefined;

/** @internal Test hook: called with the shape name of every query the store issues. */
export function observeQueries(observer: ((shape: QueryShapeName) => void) | undefined): void {
  queryObserver = observer;
}

/** Firestore access for one collection and one environment. */
export class TaskStore {
  readonly firestore: Firestore;
  readonly env: string;
  /** Billed operations this store caused. */
  readonly ops = new OperationCounter();
  private readonly collection: CollectionReference;
  private readonly locks: CollectionReference;

  constructor(firestore: Firestore, collectionName: string, env: string) {
    this.firestore = firestore;
    this.env = env;
    this.collection = firestore.collection(collectionName);
    this.locks = firestore.collection(lockCollectionName(collectionName));
  }

  /** Document ID of a resource key's lock: a hash, since keys may hold any character. */
  lockDocId(kind: string, resourceKey: string): string {
    return createHash('sha256').update(this.env).update('\u0000').update(kind).update('\u0000').update(resourceKey).digest('hex').slice(0, 40);
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

  private lockRef(docId: string): DocumentReference {
    return this.locks.doc(docId);
  }

  // ---- creating -------------------------------------------------------------------------

  /** Creates the task unless its document exists; true when created. */
  async create(id: string, fields: TaskFields): Promise<boolean> {
    const ref = this.ref(this.docId(id));
    const rev = newRev();
    for (let attempt = 0; ; attempt++) {
      try {
        await ref.create({ ...fields, rev });
        this.ops.write();
        return true;
      } catch (err) {
        const code = grpcCode(err);
        if (code !== GRPC.ALREADY_EXISTS && !(AMBIGUOUS.has(code ?? -1) && attempt < MAX_AMBIGUOUS_RETRIES)) throw err;
        // Exists: ours (an earlier, ambiguous attempt landed) or someone else's? Missing: try again.
        const snap = await ref.get();
        this.ops.read();
        if (snap.exists) {
          if (snap.get('rev') === rev) {
            this.ops.write();
            return true;
          }
          this.ops.refused();
          return false;
        }
        if (code === GRPC.ALREADY_EXISTS) throw err;
      }
    }
  }

  /** Inside a caller's transaction: reads the document (reads must come first) and creates it if absent. */
  async createInTransaction(tx: Transaction, id: string, fields: TaskFields): Promise<boolean> {
    const ref = this.ref(this.docId(id));
    const snap = await tx.get(ref);
    this.ops.read();
    if (snap.exists) return false;
    tx.create(ref, { ...fields, rev: newRev() });
    this.ops.write();
    return true;
  }

  /**
   * Adds a create to a caller's batch unless the task exists now. A batch cannot read, so a
   * task created between this check and the commit makes the commit fail with ALREADY_EXISTS.
   */
  async createInBatch(batch: WriteBatch, id: string, fields: TaskFields): Promise<boolean> {
    const ref = this.ref(this.docId(id));
    const snap = await ref.get();
    this.ops.read();
    if (snap.exists) return false;
    batch.create(ref, { ...fields, rev: newRev() });
    this.ops.write();
    return true;
  }

  /** Creates many tasks with a BulkWriter; returns, per item, whether it was new. */
  async createMany(items: readonly { id: string; fields: TaskFields }[]): Promise<boolean[]> {
    const writer = this.firestore.bulkWriter();
    const revs = items.map(() => newRev());
    const unsure: number[] = [];
    const outcomes = items.map(({ id, fields }, i) =>
      writer.create(this.ref(this.docId(id)), { ...fields, rev: revs[i] }).then(
        () => {
          this.ops.write();
          return true;
        },
        (err: unknown) => {
          const code = grpcCode(err) ?? -1;
          if (code !== GRPC.ALREADY_EXISTS && !AMBIGUOUS.has(code)) throw err;
          unsure.push(i); // exists (maybe from our own retried write) or unknown: checked below
          return false;
        },
      ),
    );
    // close() flushes; the per-write promises carry each outcome.
    const settled = await Promise.allSettled([...outcomes, writer.close()]);
    const failure = settled.find((s) => s.status === 'rejected');
    if (failure && failure.status === 'rejected') throw failure.reason;
    const created = settled.slice(0, items.length).map((s) => (s as PromiseFulfilledResult<boolean>).value);
    if (unsure.length > 0) {
      const snaps = await this.firestore.getAll(...unsure.map((i) => this.ref(this.docId(items[i]!.id))));
      this.ops.read(snaps.length);
      for (const [k, i] of unsure.entries()) {
        const snap = snaps[k]!;
        if (!snap.exists) created[i] = await this.create(items[i]!.id, items[i]!.fields);
        else if (snap.get('rev') === revs[i]) {
          this.ops.write();
          created[i] = true;
        } else this.ops.refused();
      }
    }
    return created;
  }

  // ---- reading --------------------------------------------------------------------------

  /** Reads one task by document ID; `null` when absent. */
  async readDoc(docId: string): Promise<{ docId: string; decoded: DecodeResult; updateTime: Timestamp } | null> {
    const snap = await this.ref(docId).get();
    this.ops.read();
    if (!snap.exists || !snap.updateTime) return null;
    return { docId, decoded: this.decode(snap.data()), updateTime: snap.updateTime };
  }

  /** Reads tasks by their IDs (one round trip), in the order given; `null` for absent ones. */
  async getMany(ids: readonly string[]): Promise<(DecodeResult | null)[]> {
    if (ids.length === 0) return [];
    const snaps = await this.firestore.getAll(...ids.map((id) => this.ref(this.docId(id))));
    this.ops.read(snaps.length);
    return snaps.map((snap) => (snap.exists ? this.decode(snap.data()) : null));
  }

  /** Decodes a document and checks it belongs to this environment. */
  private decode(raw: DocumentData | undefined): DecodeResult {
    const decoded = decodeStoredTask(raw);
    if (decoded.ok && decoded.task.env !== this.env) {
      return { ok: false, reason: `field "env": belongs to "${decoded.task.env}", not "${this.env}"` };
    }
    return decoded;
  }

  /** Runs a query, counting its billed reads. */
  private async run(q: Query): Promise<QuerySnapshot> {
    const snap = await q.get();
    this.ops.query(snap.size);
    return snap;
  }

  private query(shape: QueryShapeName, values: Record<string, unknown>, upTo?: unknown): Query {
    const spec: QueryShape = QUERY_SHAPES[shape];
    let q: Query = this.collection;
    for (const field of spec.equals) {
      const value = values[field];
      q = Array.isArray(value) ? q.where(field, 'in', value) : q.where(field, '==', value);
    }
    if (spec.range !== undefined) q = q.where(spec.range, '<=', upTo);
    for (const clause of spec.orderBy) q = q.orderBy(clause.field, clause.direction);
    queryObserver?.(shape);
    return q;
  }

  /**
   * The head of a kind's queue: tasks due by `now` (pending, cancelling, or running under an
   * expired lease) in queue order, a page at a time. Malformed documents are returned apart.
   */
  async findClaimable(
    kind: string,
    statuses: readonly TaskStatus[],
    now: Date,
    limit: number,
    after?: ClaimCursor,
  ): Promise<{ tasks: VersionedTask[]; malformed: MalformedDocument[]; next: ClaimCursor | null }> {
    let q = this.query('claimable', { env: this.env, kind, status: [...statuses] }, now);
    if (after) q = q.startAfter(after as unknown as DocumentSnapshot);
    const snap = await this.run(q.limit(limit));
    const last = snap.docs[snap.docs.length - 1];
    return { ...this.split(snap.docs), next: snap.docs.length === limit && last ? (last as unknown as ClaimCursor) : null };
  }

  /** When the kind's next task comes due (a running one: when its lease expires); null if none. */
  async nextDueAt(kind: string, statuses: readonly TaskStatus[]): Promise<Date | null> {
    const snap = await this.run(this.query('nextDue', { env: this.env, kind, status: [...statuses] }).limit(1));
    const decoded = snap.docs[0] ? this.decode(snap.docs[0].data()) : null;
    return decoded?.ok ? decoded.task.waitUntil : null;
  }

  /**
   * Listens to the head of a kind's queue (the next task to come due, a running one's lease
   * expiry included). Calls `onHead` on every change with its due time (null: empty queue) and
   * the task itself, or the document apart if it is malformed (a bad due time, say, which no
   * claim query would ever return), and
   * `onError` if the listener dies. Returns the unsubscribe function.
   */
  watchHead(
    kind: string,
    statuses: readonly TaskStatus[],
    onHead: (dueAt: Date | null, head: VersionedTask | null, malformed: MalformedDocument | null) => void,
    onError: (err: Error) => void,
  ): () => void {
    let first = true;
    return this.query('nextDue', { env: this.env, kind, status: [...statuses] })
      .limit(1)
      .onSnapshot(
        (snap) => {
          // Billed: the initial result (at least one read), then each document entering or changing.
          const changed = snap.docChanges().filter((c) => c.type !== 'removed').length;
          this.ops.listener(first ? Math.max(1, snap.size) : changed);
          first = false;
          const doc = snap.docs[0];
          const head = doc ? this.decode(doc.data()) : null;
          if (!doc || head === null) onHead(null, null, null);
          else if (!head.ok) onHead(null, null, { docId: doc.id, reason: head.reason, updateTime: doc.updateTime });
          else onHead(head.task.waitUntil, { docId: doc.id, task: head.task, updateTime: doc.updateTime }, null);
        },
        onError,
      );
  }

  /** One resource key's tasks in the given statuses, in queue order. */
  async findByResourceKey(
    kind: string,
    resourceKey: string,
    statuses: readonly TaskStatus[],
    limit: number,
  ): Promise<{ tasks: VersionedTask[]; malformed: MalformedDocument[] }> {
    const snap = await this.run(this.query('keyQueue', { env: this.env, kind, resourceKey, status: [...statuses] }).limit(limit));
    return this.split(snap.docs);
  }

  /** All of one resource key's tasks in queue order. */
  async listByResourceKey(kind: string, resourceKey: string, limit: number): Promise<{ tasks: VersionedTask[]; malformed: MalformedDocument[] }> {
    const snap = await this.run(this.query('listByResourceKey', { env: this.env, kind, resourceKey }).limit(limit));
    return this.split(snap.docs);
  }

  /** Which of these task IDs exist (one round trip). */
  async existing(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const snaps = await this.firestore.getAll(...ids.map((id) => this.ref(this.docId(id))));
    this.ops.read(snaps.length);
    return new Set(ids.filter((_, i) => snaps[i]!.exists));
  }

  /** The occurrences a generator spawned, by slot. */
  async listOccurrences(generatorId: string, limit: number): Promise<{ tasks: VersionedTask[]; malformed: MalformedDocument[] }> {
    const snap = await this.run(this.query('occurrences', { env: this.env, generatorId }).limit(limit));
    return this.split(snap.docs);
  }

  /** Environments other than ours that hold a task with this ID (to explain a refusal). */
  async otherEnvironmentsOf(id: string): Promise<string[]> {
    const snap = await this.run(this.query('byIdInAnyEnv', { id }).limit(10));
    const envs = snap.docs.map((d) => d.get('env') as unknown).filter((e): e is string => typeof e === 'string' && e !== this.env);
    return [...new Set(envs)];
  }

  private split(docs: readonly DocumentSnapshot[]): { tasks: VersionedTask[]; malformed: MalformedDocument[] } {
    const tasks: VersionedTask[] = [];
    const malformed: MalformedDocument[] = [];
    for (const doc of docs) {
      const decoded = this.decode(doc.data());
      if (decoded.ok) tasks.push({ docId: doc.id, task: decoded.task, updateTime: doc.updateTime! });
      else malformed.push({ docId: doc.id, reason: decoded.reason, updateTime: doc.updateTime! });
    }
    return { tasks, malformed };
  }

  /** Reads the locks of resource keys (one round trip). A malformed lock reads as free-to-overwrite. */
  async readLocks(kind: string, keys: readonly string[]): Promise<Map<string, VersionedLock>> {
    const result = new Map<string, VersionedLock>();
    if (keys.length === 0) return result;
    const docIds = keys.map((key) => this.lockDocId(kind, key));
    const snaps = await this.firestore.getAll(...docIds.map((id) => this.lockRef(id)));
    this.ops.read(snaps.length);
    snaps.forEach((snap, i) => {
      const parsed = snap.exists ? keyLockSchema.safeParse(snap.data()) : null;
      result.set(keys[i]!, {
        docId: docIds[i]!,
        lock: parsed?.success ? parsed.data : null,
        updateTime: snap.exists ? snap.updateTime! : null,
      });
    });
    return result;
  }

  /** Reads one lock. */
  async readLock(docId: string): Promise<{ lock: KeyLock | null; updateTime: Timestamp } | null> {
    const snap = await this.lockRef(docId).get();
    this.ops.read();
    if (!snap.exists) return null;
    const parsed = keyLockSchema.safeParse(snap.data());
    return { lock: parsed.success ? parsed.data : null, updateTime: snap.updateTime! };
  }

  /**
   * Commits writes atomically, each with its precondition, in one batch (no transaction, no
   * locks). Returns the new versions in order, or `null` if any precondition failed.
   */
  async commitConditional(writes: readonly ConditionalWrite[]): Promise<Timestamp[] | null> {
    const result = await this.commitConditionalDetailed(writes);
    return Array.isArray(result) ? result : null;
  }

  /** Like {@link commitConditional}, telling an existing create target (`exists`) from a changed document. */
  async commitConditionalDetailed(writes: readonly ConditionalWrite[]): Promise<Timestamp[] | 'conflict' | 'exists'> {
    const rev = newRev();
    const refOf = (w: ConditionalWrite): DocumentReference => (w.target === 'task' ? this.ref(w.docId) : this.lockRef(w.docId));
    for (let attempt = 0; ; attempt++) {
      const batch = this.firestore.batch();
      for (const w of writes) {
        if (w.precondition === 'absent') batch.create(refOf(w), { ...w.fields, rev });
        else batch.update(refOf(w), { ...w.fields, rev }, { lastUpdateTime: w.precondition });
      }
      try {
        const results = await batch.commit();
        this.ops.write(results.length);
        return results.map((r) => r.writeTime);
      } catch (err) {
        const code = grpcCode(err);
        if (code === GRPC.ALREADY_EXISTS || code === GRPC.FAILED_PRECONDITION || code === GRPC.NOT_FOUND) {
          this.ops.refused();
          return code === GRPC.ALREADY_EXISTS ? 'exists' : 'conflict';
        }
        if (!AMBIGUOUS.has(code ?? -1) || attempt >= MAX_AMBIGUOUS_RETRIES || writes.length === 0) throw err;
        // The commit is atomic: the first document tells whether all of it landed.
        const snap = await refOf(writes[0]!).get();
        this.ops.read();
        if (snap.exists && snap.get('rev') === rev) {
          this.ops.write(writes.length);
          return writes.map(() => snap.updateTime!);
        }
        const first = writes[0]!;
        const unchanged = first.precondition === 'absent' ? !snap.exists : snap.exists && snap.updateTime!.isEqual(first.precondition);
        if (!unchanged) return 'conflict';
      }
    }
  }

  /** Conditional update of a lock document (see {@link updateIfUnchanged}). */
  async updateLockIfUnchanged(docId: string, fields: TaskFields, updateTime: Timestamp): Promise<ConditionalWriteResult> {
    return this.conditionalUpdate(this.lockRef(docId), fields, updateTime);
  }

  /** Counts a kind's tasks in one status with an aggregation query (1 read per 1000 entries). */
  async countByStatus(kind: string, status: TaskStatus): Promise<number> {
    const snap = await this.query('countByStatus', { env: this.env, kind, status }).count().get();
    const { count } = snap.data();
    this.ops.query(Math.ceil(count / 1000));
    return count;
  }

  /** One page of tasks, newest first, after the `(createdAt, docId)` cursor if given. */
  async list(filter: {
    kind?: string;
    status?: TaskStatus;
    limit: number;
    after?: { createdAt: Date; docId: string };
  }): Promise<{ items: { docId: string; decoded: DecodeResult; createdAt: Date | null }[]; hasMore: boolean }> {
    const shape: QueryShapeName =
      filter.kind !== undefined && filter.status !== undefined
        ? 'listByKindAndStatus'
        : filter.kind !== undefined
          ? 'listByKind'
          : filter.status !== undefined
            ? 'listByStatus'
            : 'listAll';
    let q = this.query(shape, { env: this.env, kind: filter.kind, status: filter.status });
    if (filter.after) q = q.startAfter(filter.after.createdAt, filter.after.docId);
    const snap = await this.run(q.limit(filter.limit + 1));
    const docs = snap.docs.slice(0, filter.limit);
    return {
      items: docs.map((doc) => {
        const decoded = this.decode(doc.data());
        const createdAt = decoded.ok ? decoded.task.createdAt : null;
        return { docId: doc.id, decoded, createdAt };
      }),
      hasMore: snap.docs.length > filter.limit,
    };
  }

  // ---- conditional writes ---------------------------------------------------------------

  /**
   * Updates the document only if it has not changed since `updateTime`. No transaction and no
   * lock: two workers racing for one document cost one failed precondition, never a stall.
   */
  async updateIfUnchanged(docId: string, fields: TaskFields, updateTime: Timestamp): Promise<ConditionalWriteResult> {
    return this.conditionalUpdate(this.ref(docId), fields, updateTime);
  }

  private async conditionalUpdate(ref: DocumentReference, fields: TaskFields, updateTime: Timestamp): Promise<ConditionalWriteResult> {
    const rev = newRev();
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await ref.update({ ...fields, rev }, { lastUpdateTime: updateTime });
        this.ops.write();
        return { ok: true, updateTime: result.writeTime };
      } catch (err) {
        const code = grpcCode(err);
        if (code === GRPC.FAILED_PRECONDITION || code === GRPC.NOT_FOUND) {
          this.ops.refused();
          return { ok: false, reason: code === GRPC.NOT_FOUND ? 'missing' : 'conflict' };
        }
        if (!AMBIGUOUS.has(code ?? -1) || attempt >= MAX_AMBIGUOUS_RETRIES) throw err;
        const snap = await ref.get();
        this.ops.read();
        if (!snap.exists) return { ok: false, reason: 'missing' };
        if (snap.get('rev') === rev) {
          this.ops.write();
          return { ok: true, updateTime: snap.updateTime! };
        }
        if (!snap.updateTime!.isEqual(updateTime)) return { ok: false, reason: 'conflict' };
        // Not applied and nothing changed: try again.
      }
    }
  }

  /**
   * Optimistic read-decide-write loop for admin operations. `decide` sees the current task and
   * returns the fields to write, or `null` to leave it. Returns what happened.
   */
  async mutate(
    id: string,
    decide: (task: StoredTask) => TaskFields | null,
  ): Promise<{ outcome: 'updated'; task: StoredTask } | { outcome: 'unchanged'; task: StoredTask } | { outcome: 'missing' }> {
    const docId = this.docId(id);
    for (let attempt = 0; ; attempt++) {
      const current = await this.readDoc(docId);
      if (!current) return { outcome: 'missing' };
      if (!current.decoded.ok) throw new MalformedTaskError(docId, current.decoded.reason);
      const fields = decide(current.decoded.task);
      if (fields === null) return { outcome: 'unchanged', task: current.decoded.task };
      const written = await this.updateIfUnchanged(docId, fields, current.updateTime);
      if (written.ok) return { outcome: 'updated', task: current.decoded.task };
      if (written.reason === 'missing') return { outcome: 'missing' };
      if (attempt >= 20) throw new Error(`task "${id}" kept changing while being updated`);
    }
  }

  /** Deletes a task; true when it existed. */
  async delete(id: string): Promise<boolean> {
    const ref = this.ref(this.docId(id));
    for (let attempt = 0; ; attempt++) {
      try {
        await ref.delete({ exists: true });
        this.ops.delete();
        return true;
      } catch (err) {
        const code = grpcCode(err);
        if (code === GRPC.NOT_FOUND) return false;
        if (!AMBIGUOUS.has(code ?? -1) || attempt >= MAX_AMBIGUOUS_RETRIES) throw err;
        // Gone now means our delete landed (or a concurrent one did: either way it existed).
        const snap = await ref.get();
        this.ops.read();
        if (!snap.exists) {
          this.ops.delete();
          return true;
        }
      }
    }
  }

  /** Deletes many tasks (at most 16 requests in flight); returns how many existed. */
  async deleteMany(ids: readonly string[]): Promise<number> {
    const limit = pLimit(16);
    const deleted = await Promise.all([...new Set(ids)].map((id) => limit(() => this.delete(id))));
    return deleted.filter(Boolean).length;
  }
}
