import type { DocumentReference, Firestore, Timestamp } from '@google-cloud/firestore';
import { GRPC, grpcCode, newRev } from './calls.js';
import type { ConditionalWriter, ConditionalWriteResult, RefWrite, SentWrite, TaskFields, WriteOptions } from './conditional-writer.js';

/**
 * Coalesces single-document conditional writes (claims, renewals and outcomes of tasks without
 * a key lock) that are sent close together into one round trip: a `BulkWriter` flush of
 * independent writes, each with its own precondition, so a lost race loses that write only.
 *
 * Adaptive, so light load pays next to no latency: when no flush is in flight, the writes issued
 * in the same turn of the event loop (a claim round's claims, outcomes of handlers that returned
 * together) go out together at the end of that turn (`setImmediate`); while a flush is in flight,
 * new writes wait for it (at most `windowMs`) or until `maxWrites` are queued, and go out
 * together. Each write's result is resolved by the {@link ConditionalWriter} as if it had sent
 * the write itself: a refusal or unknown outcome is checked against the write's witness (a lost
 * race from its own write whose answer was lost), and an unapplied write is re-sent alone.
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
  /** The fields to update, or `null` to delete the document. */
  fields: TaskFields | null;
  precondition: Timestamp;
  options: WriteOptions;
  resolve: (result: ConditionalWriteResult) => void;
  reject: (err: unknown) => void;
}

export class WriteBatcher {
  private queue: Pending[] = [];
  private scheduled: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private inFlight = 0;
  /** Flushes sent and writes they carried (for the bench). */
  readonly stats = { flushes: 0, writes: 0 };

  constructor(
    private readonly firestore: Firestore,
    private readonly writer: ConditionalWriter,
    private readonly batching: WriteBatching,
  ) {}

  /**
   * A conditional update of one document — or, with `fields` null, a conditional delete —
   * coalesced with others sent close to it.
   */
  update(ref: DocumentReference, fields: TaskFields | null, precondition: Timestamp, options: WriteOptions = {}): Promise<ConditionalWriteResult> {
    if (this.batching.windowMs <= 0) return this.writer.update(ref, fields, precondition, options);
    return new Promise((resolve, reject) => {
      this.queue.push({ ref, fields, precondition, options, resolve, reject });
      if (this.queue.length >= this.batching.maxWrites) this.flush();
      // Nothing in flight: send at the end of this turn, with whatever else this turn writes.
      // Otherwise wait for the flush in flight (it sends the queue when it returns), at most windowMs.
      else this.scheduled ??= this.inFlight === 0 ? setImmediate(() => this.flush()) : setTimeout(() => this.flush(), this.batching.windowMs);
    });
  }

  private flush(): void {
    if (this.scheduled) {
      clearTimeout(this.scheduled as NodeJS.Timeout);
      clearImmediate(this.scheduled as NodeJS.Immediate);
    }
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
    const settle = (p: Pending, sent?: SentWrite): Promise<void> =>
      this.writer.update(p.ref, p.fields, p.precondition, p.options, sent).then(p.resolve, p.reject);
    if (batch.length === 1) {
      await settle(batch[0]!); // one write: a plain commit is cheaper than a BulkWriter
      return;
    }
    const bulk = this.firestore.bulkWriter({ throttling: false });
    bulk.onWriteError(() => false); // no retries of its own: the ConditionalWriter owns them
    const sent = batch.map((p): SentWrite => {
      const rev = newRev();
      const write = p.fields === null ? bulk.delete(p.ref, { lastUpdateTime: p.precondition }) : bulk.update(p.ref, { ...p.fields, rev }, { lastUpdateTime: p.precondition });
      return { rev, result: write.then((r) => [r.writeTime]) };
    });
    void bulk.close().catch(() => undefined);
    await Promise.all(batch.map((p, i) => settle(p, sent[i])));
  }
}

