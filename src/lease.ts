import { randomUUID } from 'node:crypto';
import type { Timestamp } from '@google-cloud/firestore';
import { LeaseExpiredError, LeaseLostError, type OnceTaskError } from './errors.js';
import type { VersionedLock, ConditionalWrite, TaskFields, TaskStore, VersionedTask } from './store.js';
import { appendError, type StoredTask, type TaskErrorRecord } from './task-document.js';

/**
 * The claim and lease protocol. A claim is a conditional write (`lastUpdateTime` precondition;
 * no transaction, no lock) that stamps a fresh random token on the task(s) and, for a resource
 * key, on the key's lock document, all in one atomic commit. Every later write for that claim
 * (renewal, outcome, release) is fenced by the token, so a worker whose lease was taken over
 * can never overwrite the newer attempt.
 */

/** `run` runs the kind's handler; `cancel` runs its `onCancel` handler. */
export type ClaimMode = 'run' | 'cancel';

/** One task held by a lease. */
export interface HeldTask {
  readonly docId: string;
  readonly taskId: string;
  /** The task as claimed (payload, key, creation time). */
  readonly task: StoredTask;
  readonly mode: ClaimMode;
  /** 1-based attempt of this claim: `attempts` in run mode, `cancelAttempts` in cancel mode. */
  readonly attempt: number;
  /** Errors and count as of the claim, to append the outcome to. */
  readonly errors: readonly TaskErrorRecord[];
  readonly errorCount: number;
  /** Version of our last write: the precondition of the next one. */
  updateTime: Timestamp;
  /** Serializes this task's writes so a renewal and an outcome never race. */
  queue: Promise<unknown>;
  /** Set once a fenced write found the task taken over or deleted: why. */
  lost: LeaseLostError | null;
  /** Set once cancellation was requested while we held it. */
  cancelRequested: boolean;
}

/** The key lock held by a lease. */
export interface HeldLock {
  readonly docId: string;
  updateTime: Timestamp;
  queue: Promise<unknown>;
  /** Set once the lock was released (with the outcome, or after it). */
  released: boolean;
}

/** A claim: one token over one or more tasks and, for a resource key, its lock. */
export interface Lease {
  readonly token: string;
  readonly tasks: readonly HeldTask[];
  readonly lock: HeldLock | null;
  /** When the lease runs out unless renewed (local clock). */
  expiresAt: Date;
  /** Called when a fenced write discovers that cancellation of a held task was requested. */
  onCancelRequested: ((task: HeldTask) => void) | null;
}

/** What a failed attempt becomes. */
export type FailureOutcome = { retryAt: Date } | { final: true };

/** Fence re-checks before a fenced write gives up on a document that keeps changing. */
const MAX_FENCE_RETRIES = 10;

function errorRecord(err: Error, attempt: number, at: Date): TaskErrorRecord {
  const code = (err as { code?: unknown }).code;
  return { at, attempt, message: err.message.slice(0, 4000), code: typeof code === 'string' ? code : null };
}

export class LeaseProtocol {
  constructor(
    private readonly store: TaskStore,
    /** Identifies this process in leases (`host:pid:random`). */
    readonly workerId: string,
    /** How long terminal tasks (and idle key locks) are kept before TTL deletion. */
    private readonly retentionMs: number,
  ) {}

