import { MemoryBulkWriter, MemoryWriteBatch } from './memory-batch.js';
import { MemoryEngine } from './memory-engine.js';
import { TERMINATED_MESSAGE, unsupported } from './memory-errors.js';
import { ListenerRegistry } from './memory-listeners.js';
import type { WriteOp } from './memory-mutations.js';
import { checkPath, MemoryCollectionReference, MemoryDocumentReference } from './memory-reference.js';
import { MemoryDocumentSnapshot, MemoryWriteResult } from './memory-snapshots.js';
import { runTransaction, type MemoryTransaction, type TransactionOptions } from './memory-transaction.js';
import type { EncodeOptions } from './memory-values.js';

/**
 * An in-memory document database with the subset of the `@google-cloud/firestore` API that
 * oncetask's storage layer uses, and Firestore's semantics for it: documents copied in and out,
 * versions (`updateTime`) on every change, preconditions with Firestore's error codes, atomic
 * batches, bulk writers, queries with Firestore's ordering and cursors, counts, snapshot
 * listeners, and (optimistic) transactions. Everything runs in this process; several managers
 * sharing one instance behave like several processes sharing one Firestore database.
 *
 * Pass it where a `Firestore` is expected with a cast at that one boundary:
 * `new OnceTaskManager({ firestore: db as unknown as Firestore, ... })`.
 */

/** Options of {@link MemoryFirestore}. */
export interface MemoryFirestoreOptions {
  /** Drop `undefined` properties instead of refusing them (the SDK setting of the same name). Default false. */
  ignoreUndefinedProperties?: boolean;
}

/** One in-memory database: the SDK's `Firestore` surface over a {@link MemoryEngine}. */
export class MemoryFirestore {
  /** @internal The storage. */
  readonly _engine = new MemoryEngine();
  /** @internal How written values are checked and converted. */
  readonly _encodeOptions: EncodeOptions;
  /** @internal The snapshot listeners. */
  readonly _listeners: ListenerRegistry;
  /** @internal Bulk writers not yet closed (`terminate()` refuses while any is open, as the SDK's). */
  _bulkWriters = 0;
  /** @internal Whether `terminate()` has run: every later call fails, as on a terminated SDK client. */
  _terminated = false;

  constructor(options: MemoryFirestoreOptions = {}) {
    this._encodeOptions = { ignoreUndefinedProperties: options.ignoreUndefinedProperties === true };
    this._listeners = new ListenerRegistry(this);
  }

  /** A collection by its slash-separated path (an odd number of segments). */
  collection(collectionPath: string): MemoryCollectionReference {
    return new MemoryCollectionReference(this, checkPath(collectionPath, 'collection', 'collectionPath'));
  }

  /** A document by its slash-separated path (an even number of segments). */
  doc(documentPath: string): MemoryDocumentReference {
    return new MemoryDocumentReference(this, checkPath(documentPath, 'document', 'documentPath'));
  }

  /** A batch of writes committed atomically. */
  batch(): MemoryWriteBatch {
    return new MemoryWriteBatch(this);
  }

  /** A bulk writer (its options, e.g. `throttling`, change nothing here: there is no load to throttle). */
  bulkWriter(options?: unknown): MemoryBulkWriter {
    void options;
    return new MemoryBulkWriter(this);
  }

  /** Reads documents in one call, in the order given (`exists` false for absent ones). */
  getAll(...documentRefsOrReadOptions: unknown[]): Promise<MemoryDocumentSnapshot[]> {
    const refs = [...documentRefsOrReadOptions];
    const last = refs[refs.length - 1];
    if (refs.length > 0 && !this._isReference(last) && typeof last === 'object' && last !== null) {
      if ((last as { fieldMask?: unknown }).fieldMask !== undefined) throw unsupported('getAll() with a fieldMask');
      refs.pop();
    }
    if (refs.length === 0) throw new Error('Function "Firestore.getAll()" requires at least 1 argument.');
    for (const ref of refs) if (!this._isReference(ref)) throw new Error('Value for argument "documentRefsOrReadOptions" is not a valid DocumentReference.');
    return this._read(refs as MemoryDocumentReference[]);
  }

  /** Runs `updateFunction` in a transaction (optimistic; see {@link MemoryTransaction}). */
  runTransaction<T>(updateFunction: (transaction: MemoryTransaction) => Promise<T>, transactionOptions?: TransactionOptions): Promise<T> {
    return runTransaction(this, updateFunction, transactionOptions);
  }

  /**
   * Ends the client: later calls fail with the SDK's "terminated" error. Refused, as by the SDK,
   * while a listener or a bulk writer is still open.
   */
  terminate(): Promise<void> {
    if (this._listeners.open > 0 || this._bulkWriters > 0) {
      return Promise.reject(
        new Error(
          'All onSnapshot() listeners must be unsubscribed, and all BulkWriter instances must be closed before terminating the client. ' +
            `There are ${this._listeners.open} active listeners and ${this._bulkWriters} open BulkWriter instances.`,
        ),
      );
    }
    this._terminated = true;
    return Promise.resolve();
  }

  /** Accepted and ignored (there is nothing to configure). */
  settings(settings: unknown): void {
    void settings;
  }

  collectionGroup(): never {
    throw unsupported('collectionGroup()');
  }

  listCollections(): never {
    throw unsupported('listCollections()');
  }

  recursiveDelete(): never {
    throw unsupported('recursiveDelete()');
  }

  /** @internal Throws the SDK's error once terminated. */
  _checkOpen(): void {
    if (this._terminated) throw new Error(TERMINATED_MESSAGE);
  }

  /** @internal Whether `value` is a document reference of this database. */
  _isReference(value: unknown): value is MemoryDocumentReference {
    return value instanceof MemoryDocumentReference && value.firestore === this;
  }

  /** @internal Reads documents at one read time. */
  _read(refs: readonly MemoryDocumentReference[]): Promise<MemoryDocumentSnapshot[]> {
    try {
      this._checkOpen();
      const readTime = this._engine.clock.now();
      return Promise.resolve(refs.map((ref) => new MemoryDocumentSnapshot(ref, this._engine.read(ref.path), readTime)));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** @internal Commits one write. */
  _commitOne(op: WriteOp): Promise<MemoryWriteResult> {
    try {
      this._checkOpen();
      return Promise.resolve(new MemoryWriteResult(this._engine.commit([op])[0]!));
    } catch (err) {
      return Promise.reject(err);
    }
  }
}
