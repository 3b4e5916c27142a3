import type { Firestore } from '@google-cloud/firestore';
import { createMemoryFirestore } from './memory/index.js';

/**
 * The storage seam. The store (`TaskStore` and its helpers in this folder) is written against
 * the small part of the Firestore API it needs: conditional writes on a document's version,
 * atomic multi-document commits, the declared queue queries, counts and snapshot listeners.
 * Two databases implement it: Cloud Firestore (the default, and the production path) and an
 * in-process memory database with the same semantics (`src/store/memory/`), for tests,
 * development and small single-process deployments.
 */

/** Where a manager's tasks live. Made by {@link memoryBackend}; Firestore is passed as `firestore`. */
export interface StorageBackend {
  /** `'memory'`: an in-process database, gone when the process exits. */
  readonly kind: 'memory';
}

/**
 * Where a backend keeps its database: a registered symbol, so that `memoryBackend()` from one
 * build of the package (e.g. `oncetask/testing`'s CommonJS bundle) works with the manager of
 * another (`oncetask`'s).
 */
const DATABASE = Symbol.for('oncetask.backend.database');

/**
 * An in-memory backend: `new OnceTaskManager({ backend: memoryBackend() })` runs the whole API
 * in one process, with no Firestore, emulator or Java. Managers given the same backend share its
 * tasks like processes sharing a Firestore database (leases, resource keys, fencing and
 * listeners behave the same). Data lives as long as the backend object; TTL deletion is not
 * performed.
 */
export function memoryBackend(): StorageBackend {
  const backend = { kind: 'memory' as const };
  Object.defineProperty(backend, DATABASE, { value: createMemoryFirestore() as unknown as Firestore, enumerable: false });
  return Object.freeze(backend);
}

/** The database behind a backend (internal). */
export function databaseOf(backend: StorageBackend): Firestore | undefined {
  return (backend as unknown as Record<symbol, Firestore | undefined>)[DATABASE];
}
