import { randomUUID } from 'node:crypto';
import type { DocumentData, Timestamp } from '@google-cloud/firestore';
import { leaseSafetyMarginMs, type Clock } from '../clock.js';
import { BackendTimeoutError, LeaseExpiredError, LeaseLostError, type OnceTaskError } from '../errors.js';
import { monotonicNow } from '../store/calls.js';
import type { ConditionalWrite, TaskFields, TaskStore, VersionedLock, VersionedTask } from '../store/task-store.js';

import { appendError, type TaskErrorRecord } from '../task-document.js';
import { leaseOf, releasedBy, writeLock, writeTask } from './fenced-writes.js';
import type { ClaimMode, FailureOutcome, HeldTask, Lease } from './lease.js';
import { queuePosition } from '../priority.js';

/**
 * The claim and lease protocol. A claim is a conditional write (`lastUpdateTime` precondition;
 * no transaction, no lock) that stamps a fresh random token on the task(s) and, for a resource
 * key, on the key's lock document, all in one atomic commit. Every later write for that claim
 * (renewal, outcome, release) is fenced by the token, so a worker whose lease was taken over
 * can never overwrite the newer attempt; and none is sent after the lease's local deadline
 * (the fencing itself is in fenced-writes.ts).
 *
 * Witnesses (fields that survive later writes) resolve writes whose answer was lost: the lease
 * token for a claim, the written expiry for a renewal, `settledToken` for an outcome, and
 * `releasedToken` for a key lock's release.
 */

/** How long terminal tasks are kept, by outcome; 0 deletes the task in the commit that ends it. */
export interface Retention {
  /** Succeeded and cancelled tasks. */
  retentionMs: number;
  /** Failed tasks. */
  failedRetentionMs: number;
}

/** Idle key locks are kept this long when tasks are deleted at once (a lock is cheap to keep). */
const LOCK_RETENTION_MS = 24 * 3600_000;

/** Most characters of a stack trace kept in an error record (20 records stay far below Firestore's 1 MiB document limit). */
const MAX_STACK_CHARS = 4000;

/** An error as recorded on a task, its message and stack cut to size. */
function errorRecord(err: Error, attempt: number, at: Date): TaskErrorRecord {
  const code = (err as { code?: unknown }).code;
  return { at, attempt, message: err.message.slice(0, 4000), code: typeof code === 'string' ? code : null, stack: typeof err.stack === 'string' ? err.stack.slice(0, MAX_STACK_CHARS) : null };
}

/** What a kind asks of its resource keys beyond one task at a time. */
export interface KeyPolicy {
  /** After a task of a key finishes, the key's next task starts no sooner than this (ms). */
  cooldownMs: number;
  /** A failed attempt that will be retried blocks its key until that task ends. */
  strictOrder: boolean;
}

export class LeaseProtocol {
  constructor(
    private readonly store: TaskStore,
    /** Identifies this process in leases (`host:pid:random`). */
    readonly workerId: string,
    /** How long terminal tasks (and idle key locks) are kept; 0 deletes a task in its outcome commit. */
    private readonly retention: Retention,
    private readonly clock: Clock,
    /** The kind's resource-key rules: cooldown after each task, strict order. */
    private readonly keyPolicy: KeyPolicy = { cooldownMs: 0, strictOrder: false },
  ) {}

  private now(): Date {
    return new Date(this.clock());
  }

