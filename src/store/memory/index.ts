/**
 * The in-memory backend of the storage seam: a document database implementing the subset of
 * the `@google-cloud/firestore` API the library uses, with Firestore's semantics (see
 * {@link MemoryFirestore}). No runtime import of the SDK.
 *
 * ```ts
 * const db = createMemoryFirestore();
 * const manager = new OnceTaskManager({ firestore: db as unknown as Firestore, env: 'dev', listen: true });
 * ```
 */
import { MemoryFirestore, type MemoryFirestoreOptions } from './memory-firestore.js';

export { MemoryFirestore, type MemoryFirestoreOptions } from './memory-firestore.js';
export { MemoryCollectionReference, MemoryDocumentReference, type SetOptions } from './memory-reference.js';
export { MemoryAggregateQuery, MemoryQuery } from './memory-query.js';
export {
  MemoryAggregateQuerySnapshot,
  MemoryDocumentChange,
  MemoryDocumentSnapshot,
  MemoryQueryDocumentSnapshot,
  MemoryQuerySnapshot,
  MemoryWriteResult,
  type DocumentChangeType,
  type DocumentFields,
} from './memory-snapshots.js';
export { MemoryBulkWriter, MemoryBulkWriterError, MemoryWriteBatch, type BulkWriteType } from './memory-batch.js';
export { MemoryTransaction, type TransactionOptions } from './memory-transaction.js';
export { MemoryTimestamp, type TimestampLike } from './memory-timestamp.js';
export { MemoryFirestoreError } from './memory-errors.js';

/** A new, empty in-memory database. Each call is a database of its own; share one instance to share data. */
export function createMemoryFirestore(options?: MemoryFirestoreOptions): MemoryFirestore {
  return new MemoryFirestore(options);
}