/** One atomic commit waiting to be grouped. */
interface PendingCommit {
  writes: readonly RefWrite[];
  options: WriteOptions;
  resolve: (result: Awaited<ReturnType<ConditionalWriter['commit']>>) => void;
  reject: (err: unknown) => void;
}

/**
 * Groups atomic multi-document commits (a keyed task's claim with its key lock, an outcome with
 * the lock's release) issued in the same turn of the event loop into one commit (with write
 * batching on; off, each goes alone). A `BulkWriter` cannot carry them (it is not atomic), but
 * one commit of several pairs keeps each pair atomic: all of it lands or none. If the grouped commit is
 * refused (one pair's precondition failed, and so all of it was), every pair is sent again
 * alone, so a lost race still costs that pair only; if its outcome is unknown, each pair is
 * resolved by its witness like a commit of its own.
 */
export class CommitGrouper {
  private queue: PendingCommit[] = [];
  private scheduled: NodeJS.Immediate | null = null;
  /** Grouped commits sent and pairs (commits) they carried (for the bench). */
  readonly stats = { groups: 0, commits: 0 };

  constructor(
    private readonly writer: ConditionalWriter,
    private readonly batching: WriteBatching,
  ) {}

  /** An atomic conditional commit, grouped with others issued in the same turn. */
  commit(writes: readonly RefWrite[], options: WriteOptions = {}): ReturnType<ConditionalWriter['commit']> {
    if (this.batching.windowMs <= 0) return this.writer.commit(writes, options);
    return new Promise((resolve, reject) => {
      this.queue.push({ writes, options, resolve, reject });
      this.scheduled ??= setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    this.scheduled = null;
    // Whole commits only, up to maxWrites writes per group, and no document twice in a group
    // (Firestore refuses a commit that writes one document twice; such commits go in the next).
    const groups: { commits: PendingCommit[]; paths: Set<string>; size: number }[] = [];
    for (const c of this.queue.splice(0)) {
      const paths = c.writes.map((w) => w.ref.path);
      const fits = (g: (typeof groups)[number]): boolean => g.size + c.writes.length <= this.batching.maxWrites && paths.every((p) => !g.paths.has(p));
      let group = groups.find(fits);
      if (!group) groups.push((group = { commits: [], paths: new Set(), size: 0 }));
      group.commits.push(c);
      group.size += c.writes.length;
      for (const p of paths) group.paths.add(p);
    }
    for (const g of groups) void this.send(g.commits);
  }

  private async send(group: PendingCommit[]): Promise<void> {
    const alone = (c: PendingCommit, sent?: SentWrite): Promise<void> => this.writer.commit(c.writes, c.options, sent).then(c.resolve, c.reject);
    if (group.length === 1) return alone(group[0]!);
    this.stats.groups++;
    this.stats.commits += group.length;
    const rev = newRev();
    const deadline = Math.min(...group.map((c) => c.options.deadline ?? Infinity));
    const all = group.flatMap((c) => c.writes);
    const merged = this.writer.sendOnce(all, rev, deadline, 'grouped commit');
    const outcome = await merged.then(
      (versions) => ({ ok: true as const, versions }),
      (err: unknown) => ({ ok: false as const, err }),
    );
    let offset = 0;
    await Promise.all(
      group.map((c) => {
        const from = offset;
        offset += c.writes.length;
        if (outcome.ok) return alone(c, { rev, result: Promise.resolve(outcome.versions.slice(from, offset)) });
        // Refused as a whole: this pair may not be the one that conflicted, so send it alone.
        if (isRefusal(outcome.err)) return alone(c);
        return alone(c, { rev, result: Promise.reject(outcome.err) }); // unknown: resolve by witness
      }),
    );
  }
}

/** Whether a commit failed because a precondition did not hold (nothing of it was applied). */
function isRefusal(err: unknown): boolean {
  const code = grpcCode(err);
  return code === GRPC.FAILED_PRECONDITION || code === GRPC.NOT_FOUND || code === GRPC.ALREADY_EXISTS;
}