  /**
   * Claims due candidates for `leaseMs` in one atomic commit, together with the key lock when
   * given. Returns `null` when another worker changed any of them first (the caller moves on),
   * or when Firestore did not answer in time (if the claim landed, its lease simply expires).
   */
  async claim(
    candidates: readonly VersionedTask[],
    options: { leaseMs: number; mode: ClaimMode; lock?: VersionedLock & { kind: string; resourceKey: string }; clearBlock?: boolean },
  ): Promise<Lease | null> {
    const sentAt = monotonicNow();
    const now = this.now();
    const expiresAt = new Date(now.getTime() + options.leaseMs);
    const token = randomUUID();
    const leaseField = { token, workerId: this.workerId, expiresAt };
    const held: Omit<HeldTask, 'updateTime' | 'queue' | 'lost' | 'cancelRequested' | 'settled' | 'progress' | 'retryAt'>[] = [];
    const writes: ConditionalWrite[] = [];
    for (const { docId, task, updateTime } of candidates) {
      let errors: readonly TaskErrorRecord[] = task.errors;
      let errorCount = task.errorCount;
      if (task.lease !== null) {
        // The previous attempt's lease ran out: the worker died or stalled. Record it as a failure.
        const previous = task.status === 'cancelling' ? task.cancelAttempts : task.attempts;
        errors = appendError(errors, errorRecord(new LeaseExpiredError(previous), previous, now));
        errorCount += 1;
      }
      const attempt = (options.mode === 'run' ? task.attempts : task.cancelAttempts) + 1;
      const fields: TaskFields = {
        status: options.mode === 'run' ? 'running' : 'cancelling',
        [options.mode === 'run' ? 'attempts' : 'cancelAttempts']: attempt,
        waitUntil: expiresAt,
        notBefore: null,
        lease: leaseField,
        errors,
        errorCount,
        // A new attempt: its own start, and no progress reported yet.
        startedAt: now,
        progress: null,
        updatedAt: now,
      };
      writes.push({ target: 'task', docId, fields, precondition: updateTime });
      held.push({ docId, taskId: task.id, task, mode: options.mode, attempt, errors, errorCount, startedAt: now.getTime() });
    }
    const { lock } = options;
    if (lock) {
      writes.push({
        target: 'lock',
        docId: lock.docId,
        precondition: lock.updateTime ?? 'absent',
        fields: {
          ...(lock.updateTime ? {} : { env: this.store.env, kind: lock.kind, resourceKey: lock.resourceKey }),
          holder: leaseField,
          updatedAt: now,
          expireAt: null,
          cooldownMs: this.keyPolicy.cooldownMs,
          // A block whose task has ended (deleted, or cancelled by an admin) is lifted by the next claim.
          ...(options.clearBlock ? { blockedBy: null } : {}),
        },
      });
    }
    const deadline = sentAt + options.leaseMs - leaseSafetyMarginMs(options.leaseMs);
    let versions: Timestamp[];
    try {
      const result = await this.store.commitConditional(writes, { deadline, witness: (data) => leaseOf(data)?.token === token, what: 'claim' });
      if (!Array.isArray(result)) return null;
      versions = result;
    } catch (err) {
      if (err instanceof BackendTimeoutError) return null;
      throw err;
    }
    return {
      token,
      expiresAt,
      deadline,
      ended: false,
      onCancelRequested: null,
      tasks: held.map((h, i) => ({ ...h, updateTime: versions[i]!, queue: Promise.resolve(), lost: null, settled: false, cancelRequested: h.task.cancelRequested, progress: null, retryAt: null })),
      lock: lock ? { docId: lock.docId, updateTime: versions[held.length]!, queue: Promise.resolve(), released: false, releasedAs: null } : null,
    };
  }

  // ---- ending tasks without a claim (conditional on the version read) --------------------

  /** Fails a task whose lease expired when its retry policy allows no more attempts. */
  async failExpired(candidate: VersionedTask): Promise<boolean> {
    const { task } = candidate;
    const now = this.now();
    const error = errorRecord(new LeaseExpiredError(task.attempts), task.attempts, now);
    const written = await this.store.updateIfUnchanged(
      candidate.docId,
      this.terminalFields('failed', now, { errors: appendError(task.errors, error), errorCount: task.errorCount + 1 }),
      candidate.updateTime,
    );
    return written.ok;
  }

