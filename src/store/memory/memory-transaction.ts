import { checkRef, QueuedWrites } from './memory-batch.js';
import { CODE, MemoryFirestoreError } from './memory-errors.js';
import type { MemoryFirestore } from './memory-firestore.js';
import { executeQuery } from './memory-query-engine.js';
import { MemoryAggregateQuery, MemoryQuery } from './memory-query.js';
import type { MemoryDocumentReference } from './memory-reference.js';
import { MemoryAggregateQuerySnapshot, MemoryDocumentChange, MemoryDocumentSnapshot, MemoryQueryDocumentSnapshot, MemoryQuerySnapshot } from './memory-snapshots.js';

/**
 * Transactions of the in-memory database, optimistic: reads record the versions they saw, and
 * the commit applies the writes only if every document and query read is unchanged (checked
 * and applied in one synchronous step, so nothing can slip in between); otherwise the attempt
 * is ABORTED and the update function runs again, up to `maxAttempts` (5, as the SDK). The
 * outcome is the serializable one Firestore's locking gives: a transaction's writes apply
 * only on top of exactly what it read. Reads come before writes, as the SDK requires.
 */

const READ_AFTER_WRITE = 'Firestore transactions require all reads to be executed before all writes.';

/** `setImmediate` as loaded (see memory-listeners.ts): the pause before another attempt. */
const pause: () => Promise<void> = ((immediate) => () => new Promise<void>((resolve) => void immediate(resolve)))(setImmediate);

/** One attempt of a transaction. */
export class MemoryTransaction extends QueuedWrites {
  /** Version (micros; null: absent) of each document as first read. */
  private readonly seen = new Map<string, number | null>();
  /** Each query read, and the fingerprint of its result. */
  private readonly queries: { query: MemoryQuery; fingerprint: string }[] = [];

  constructor(
    firestore: MemoryFirestore,
    private readonly readOnly: boolean,
  ) {
    super(firestore);
  }

  /** Reads a document, a query, or a count (before any write of this transaction). */
  get(ref: MemoryDocumentReference): Promise<MemoryDocumentSnapshot>;
  get(query: MemoryQuery): Promise<MemoryQuerySnapshot>;
  get(aggregate: MemoryAggregateQuery): Promise<MemoryAggregateQuerySnapshot>;
  get(target: MemoryDocumentReference | MemoryQuery | MemoryAggregateQuery): Promise<MemoryDocumentSnapshot | MemoryQuerySnapshot | MemoryAggregateQuerySnapshot> {
    if (this.writes.length > 0) throw new Error(READ_AFTER_WRITE);
    if (target instanceof MemoryQuery || target instanceof MemoryAggregateQuery) {
      const query = target instanceof MemoryQuery ? target : target.query;
      try {
        this.firestore._checkOpen();
        const rows = executeQuery(query._spec, this.firestore._engine);
        this.queries.push({ query, fingerprint: fingerprint(rows.map((r) => r.doc)) });
        const readTime = this.firestore._engine.clock.now();
        if (target instanceof MemoryAggregateQuery) return Promise.resolve(new MemoryAggregateQuerySnapshot(query, readTime, rows.length));
        const docs = rows.map((r) => new MemoryQueryDocumentSnapshot(this.firestore.doc(r.doc.path), r.doc, readTime));
        return Promise.resolve(new MemoryQuerySnapshot(query, docs, readTime, docs.map((d, i) => new MemoryDocumentChange('added', d, -1, i))));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return this.getAll(checkRef(this.firestore, target)).then((snaps) => snaps[0]!);
  }

  /** Reads documents in one call (before any write of this transaction). */
  getAll(...refs: MemoryDocumentReference[]): Promise<MemoryDocumentSnapshot[]> {
    if (this.writes.length > 0) throw new Error(READ_AFTER_WRITE);
    return this.firestore._read(refs).then((snaps) => {
      for (const snap of snaps) if (!this.seen.has(snap.ref.path)) this.seen.set(snap.ref.path, snap.updateTime?.toMicros() ?? null);
      return snaps;
    });
  }

  protected accept(): void {
    if (this.readOnly) throw new Error('Firestore read-only transactions cannot execute writes.');
  }

  /** @internal Commits the writes if nothing read has changed; throws ABORTED if something has. */
  _commit(): void {
    this.firestore._checkOpen();
    if (this.writes.length === 0 && this.seen.size === 0 && this.queries.length === 0) return;
    const verify = (): void => {
      const engine = this.firestore._engine;
      for (const [path, version] of this.seen) {
        const now = engine.read(path)?.updateTime.toMicros() ?? null;
        if (now !== version) throw new MemoryFirestoreError(CODE.ABORTED, `Transaction lock timeout: ${path} changed since it was read.`);
      }
      for (const { query, fingerprint: before } of this.queries) {
        if (fingerprint(executeQuery(query._spec, engine).map((r) => r.doc)) !== before) {
          throw new MemoryFirestoreError(CODE.ABORTED, 'Transaction lock timeout: a query result changed since it was read.');
        }
      }
    };
    this.firestore._engine.commit(this.writes, verify);
  }
}

/** Identifies a result: its documents and their versions, in order. */
function fingerprint(docs: readonly { path: string; updateTime: { toMicros(): number } }[]): string {
  return docs.map((d) => `${d.path}@${d.updateTime.toMicros()}`).join('\n');
}

/** Options of `runTransaction`. */
export interface TransactionOptions {
  maxAttempts?: number;
  readOnly?: boolean;
}

/**
 * Runs `updateFunction` in a transaction and commits what it wrote; retries from the start
 * when something it read changed before the commit. The function's error (or a refused
 * commit's) rejects the result, and nothing of that attempt is applied.
 */
export async function runTransaction<T>(firestore: MemoryFirestore, updateFunction: (tx: MemoryTransaction) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
  if (typeof updateFunction !== 'function') throw new Error('Value for argument "updateFunction" is not a valid function.');
  const maxAttempts = options.maxAttempts ?? 5;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new Error('Value for argument "transactionOptions.maxAttempts" must be within [1, Infinity] inclusive.');
  firestore._checkOpen();
  for (let attempt = 1; ; attempt++) {
    const tx = new MemoryTransaction(firestore, options.readOnly === true);
    const result = await updateFunction(tx);
    try {
      tx._commit();
      return result;
    } catch (err) {
      if (!(err instanceof MemoryFirestoreError) || err.code !== CODE.ABORTED || attempt >= maxAttempts) throw err;
    }
    await pause();
  }
}
