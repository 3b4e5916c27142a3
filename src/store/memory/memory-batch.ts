import type { MemoryFirestore } from './memory-firestore.js';
import type { WriteOp } from './memory-mutations.js';
import { createWrite, deleteWrite, setWrite, updateWrite, type MemoryDocumentReference, type SetOptions } from './memory-reference.js';
import { MemoryWriteResult } from './memory-snapshots.js';
import { MemoryFirestoreError } from './memory-errors.js';

/**
 * Multi-write APIs of the in-memory database: `WriteBatch` (one atomic commit: all of it or,
 * on any refusal, none of it) and `BulkWriter` (independent writes, each with its own result,
 * sent when a batch of 20 fills up or on `flush()`/`close()`, as the SDK sends them).
 */

/** The SDK's check that a write's target is a reference of this database. */
export function checkRef(firestore: MemoryFirestore, ref: unknown): MemoryDocumentReference {
  if (!firestore._isReference(ref)) throw new Error('Value for argument "documentRef" is not a valid DocumentReference.');
  return ref;
}

/**
 * The write methods a batch and a transaction share: each queues one write, built (and its
 * data checked) at once, as the SDK does; `accept` says whether writes may still be queued.
 */
export abstract class QueuedWrites {
  protected readonly writes: WriteOp[] = [];

  constructor(protected readonly firestore: MemoryFirestore) {}

  /** Throws if no more writes may be queued (committed, read-only). */
  protected abstract accept(): void;

  private add(op: () => WriteOp): this {
    this.accept();
    this.writes.push(op());
    return this;
  }

  create(ref: MemoryDocumentReference, data: unknown): this {
    return this.add(() => createWrite(this.firestore, checkRef(this.firestore, ref).path, data));
  }

  set(ref: MemoryDocumentReference, data: unknown, options?: SetOptions): this {
    return this.add(() => setWrite(this.firestore, checkRef(this.firestore, ref).path, data, options));
  }

  update(ref: MemoryDocumentReference, dataOrField: unknown, ...preconditionOrValues: unknown[]): this {
    return this.add(() => updateWrite(this.firestore, checkRef(this.firestore, ref).path, dataOrField, preconditionOrValues));
  }

  delete(ref: MemoryDocumentReference, precondition?: { exists?: boolean; lastUpdateTime?: unknown }): this {
    return this.add(() => deleteWrite(checkRef(this.firestore, ref).path, precondition));
  }
}

/** Writes committed together, atomically. */
export class MemoryWriteBatch extends QueuedWrites {
  private committed = false;

  /** Number of writes queued. */
  get _size(): number {
    return this.writes.length;
  }

  protected accept(): void {
    if (this.committed) throw new Error('Cannot modify a WriteBatch that has been committed.');
  }

  /** Applies every write or none (the first refusal's coded error); results in the order written. */
  commit(): Promise<MemoryWriteResult[]> {
    if (this.committed) return Promise.reject(new Error('Cannot modify a WriteBatch that has been committed.'));
    this.committed = true;
    try {
      this.firestore._checkOpen();
      return Promise.resolve(this.firestore._engine.commit(this.writes).map((t) => new MemoryWriteResult(t)));
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

/** The kind of a bulk write, as `BulkWriterError.operationType` names it. */
export type BulkWriteType = 'create' | 'set' | 'update' | 'delete';

/** A failed bulk write, as the SDK's `BulkWriterError`. */
export class MemoryBulkWriterError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly documentRef: MemoryDocumentReference,
    readonly operationType: BulkWriteType,
    readonly failedAttempts: number,
  ) {
    super(message);
    this.name = 'BulkWriterError';
  }
}

interface PendingWrite {
  ref: MemoryDocumentReference;
  type: BulkWriteType;
  op: WriteOp;
  failedAttempts: number;
  resolve: (result: MemoryWriteResult) => void;
  reject: (err: unknown) => void;
}

/** Writes per batch the SDK sends. */
const BATCH_SIZE = 20;
/** The SDK's default retry: these codes (RESOURCE_EXHAUSTED, ABORTED, UNAVAILABLE), at most 10 attempts. */
const RETRIED_CODES: ReadonlySet<number> = new Set([8, 10, 14]);
const MAX_ATTEMPTS = 10;

/** `setImmediate` as loaded (see memory-listeners.ts): the pause before a retried write. */
const pause: () => Promise<void> = ((immediate) => () => new Promise<void>((resolve) => void immediate(resolve)))(setImmediate);

/** Independent writes, each its own commit with its own result. */
export class MemoryBulkWriter {
  private queue: PendingWrite[] = [];
  /** The last send: every write enqueued before it has settled once it resolves. */
  private tail: Promise<void> = Promise.resolve();
  private closed = false;
  private onResult: (ref: MemoryDocumentReference, result: MemoryWriteResult) => void = () => undefined;
  private shouldRetry: (err: MemoryBulkWriterError) => boolean = (err) =>
    (RETRIED_CODES.has(err.code) || (err.operationType === 'delete' && err.code === 13)) && err.failedAttempts < MAX_ATTEMPTS;