  /** Ends a cancel-requested task as `cancelled` without running anything (no `onCancel`). */
  async finishCancelled(candidate: VersionedTask, err?: Error): Promise<boolean> {
    const { task } = candidate;
    const now = this.now();
    const failure = err ? { errors: appendError(task.errors, errorRecord(err, task.cancelAttempts, now)), errorCount: task.errorCount + 1 } : {};
    const written = await this.store.updateIfUnchanged(candidate.docId, this.terminalFields('cancelled', now, failure), candidate.updateTime);
    return written.ok;
  }

  /** Fails a document that is not a valid task. */
  async failMalformed(docId: string, updateTime: Timestamp, error: OnceTaskError): Promise<boolean> {
    const now = this.now();
    const written = await this.store.updateIfUnchanged(docId, this.terminalFields('failed', now, { errors: [errorRecord(error, 0, now)], errorCount: 1 }), updateTime);
    return written.ok;
  }

  // ---- writes under a lease ---------------------------------------------------------------

  /**
   * Extends the lease by `leaseMs` from now; on success the local deadline moves to `leaseMs`
   * after this renewal was sent. Settled tasks are not renewed. Throws {@link LeaseLostError}
   * when the key lock or every task was lost; a single lost task of a group is only marked.
   */
  async renew(lease: Lease, leaseMs: number): Promise<void> {
    if (lease.ended) return;
    const sentAt = monotonicNow();
    if (sentAt >= lease.deadline) throw new LeaseLostError(lease.tasks[0]?.taskId ?? '?', 'the lease expired locally before it could be renewed');
    const now = this.now();
    const expiresAt = new Date(now.getTime() + leaseMs);
    const leaseField = { token: lease.token, workerId: this.workerId, expiresAt };
    const live = lease.tasks.filter((t) => !t.lost && !t.settled);
    const lock = lease.lock && !lease.lock.released ? lease.lock : null;
    const wroteExpiry = (data: DocumentData): boolean => {
      const l = leaseOf(data);
      return l?.token === lease.token && l.expiresAt?.toMillis?.() === expiresAt.getTime();
    };
    // Progress reported since the last write rides along (no write of its own).
    const reported = live.map((t) => (t.progress?.dirty ? t.progress : null));
    const results = await Promise.allSettled([
      ...live.map((t, i) => writeTask(this.store, lease, t, { waitUntil: expiresAt, lease: leaseField, updatedAt: now, ...(reported[i] ? { progress: reported[i]!.value } : {}) }, 'renew', wroteExpiry)),
      ...(lock ? [writeLock(this.store, lease, { holder: leaseField, updatedAt: now }, 'renew', wroteExpiry)] : []),
    ]);
    const lockResult = lock ? results[results.length - 1] : undefined;
    if (lockResult?.status === 'rejected') throw lockResult.reason;
    if (lease.tasks.every((t) => t.lost || t.settled) && lease.tasks.some((t) => t.lost)) throw lease.tasks.find((t) => t.lost)!.lost;
    // A task found taken over is only marked (a group renews the rest); any other failure —
    // including a write refused locally because the deadline passed while it waited — means
    // this renewal did not happen, and the deadline must not move.
    const failure = results.find((r, i): r is PromiseRejectedResult => r.status === 'rejected' && !(i < live.length && live[i]!.lost));
    if (failure) throw failure.reason;
    reported.forEach((p, i) => {
      if (p && live[i]!.progress === p) p.dirty = false; // (unless a newer report replaced it meanwhile)
    });
    if (lease.ended) return;
    lease.expiresAt = expiresAt;
    lease.deadline = Math.max(lease.deadline, sentAt + leaseMs - leaseSafetyMarginMs(leaseMs));
  }

  /** Records success with the handler's (already encoded) result. */
  async succeed(lease: Lease, held: HeldTask, result: unknown): Promise<void> {
    await this.writeOutcome(lease, held, this.terminalFields('succeeded', this.now(), { result }));
  }

