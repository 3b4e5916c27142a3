import type { Timestamp } from '@google-cloud/firestore';
import type { LeaseLostError } from '../errors.js';
import type { StoredTask, TaskErrorRecord } from '../task-document.js';

/**
 * What a worker holds after a claim: one token over one or more tasks and, for a resource key,
 * its lock; an expiry as stored (the holder's wall clock) and a local deadline on the monotonic
 * clock, after which the attempt neither runs nor writes, whatever renewals are doing.
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
  /** Set once its outcome write began: nothing but that write is sent for it any more. */
  settled: boolean;
  /** Set once cancellation was requested while we held it. */
  cancelRequested: boolean;
  /** Wall time (ms) of the claim: the attempt's `startedAt`. */
  readonly startedAt: number;
  /** The last `ctx.setProgress` report (already encoded), and whether it still has to be written. */
  progress: { value: unknown; dirty: boolean } | null;
  /** Set when its failed attempt was written as a retry due then (strict order blocks the key until). */
  retryAt: Date | null;
}

/** The key lock held by a lease. */
export interface HeldLock {
  readonly docId: string;
  updateTime: Timestamp;
  queue: Promise<unknown>;
  /** Set once the lock was released (with the outcome, or after it). */
  released: boolean;
  /** What the release wrote besides freeing it (cooldown, strict-order block), for the worker's lock cache. */
  releasedAs: { cooldownUntil: Date | null; cooldownMs: number; blockedBy: { docId: string; until: Date } | null } | null;
}

/** A claim: one token over one or more tasks and, for a resource key, its lock. */
export interface Lease {
  readonly token: string;
  readonly tasks: readonly HeldTask[];
  readonly lock: HeldLock | null;
  /** When the lease runs out unless renewed, as stored (this process's clock). */
  expiresAt: Date;
  /**
   * Monotonic time (`performance.now()`) by which this attempt stops: the lease's length after
   * the claim or last successful renewal was *sent*, minus a safety margin. Other workers act
   * on the stored expiry plus their clock-skew allowance, so they never act before it.
   */
  deadline: number;
  /** Set once the attempt may write no more (local deadline passed, or shutdown gave up on it). */
  ended: boolean;
  /** Called when a fenced write discovers that cancellation of a held task was requested. */
  onCancelRequested: ((task: HeldTask) => void) | null;
}

/** What a failed attempt becomes. */
export type FailureOutcome = { retryAt: Date } | { final: true };