  constructor(private readonly firestore: MemoryFirestore) {
    firestore._bulkWriters++;
  }

  create(ref: MemoryDocumentReference, data: unknown): Promise<MemoryWriteResult> {
    return this.enqueue(ref, 'create', () => createWrite(this.firestore, ref.path, data));
  }

  set(ref: MemoryDocumentReference, data: unknown, options?: SetOptions): Promise<MemoryWriteResult> {
    return this.enqueue(ref, 'set', () => setWrite(this.firestore, ref.path, data, options));
  }

  update(ref: MemoryDocumentReference, dataOrField: unknown, ...preconditionOrValues: unknown[]): Promise<MemoryWriteResult> {
    return this.enqueue(ref, 'update', () => updateWrite(this.firestore, ref.path, dataOrField, preconditionOrValues));
  }

  delete(ref: MemoryDocumentReference, precondition?: { exists?: boolean; lastUpdateTime?: unknown }): Promise<MemoryWriteResult> {
    return this.enqueue(ref, 'delete', () => deleteWrite(ref.path, precondition));
  }

  /** Called with every successful write. */
  onWriteResult(callback: (documentRef: MemoryDocumentReference, result: MemoryWriteResult) => void): void {
    this.onResult = callback;
  }

  /** Decides whether a failed write is tried again (the default: only transient codes, which this backend never answers). */
  onWriteError(shouldRetryCallback: (error: MemoryBulkWriterError) => boolean): void {
    this.shouldRetry = shouldRetryCallback;
  }

  /** Sends what is queued; resolves once every write enqueued so far has settled. */
  async flush(): Promise<void> {
    this.send();
    await this.tail;
  }

  /** Flushes, and refuses further writes. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      return this.flush().finally(() => {
        this.firestore._bulkWriters--;
      });
    }
    return this.flush();
  }

  private enqueue(ref: MemoryDocumentReference, type: BulkWriteType, build: () => WriteOp): Promise<MemoryWriteResult> {
    if (this.closed) throw new Error('BulkWriter has already been closed.');
    checkRef(this.firestore, ref);
    const op = build();
    return new Promise<MemoryWriteResult>((resolve, reject) => {
      this.queue.push({ ref, type, op, failedAttempts: 0, resolve, reject });
      if (this.queue.length >= BATCH_SIZE) this.send();
    });
  }

  /**
   * Sends the queue. Sends are chained, so writes apply in the order they were enqueued (the
   * SDK never reorders two writes of one document), each after the caller's turn.
   */
  private send(): void {
    const batch = this.queue.splice(0);
    if (batch.length === 0) return;
    this.tail = this.tail.then(async () => {
      for (const write of batch) await this.apply(write);
    });
  }

  private async apply(write: PendingWrite): Promise<void> {
    for (;;) {
      let failure: MemoryBulkWriterError;
      try {
        this.firestore._checkOpen();
        const [time] = this.firestore._engine.commit([write.op]);
        const result = new MemoryWriteResult(time!);
        this.onResult(write.ref, result);
        write.resolve(result);
        return;
      } catch (err) {
        if (!(err instanceof MemoryFirestoreError)) {
          write.reject(err); // (a terminated client, a throwing callback): not a write error
          return;
        }
        failure = new MemoryBulkWriterError(err.code, err.details, write.ref, write.type, ++write.failedAttempts);
      }
      let retry: boolean;
      try {
        retry = this.shouldRetry(failure);
      } catch (err) {
        write.reject(err);
        return;
      }
      if (!retry) {
        write.reject(failure);
        return;
      }
      await pause();
    }
  }
}