  /** Records a failed attempt: back to pending at `retryAt`, or failed for good. */
  async fail(lease: Lease, held: HeldTask, err: Error, outcome: FailureOutcome): Promise<void> {
    const now = this.now();
    const failure = { errors: appendError(held.errors, errorRecord(err, held.attempt, now)), errorCount: held.errorCount + 1 };
    if ('final' in outcome) {
      await this.writeOutcome(lease, held, this.terminalFields('failed', now, failure));
      return;
    }
    held.retryAt = outcome.retryAt;
    // Strict order: the retry keeps its place at the front of its key's queue (so no later task of
    // the key goes first), and waits for its time in `notBefore`; the key lock records the block.
    const position =
      this.keyPolicy.strictOrder && lease.lock
        ? { waitUntil: held.task.waitUntil, notBefore: outcome.retryAt }
        : queuePosition(outcome.retryAt, held.task.priority, now.getTime());
    await this.writeOutcome(lease, held, { status: 'pending', ...position, lease: null, updatedAt: now, ...failure });
  }

  /**
   * Writes a held task's reported progress now (`ctx.setProgress(v, { flush: true })`), fenced
   * like every write of the attempt; a report already written by a renewal is not sent again.
   */
  async writeProgress(lease: Lease, held: HeldTask): Promise<void> {
    const report = held.progress;
    if (!report?.dirty || held.settled) return;
    const now = this.now();
    const wrote = (data: DocumentData): boolean => leaseOf(data)?.token === lease.token && (data.updatedAt as { toMillis?: () => number } | undefined)?.toMillis?.() === now.getTime();
    await writeTask(this.store, lease, held, { progress: report.value, updatedAt: now }, 'renew', wrote);
    if (held.progress === report) report.dirty = false;
  }

  /** Ends a held task as `cancelled`, recording `err` (a last failed `onCancel`) if given. */
  async cancelled(lease: Lease, held: HeldTask, err?: Error): Promise<void> {
    const now = this.now();
    const failure = err ? { errors: appendError(held.errors, errorRecord(err, held.attempt, now)), errorCount: held.errorCount + 1 } : {};
    await this.writeOutcome(lease, held, this.terminalFields('cancelled', now, failure));
  }

  /**
   * Hands a held task over to its `onCancel` handler: `cancelling`, due at `at` (now, or the
   * retry time after a failed `onCancel`, which `err` records).
   */
  async toCancelling(lease: Lease, held: HeldTask, at: Date, err?: Error): Promise<void> {
    const now = this.now();
    const failure = err ? { errors: appendError(held.errors, errorRecord(err, held.attempt, now)), errorCount: held.errorCount + 1 } : {};
    await this.writeOutcome(lease, held, { status: 'cancelling', ...queuePosition(at, held.task.priority, now.getTime()), lease: null, updatedAt: now, ...failure });
  }

  /** Hands a task back, due now, without counting the attempt (its handler never ran or was stopped for shutdown). */
  async release(lease: Lease, held: HeldTask): Promise<void> {
    const now = this.now();
    const counter = held.mode === 'run' ? { status: 'pending', attempts: held.attempt - 1 } : { status: 'cancelling', cancelAttempts: held.attempt - 1 };
    // Not an attempt: no duration recorded, and the previous attempt's timing is not restored.
    await this.writeOutcome(lease, held, { ...counter, ...queuePosition(now, held.task.priority, now.getTime()), lease: null, updatedAt: now }, false);
  }

  /** Frees the key lock (if still ours and the lease still live; otherwise it simply expires). */
  async releaseLock(lease: Lease): Promise<void> {
    if (!lease.lock || lease.lock.released || lease.ended) return;
    try {
      await writeLock(this.store, lease, this.lockReleaseFields(lease), 'release', releasedBy(lease.token));
      lease.lock.released = true;
    } catch (err) {
      if (!(err instanceof LeaseLostError)) throw err;
    }
  }