  /**
   * Claims due candidates for `leaseMs` in one atomic commit, together with the key lock when
   * given. Returns `null` when another worker changed any of them first: the caller moves on.
   */
  async claim(
    candidates: readonly VersionedTask[],
    options: { leaseMs: number; mode: ClaimMode; lock?: VersionedLock & { kind: string; resourceKey: string } },
  ): Promise<Lease | null> {
    const now = new Date();
    const expiresAt = new Date(now.getTime() + options.leaseMs);
    const token = randomUUID();
    const leaseField = { token, workerId: this.workerId, expiresAt };
    const held: Omit<HeldTask, 'updateTime' | 'queue' | 'lost' | 'cancelRequested'>[] = [];
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
        lease: leaseField,
        errors,
        errorCount,
        updatedAt: now,
      };
      writes.push({ target: 'task', docId, fields, precondition: updateTime });
      held.push({ docId, taskId: task.id, task, mode: options.mode, attempt, errors, errorCount });
    }
    const { lock } = options;
    if (lock) {
      writes.push({
        target: 'lock',
        docId: lock.docId,
        precondition: lock.updateTime ?? 'absent',
        fields: lock.updateTime
          ? { holder: leaseField, updatedAt: now, expireAt: null }
          : { env: this.store.env, kind: lock.kind, resourceKey: lock.resourceKey, holder: leaseField, updatedAt: now, expireAt: null },
      });
    }
    let versions: (Timestamp | undefined)[] | null;
    if (writes.length === 1) {
      const only = writes[0]!;
      const written = await this.store.updateIfUnchanged(only.docId, only.fields, only.precondition as Timestamp);
      versions = written.ok ? [written.updateTime] : null;
    } else {
      versions = await this.store.commitConditional(writes);
    }
    if (!versions) return null;
    return {
      token,
      expiresAt,
      onCancelRequested: null,
      tasks: held.map((h, i) => ({
        ...h,
        updateTime: versions[i]!,
        queue: Promise.resolve(),
        lost: null,
        cancelRequested: h.task.cancelRequested,
      })),
      lock: lock ? { docId: lock.docId, updateTime: versions[held.length]!, queue: Promise.resolve(), released: false } : null,
    };
  }

  // ---- ending tasks without a claim (conditional on the version read) --------------------

  /** Fails a task whose lease expired when its retry policy allows no more attempts. */
  async failExpired(candidate: VersionedTask): Promise<boolean> {
    const { task } = candidate;
    const now = new Date();
    const error = errorRecord(new LeaseExpiredError(task.attempts), task.attempts, now);
    const written = await this.store.updateIfUnchanged(
      candidate.docId,
      { ...this.terminalFields('failed', now), errors: appendError(task.errors, error), errorCount: task.errorCount + 1 },
      candidate.updateTime,
    );
    return written.ok;
  }

  /** Ends a cancel-requested task as `cancelled` without running anything (no `onCancel`). */
  async finishCancelled(candidate: VersionedTask, err?: Error): Promise<boolean> {
    const { task } = candidate;
    const now = new Date();
    const failure = err
      ? { errors: appendError(task.errors, errorRecord(err, task.cancelAttempts, now)), errorCount: task.errorCount + 1 }
      : {};
    const written = await this.store.updateIfUnchanged(
      candidate.docId,
      { ...this.terminalFields('cancelled', now), ...failure },
      candidate.updateTime,
    );
    return written.ok;
  }

  /** Fails a document that is not a valid task. */
  async failMalformed(docId: string, updateTime: Timestamp, error: OnceTaskError): Promise<boolean> {
    const now = new Date();
    const written = await this.store.updateIfUnchanged(
      docId,
      { ...this.terminalFields('failed', now), errors: [errorRecord(error, 0, now)], errorCount: 1 },
      updateTime,
    );
    return written.ok;
  }

  // ---- writes under a lease ---------------------------------------------------------------

  /**
   * Extends the lease by `leaseMs` from now. Throws {@link LeaseLostError} when the key lock or
   * every task was lost; a single lost task of a group is only marked `lost`.
   */
  async renew(lease: Lease, leaseMs: number): Promise<void> {
    const now = new Date();
    const expiresAt = new Date(now.getTime() + leaseMs);
    const leaseField = { token: lease.token, workerId: this.workerId, expiresAt };
    const live = lease.tasks.filter((t) => !t.lost);
    const results = await Promise.allSettled([
      ...live.map((t) => this.writeTask(lease, t, { waitUntil: expiresAt, lease: leaseField, updatedAt: now })),
      ...(lease.lock ? [this.writeLock(lease, { holder: leaseField, updatedAt: now })] : []),
    ]);
    const lockResult = lease.lock ? results[results.length - 1] : undefined;
    if (lockResult?.status === 'rejected') throw lockResult.reason;
    if (lease.tasks.every((t) => t.lost)) throw lease.tasks[0]!.lost;
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected' && !(r.reason instanceof LeaseLostError));
    if (failure) throw failure.reason;
    lease.expiresAt = expiresAt;
  }

  /** Records success with the handler's (already encoded) result. */
  async succeed(lease: Lease, held: HeldTask, result: unknown): Promise<void> {
    await this.writeOutcome(lease, held, { ...this.terminalFields('succeeded', new Date()), result });
  }

  /** Records a failed attempt: back to pending at `retryAt`, or failed for good. */
  async fail(lease: Lease, held: HeldTask, err: Error, outcome: FailureOutcome): Promise<void> {
    const now = new Date();
    const failure = { errors: appendError(held.errors, errorRecord(err, held.attempt, now)), errorCount: held.errorCount + 1 };
    if ('final' in outcome) {
      await this.writeOutcome(lease, held, { ...this.terminalFields('failed', now), ...failure });
    } else {
      await this.writeOutcome(lease, held, { status: 'pending', waitUntil: outcome.retryAt, lease: null, updatedAt: now, ...failure });
    }
  }

  /** Ends a held task as `cancelled`, recording `err` (a last failed `onCancel`) if given. */
  async cancelled(lease: Lease, held: HeldTask, err?: Error): Promise<void> {
    const now = new Date();
    const failure = err ? { errors: appendError(held.errors, errorRecord(err, held.attempt, now)), errorCount: held.errorCount + 1 } : {};
    await this.writeOutcome(lease, held, { ...this.terminalFields('cancelled', now), ...failure });
  }

  /**
   * Hands a held task over to its `onCancel` handler: `cancelling`, due at `at` (now, or the
   * retry time after a failed `onCancel`, which `err` records).
   */
  async toCancelling(lease: Lease, held: HeldTask, at: Date, err?: Error): Promise<void> {
    const now = new Date();
    const failure = err ? { errors: appendError(held.errors, errorRecord(err, held.attempt, now)), errorCount: held.errorCount + 1 } : {};
    await this.writeOutcome(lease, held, { status: 'cancelling', waitUntil: at, lease: null, updatedAt: now, ...failure });
  }

  /** Hands a task back, due now, without counting the attempt (used on shutdown). */
  async release(lease: Lease, held: HeldTask): Promise<void> {
    const now = new Date();
    const counter = held.mode === 'run' ? { status: 'pending', attempts: held.attempt - 1 } : { status: 'cancelling', cancelAttempts: held.attempt - 1 };
    await this.writeOutcome(lease, held, { ...counter, waitUntil: now, lease: null, updatedAt: now });
  }

  /** Frees the key lock (if still ours; a lock taken over is left alone). */
  async releaseLock(lease: Lease): Promise<void> {
    if (!lease.lock || lease.lock.released) return;
    try {
      await this.writeLock(lease, this.lockReleaseFields(new Date()));
      lease.lock.released = true;
    } catch (err) {
      if (!(err instanceof LeaseLostError)) throw err;
    }
  }

  private lockReleaseFields(now: Date): TaskFields {
    return { holder: null, updatedAt: now, expireAt: new Date(now.getTime() + this.retentionMs) };
  }

  /**
   * An outcome write. For a single task holding a key lock, the outcome and the lock release
   * go in one atomic commit (one round trip instead of two); if either document changed since
   * our last write, it falls back to the fenced write, and the lock is released after.
   */
  private async writeOutcome(lease: Lease, held: HeldTask, fields: TaskFields): Promise<void> {
    const { lock } = lease;
    if (lock && !lock.released && lease.tasks.length === 1 && !held.lost) {
      const versions = await this.store.commitConditional([
        { target: 'task', docId: held.docId, fields, precondition: held.updateTime },
        { target: 'lock', docId: lock.docId, fields: this.lockReleaseFields(new Date()), precondition: lock.updateTime },
      ]);
      if (versions) {
        held.updateTime = versions[0]!;
        lock.updateTime = versions[1]!;
        lock.released = true;
        return;
      }
    }
    await this.writeTask(lease, held, fields);
  }

  private terminalFields(status: 'succeeded' | 'failed' | 'cancelled', now: Date): TaskFields {
    return { status, lease: null, doneAt: now, expireAt: new Date(now.getTime() + this.retentionMs), updatedAt: now };
  }

  /**
   * A task write fenced by the lease token. The update carries the version of our own last
   * write as precondition; if the document changed since, it is re-read: still our token means
   * someone touched another field (e.g. requested cancellation), so retry on the new version;
   * otherwise the lease is lost and the write refused.
   */
  private writeTask(lease: Lease, held: HeldTask, fields: TaskFields): Promise<void> {
    const run = async (): Promise<void> => {
      if (held.lost) throw held.lost;
      for (let i = 0; i < MAX_FENCE_RETRIES; i++) {
        const written = await this.store.updateIfUnchanged(held.docId, fields, held.updateTime);
        if (written.ok) {
          held.updateTime = written.updateTime;
          return;
        }
        const current = written.reason === 'missing' ? null : await this.store.readDoc(held.docId);
        const detail = !current
          ? 'the task was deleted'
          : !current.decoded.ok
            ? `the document became malformed (${current.decoded.reason})`
            : current.decoded.task.lease?.token !== lease.token
              ? current.decoded.task.lease
                ? `taken over (worker ${current.decoded.task.lease.workerId} holds attempt ${current.decoded.task.attempts})`
                : `taken over (status is now ${current.decoded.task.status})`
              : null;
        if (detail !== null || !current || !current.decoded.ok) {
          held.lost = new LeaseLostError(held.taskId, detail ?? 'lost');
          throw held.lost;
        }
        held.updateTime = current.updateTime;
        if (current.decoded.task.cancelRequested && !held.cancelRequested) {
          held.cancelRequested = true;
          lease.onCancelRequested?.(held);
        }
      }
      throw new LeaseLostError(held.taskId, 'the document kept changing under the lease');
    };
    const next = held.queue.then(run, run);
    held.queue = next.catch(() => undefined);
    return next;
  }

  /** A lock write fenced by the lease token (same scheme as task writes). */
  private writeLock(lease: Lease, fields: TaskFields): Promise<void> {
    const lock = lease.lock!;
    const run = async (): Promise<void> => {
      for (let i = 0; i < MAX_FENCE_RETRIES; i++) {
        const written = await this.store.updateLockIfUnchanged(lock.docId, fields, lock.updateTime);
        if (written.ok) {
          lock.updateTime = written.updateTime;
          return;
        }
        const current = written.reason === 'missing' ? null : await this.store.readLock(lock.docId);
        if (!current || current.lock?.holder?.token !== lease.token) {
          throw new LeaseLostError(lease.tasks[0]?.taskId ?? '?', 'the resource-key lock was taken over');
        }
        lock.updateTime = current.updateTime;
      }
      throw new LeaseLostError(lease.tasks[0]?.taskId ?? '?', 'the resource-key lock kept changing');
    };
    const next = lock.queue.then(run, run);
    lock.queue = next.catch(() => undefined);
    return next;
  }
}

/** A new worker identity: `host:pid:random`. */
export function newWorkerId(hostname: string): string {
  return `${hostname}:${process.pid}:${randomUUID().slice(0, 8)}`;
}
