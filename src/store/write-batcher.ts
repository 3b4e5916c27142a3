import type { DocumentReference, Firestore, Timestamp } from '@google-cloud/firestore';
import { monotonicNow, newRev, withDeadline } from './calls.js';
import type { ConditionalWriter, ConditionalWriteResult, TaskFields, WriteOptions } from './conditional-writer.js';
import type { OperationCounter } from './op-stats.js';

/**
 * Coalesces single-document conditional writes (claims, renewals and outcomes of tasks without
 * a key lock) that are sent close together into one round trip: a `BulkWriter` flush of
 * independent writes, each with its own precondition, so a lost race loses that write only.
 *
 * Adaptive, so light load pays no latency: when no flush is in flight, a write goes out at once;
 * while one is in flight, new writes wait for it (at most `windowMs`) or until `maxWrites` are
 * queued, and go out together. A write that does not come back applied is handed
 * to the {@link ConditionalWriter}, which re-sends it and tells a lost race from its own write
 * whose answer was lost by the write's witness.
 */

/** How writes are coalesced. */
export interface WriteBatching {
  /** Longest wait of a write for the flush in flight, in ms; 0 turns coalescing off. */
  windowMs: number;
  /** Most writes per flush. */
  maxWrites: number;
}

/** Default coalescing: up to 5 ms, up to 100 writes. */
export const DEFAULT_WRITE_BATCHING: WriteBatching = { windowMs: 5, maxWrites: 100 };

interface Pending {
  ref: DocumentReference;
  fields: TaskFields;
  precondition: Timestamp;
  options: WriteOptions;
  resolve: (result: ConditionalWriteResult) => void;
  reject: (err: unknown) => void;
}

export class WriteBatcher {
  private queue: Pending[] = [];
  private scheduled: NodeJS.Timeout | null = null;
  private inFlight = 0;
  /** Flushes sent and writes they carried (for the bench). */
  readonly stats = { flushes: 0, writes: 0 };

  constructor(
    private readonly firestore: Firestore,
    private readonly writer: ConditionalWriter,
    private readonly ops: OperationCounter,
    private readonly batching: WriteBatching,
    private readonly callTimeoutMs: number,
  ) {}

  /** A conditional update of one document, coalesced with others sent close to it. */
  update(ref: DocumentReference, fields: TaskFields, precondition: Timestamp, options: WriteOptions = {}): Promise<ConditionalWriteResult> {
    if (this.batching.windowMs <= 0) return this.writer.update(ref, fields, precondition, options);
    return new Promise((resolve, reject) => {
      this.queue.push({ ref, fields, precondition, options, resolve, reject });
      // Nothing in flight: send at once (no added latency). Otherwise wait for the flush in flight
      // (it sends the queue when it returns), at most windowMs, or until maxWrites are queued.
      if (this.inFlight === 0 || this.queue.length >= this.batching.maxWrites) this.flush();
      else this.scheduled ??= setTimeout(() => this.flush(), this.batching.windowMs);
    });
  }

  private flush(): void {
    clearTimeout(this.scheduled ?? undefined);
    this.scheduled = null;
    const batch = this.queue.splice(0, this.batching.maxWrites);
    if (batch.length === 0) return;
    this.inFlight++;
    void this.send(batch).finally(() => {
      this.inFlight--;
      if (this.queue.length > 0) this.flush();
    });
  }

  private async send(batch: Pending[]): Promise<void> {
    this.stats.flushes++;
    this.stats.writes += batch.length;
    if (batch.length === 1) {
      const only = batch[0]!;
      await this.writer.update(only.ref, only.fields, only.precondition, only.options).then(only.resolve, only.reject);
      return;
    }
    const bulk = this.firestore.bulkWriter({ throttling: false });
    bulk.onWriteError(() => false); // no retries of its own: the ConditionalWriter owns them
    const now = monotonicNow();
    const sent = batch.map((p) => {
      const timeout = Math.min(p.options.deadline ?? Infinity, now + this.callTimeoutMs) - now;
      return withDeadline(bulk.update(p.ref, { ...p.fields, rev: newRev() }, { lastUpdateTime: p.precondition }), timeout, p.options.what ?? 'write');
    });
    void bulk.close().catch(() => undefined);
    await Promise.all(
      sent.map(async (write, i) => {
        const p = batch[i]!;
        try {
          const result = await write;
          this.ops.write();
          p.resolve({ ok: true, updateTime: result.writeTime });
        } catch {
          // Refused or unknown: the single-write path re-sends it and checks its witness.
          await this.writer.update(p.ref, p.fields, p.precondition, p.options).then(p.resolve, p.reject);
        }
      }),
    );
  }
}