  /**
   * The release of a key lock: nobody holds it; with a cooldown, the key's next task waits until
   * `cooldownUntil`; under strict order, a task of this lease that will be retried blocks the key
   * (the first, in queue order). Remembered on the held lock, so the worker's lock cache knows it.
   */
  private lockReleaseFields(lease: Lease): TaskFields {
    const now = this.now();
    const { cooldownMs, strictOrder } = this.keyPolicy;
    const retrying = strictOrder ? lease.tasks.find((t) => t.retryAt !== null) : undefined;
    const blockedBy = retrying ? { docId: retrying.docId, until: retrying.retryAt! } : null;
    const cooldownUntil = cooldownMs > 0 ? new Date(now.getTime() + cooldownMs) : null;
    // Kept past its cooldown, and while it blocks its key, whatever the retention.
    const keepMs = Math.max(this.retention.retentionMs || LOCK_RETENTION_MS, cooldownMs);
    const fields = { holder: null, releasedToken: lease.token, updatedAt: now, expireAt: blockedBy ? null : new Date(now.getTime() + keepMs), cooldownUntil, cooldownMs, blockedBy };
    if (lease.lock) lease.lock.releasedAs = { cooldownUntil, cooldownMs, blockedBy };
    return fields;
  }

  /**
   * An outcome write: the task is settled at once (no renewal is sent for it from now on, even
   * one already queued). For a single task holding a key lock, the outcome and the lock release
   * go in one atomic commit; if either document changed since our last write, it falls back to
   * the fenced write, and the lock is released after.
   */
  private async writeOutcome(lease: Lease, held: HeldTask, outcome: TaskFields | null, attemptEnded = true): Promise<void> {
    held.settled = true;
    // The attempt's duration and its last progress report go with the outcome (no write of their own).
    const timing = attemptEnded ? { durationMs: Math.max(0, this.clock() - held.startedAt) } : {};
    const progress = held.progress?.dirty ? { progress: held.progress.value } : {};
    // A deleted task needs no witness of its own: its absence is one (see ConditionalWriter).
    const fields = outcome === null ? null : { ...outcome, ...timing, ...progress, settledToken: lease.token };
    const settledByUs = (data: DocumentData): boolean => data.settledToken === lease.token;
    const { lock } = lease;
    if (lock && !lock.released && lease.tasks.length === 1 && !held.lost && !lease.ended) {
      const combined = async (): Promise<boolean> => {
        if (lease.ended) return false;
        // The lock goes first: a lost answer is resolved on the lock's state (see releasedBy),
        // so the version returned is the release's own, never a later claim's.
        const result = await this.store.commitConditional(
          [
            { target: 'lock', docId: lock.docId, fields: this.lockReleaseFields(lease), precondition: lock.updateTime },
            { target: 'task', docId: held.docId, fields, precondition: held.updateTime },
          ],
          { deadline: lease.deadline, witness: releasedBy(lease.token), what: 'outcome' },
        );
        if (!Array.isArray(result)) return false;
        lock.updateTime = result[0]!;
        held.updateTime = result[1]!;
        lock.released = true;
        return true;
      };
      // Behind any write already queued on either document.
      const both = Promise.all([held.queue, lock.queue]).then(combined, combined);
      held.queue = both.catch(() => undefined);
      lock.queue = held.queue;
      if (await both) return;
    }
    await writeTask(this.store, lease, held, fields, 'outcome', settledByUs);
  }

  /**
   * The write that ends a task: its terminal fields (with `extra`), or `null` — delete the
   * document — when the retention for that status is 0.
   */
  private terminalFields(status: 'succeeded' | 'failed' | 'cancelled', now: Date, extra: TaskFields = {}): TaskFields | null {
    const keepMs = status === 'failed' ? this.retention.failedRetentionMs : this.retention.retentionMs;
    if (keepMs === 0) return null;
    return { status, lease: null, doneAt: now, expireAt: new Date(now.getTime() + keepMs), updatedAt: now, ...extra };
  }
}

/** A new worker identity: `host:pid:random`. */
export function newWorkerId(hostname: string): string {
  return `${hostname}:${process.pid}:${randomUUID().slice(0, 8)}`;
}
