import type { DocumentData, DocumentReference, DocumentSnapshot, Timestamp } from '@google-cloud/firestore';
import { BackendTimeoutError } from '../errors.js';
import type { OperationCounter } from './op-stats.js';
import { CallDeadlineError, GRPC, grpcCode, isAmbiguous, monotonicNow, newRev, withDeadline } from './calls.js';

/**
 * The write layer of the lease protocol: conditional writes (no transaction, no lock) that own
 * their retries and their deadline, and that tell a lost race from their own write whose answer
 * was lost.
 *
 * A write the server applied but whose answer was lost is re-sent by the SDK, and the re-send
 * then fails its precondition. So a refused or ambiguous write is checked against a witness
 * before it is called a conflict: the `rev` this write stamped (overwritten by any later write),
 * and the caller's `witness`, a field only this write sets and later writes leave alone (the
 * lease token of a claim, the settling token of an outcome, the nonce of a create).
 */

/** Fields of a document as written (Dates become Timestamps in Firestore). */
export type TaskFields = Record<string, unknown>;

/** Options of one conditional write. */
export interface WriteOptions {
  /** Monotonic time ({@link monotonicNow}) after which nothing more is sent or awaited (at most the call timeout from now). */
  deadline?: number;
  /**
   * Recognises the first document as written by this write, even after later writes. When it
   * matches, the first document's current version is returned for every write: a caller that
   * relies on those versions must also check the document is still in the state it wrote.
   */
  witness?: (data: DocumentData) => boolean;
  /** Names the write in a {@link BackendTimeoutError}. */
  what?: string;
}

/** The document as read back after a refused write. */
export interface CurrentDocument {
  data: DocumentData;
  updateTime: Timestamp;
}

/** Outcome of a conditional write; a conflict carries the document as it is now, when it was read. */
export type ConditionalWriteResult =
  | { ok: true; updateTime: Timestamp }
  | { ok: false; reason: 'conflict'; current: CurrentDocument | null }
  | { ok: false; reason: 'missing' };

/** One write of an atomic conditional commit. */
export interface RefWrite {
  ref: DocumentReference;
  /** The fields to write, or `null` to delete the document (with a version precondition only). */
  fields: TaskFields | null;
  /** Update only if unchanged since this version; `'absent'` creates and fails if it exists. */
  precondition: Timestamp | 'absent';
}

/**
 * A first send made elsewhere (a write that went out in a coalesced flush), stamped with `rev`:
 * {@link ConditionalWriter.commit} takes it as its first attempt and resolves it like its own.
 */
export interface SentWrite {
  result: Promise<Timestamp[]>;
  rev: string;
}

/** How often an ambiguous write that turned out not applied is sent again. */
const MAX_RESENDS = 3;

export class ConditionalWriter {
  constructor(
    private readonly ops: OperationCounter,
    /** Deadline of a write that names none, in ms. */
    private readonly callTimeoutMs: number,
  ) {}

  /** Updates `ref` (or, with `fields` null, deletes it) only if it has not changed since `updateTime`. */
  async update(ref: DocumentReference, fields: TaskFields | null, updateTime: Timestamp, options: WriteOptions = {}, firstSend?: SentWrite): Promise<ConditionalWriteResult> {
    const result = await this.commit([{ ref, fields, precondition: updateTime }], options, firstSend);
    if (Array.isArray(result)) return { ok: true, updateTime: result[0]! };
    if (result.reason === 'missing') return { ok: false, reason: 'missing' };
    return { ok: false, reason: 'conflict', current: result.current };
  }

