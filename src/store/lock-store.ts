import { createHash } from 'node:crypto';
import type { CollectionReference, DocumentReference, Firestore, Timestamp } from '@google-cloud/firestore';
import type { OperationCounter } from './op-stats.js';
import { withDeadline } from './calls.js';
import { keyLockSchema, type KeyLock } from './key-lock.js';

/**
 * Firestore access to the resource-key locks (`<collection>_keys`): one document per (env,
 * kind, key), claimed and released by the lease protocol together with the tasks.
 */

/** A key lock read together with its version (`null` lock: no document yet). */
export interface VersionedLock {
  docId: string;
  lock: KeyLock | null;
  updateTime: Timestamp | null;
}

/** Name of the collection holding the resource-key locks of a task collection. */
export function lockCollectionName(collectionName: string): string {
  return `${collectionName}_keys`;
}

export class LockStore {
  private readonly locks: CollectionReference;

  constructor(
    firestore: Firestore,
    collectionName: string,
    private readonly env: string,
    private readonly ops: OperationCounter,
    private readonly callTimeoutMs: number,
  ) {
    this.locks = firestore.collection(lockCollectionName(collectionName));
  }

  /** Document ID of a resource key's lock: a hash, since keys may hold any character. */
  lockDocId(kind: string, resourceKey: string): string {
    return createHash('sha256').update(this.env).update('\u0000').update(kind).update('\u0000').update(resourceKey).digest('hex').slice(0, 40);
  }

  /**
   * Document ID of a kind's listener role (see `ListenerRole`): prefixed, so it can never equal a
   * key lock's ID (those are bare hex).
   */
  roleDocId(kind: string): string {
    return `listener-${createHash('sha256').update(this.env).update('\u0000').update(kind).digest('hex').slice(0, 40)}`;
  }

  /** Reads a kind's listener role document with its version (`lock` null when absent or malformed). */
  async readRole(kind: string): Promise<VersionedLock> {
    const docId = this.roleDocId(kind);
    const snap = await withDeadline(this.ref(docId).get(), this.callTimeoutMs, 'read listener role');
    this.ops.read();
    return { docId, lock: snap.exists ? this.decode(snap.data()) : null, updateTime: snap.exists ? snap.updateTime! : null };
  }

  /**
   * Listens to a kind's listener role document: `onChange` with each new version (billed one
   * read each), `onError` if the listener dies. Returns the unsubscribe function.
   */
  watchRole(kind: string, onChange: (role: VersionedLock) => void, onError: (err: Error) => void): () => void {
    const docId = this.roleDocId(kind);
    return this.ref(docId).onSnapshot(
      (snap) => {
        this.ops.listener(1);
        onChange({ docId, lock: snap.exists ? this.decode(snap.data()) : null, updateTime: snap.exists ? snap.updateTime! : null });
      },
      onError,
    );
  }

  /** The lock document's reference. */
  ref(docId: string): DocumentReference {
    return this.locks.doc(docId);
  }

  /** Reads the locks of resource keys (one round trip). A malformed lock reads as free-to-overwrite. */
  async readLocks(kind: string, keys: readonly string[]): Promise<Map<string, VersionedLock>> {
    const result = new Map<string, VersionedLock>();
    if (keys.length === 0) return result;
    const docIds = keys.map((key) => this.lockDocId(kind, key));
    const firestore = this.locks.firestore;
    const snaps = await withDeadline(firestore.getAll(...docIds.map((id) => this.ref(id))), this.callTimeoutMs, 'read key locks');
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

  /** Decodes a lock document's data (null when malformed). */
  decode(data: unknown): KeyLock | null {
    const parsed = keyLockSchema.safeParse(data);
    return parsed.success ? parsed.data : null;
  }
}