  /**
   * Commits writes atomically, each with its precondition (one batch; one write is sent as a
   * plain update). Returns the new versions in order, or why not: `exists` (a create target
   * exists and is not ours), `missing` (an update target is gone), `conflict` (changed since).
   * Throws {@link BackendTimeoutError} when the outcome is still unknown at the deadline.
   */
  async commit(
    writes: readonly RefWrite[],
    options: WriteOptions = {},
    firstSend?: SentWrite,
  ): Promise<Timestamp[] | { ok: false; reason: 'conflict' | 'exists' | 'missing'; current: CurrentDocument | null }> {
    // Each call has its own deadline; a lease's deadline may only shorten it.
    const deadline = Math.min(options.deadline ?? Infinity, monotonicNow() + this.callTimeoutMs);
    const what = options.what ?? 'conditional write';
    const first = writes[0]!;
    const rev = firstSend?.rev ?? newRev();
    for (let sends = 0; ; sends++) {
      let err: unknown;
      try {
        const attempt = sends === 0 && firstSend ? firstSend.result : this.send(writes, rev);
        const written = await withDeadline(attempt, deadline - monotonicNow(), what);
        this.count(writes);
        return written;
      } catch (e) {
        err = e;
      }
      const code = grpcCode(err);
      const refused = code === GRPC.FAILED_PRECONDITION || code === GRPC.NOT_FOUND || code === GRPC.ALREADY_EXISTS;
      if (!refused && !isAmbiguous(err)) throw err;
      if (refused && !options.witness && sends === 0) {
        // No witness to check: a refusal on the first send is taken at its word.
        this.ops.refused();
        return { ok: false, reason: code === GRPC.ALREADY_EXISTS ? 'exists' : code === GRPC.NOT_FOUND ? 'missing' : 'conflict', current: null };
      }
      // Refused (perhaps the SDK's re-send of our own applied write) or unknown: look. The
      // commit is atomic, so the first document tells whether all of it landed.
      const snap = await this.readBack(first.ref, deadline, what);
      const data = snap.exists ? (snap.data() ?? {}) : null;
      // A delete's witness is the document's absence (nobody else deletes a document we hold).
      if (first.fields === null && !snap.exists) {
        this.ops.delete();
        return writes.map(() => snap.readTime);
      }
      if (data && (data.rev === rev || options.witness?.(data))) {
        this.count(writes);
        return writes.map(() => snap.updateTime!);
      }
      const unchanged = first.precondition === 'absent' ? !snap.exists : snap.exists && snap.updateTime!.isEqual(first.precondition);
      if (!unchanged || refused || sends >= MAX_RESENDS) {
        if (!unchanged || refused) {
          this.ops.refused();
          if (!snap.exists && first.precondition !== 'absent') return { ok: false, reason: 'missing', current: null };
          const current = data ? { data, updateTime: snap.updateTime! } : null;
          return { ok: false, reason: first.precondition === 'absent' ? 'exists' : 'conflict', current };
        }
        throw err;
      }
      // Not applied, nothing changed: send again.
    }
  }

  /** Counts applied writes as Firestore bills them (a delete is a delete, not a write). */
  private count(writes: readonly RefWrite[]): void {
    for (const w of writes) {
      if (w.fields === null) this.ops.delete();
      else this.ops.write();
    }
  }

  /**
   * Sends writes as one atomic commit stamped with `rev`, once, within `deadline` (monotonic;
   * at most the call timeout from now). No witness check: for a caller that resolves the
   * outcome itself, e.g. by handing it to {@link commit} as its first send.
   */
  sendOnce(writes: readonly RefWrite[], rev: string, deadline: number, what: string): Promise<Timestamp[]> {
    const until = Math.min(deadline, monotonicNow() + this.callTimeoutMs);
    return withDeadline(this.send(writes, rev), until - monotonicNow(), what);
  }

  private async send(writes: readonly RefWrite[], rev: string): Promise<Timestamp[]> {
    if (writes.length === 1) {
      const w = writes[0]!;
      const result =
        w.fields === null
          ? await w.ref.delete(w.precondition === 'absent' ? {} : { lastUpdateTime: w.precondition })
          : w.precondition === 'absent'
            ? await w.ref.create({ ...w.fields, rev })
            : await w.ref.update({ ...w.fields, rev }, { lastUpdateTime: w.precondition });
      return [result.writeTime];
    }
    const batch = writes[0]!.ref.firestore.batch();
    for (const w of writes) {
      if (w.fields === null) batch.delete(w.ref, w.precondition === 'absent' ? {} : { lastUpdateTime: w.precondition });
      else if (w.precondition === 'absent') batch.create(w.ref, { ...w.fields, rev });
      else batch.update(w.ref, { ...w.fields, rev }, { lastUpdateTime: w.precondition });
    }
    return (await batch.commit()).map((r) => r.writeTime);
  }

  /** Reads a document back within the write's deadline; a timeout makes the outcome unknown. */
  private async readBack(ref: DocumentReference, deadline: number, what: string): Promise<DocumentSnapshot> {
    try {
      const snap = await withDeadline(ref.get(), deadline - monotonicNow(), what);
      this.ops.read();
      return snap;
    } catch (err) {
      if (err instanceof CallDeadlineError) throw new BackendTimeoutError(what, Math.round(this.callTimeoutMs));
      throw err;
    }
  }
}

/** Converts a {@link CallDeadlineError} into the public {@link BackendTimeoutError}. */
export function publicTimeout(err: unknown, what: string): unknown {
  return err instanceof CallDeadlineError ? new BackendTimeoutError(what, Math.round(err.timeoutMs)) : err;
}
