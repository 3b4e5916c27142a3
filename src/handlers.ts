import type { OnceTaskLogger } from './logger.js';
import type { RetryPolicy } from './retry.js';
import type { TaskOccurrence, TaskProgress } from './task-document.js';
import type { SetProgressOptions } from './worker/progress.js';

/**
 * The shapes of user handlers and of what they receive.
 */

/** What a handler receives besides the task. */
export interface TaskContext {
  /**
   * Aborted when the attempt must stop: `timeoutMs` passed (`HANDLER_TIMEOUT`), the task was
   * cancelled (`TASK_CANCELLED`), its lease was lost (`LEASE_LOST`) or the worker shuts down
   * (`SHUTDOWN`). `signal.reason` is the matching {@link OnceTaskError}.
   */
  signal: AbortSignal;
  /** 1-based number of this attempt. */
  attempt: number;
  /** Logger bound to this task and attempt. */
  logger: OnceTaskLogger;
  /** For an occurrence of a recurring task: its slot and generator; otherwise null. */
  occurrence: TaskOccurrence | null;
  /**
   * Reports how far the attempt has got: a number in [0, 1] or a small object (at most 4 KiB as
   * JSON), stored on the task as `progress` and visible to `get` in any process. By default it
   * rides on the next lease renewal (every third of `leaseMs`; no extra write); with
   * `{ flush: true }` it is written now, at most once a second per task (one write). Rejects
   * with `LeaseLostError` once the attempt can no longer write, and with `InvalidOptionsError`
   * for a bad value. Reset to null when a new attempt starts.
   */
  setProgress(value: TaskProgress, options?: SetProgressOptions): Promise<void>;
}

/** The task a handler runs. */
export interface RunningTask<T> {
  id: string;
  kind: string;
  /** The payload, parsed by the kind's schema. */
  data: T;
  resourceKey: string | null;
  /** 1-based number of this attempt (of `onCancel` attempts, in `onCancel`). */
  attempt: number;
  createdAt: Date;
  /** When the task was due. */
  waitUntil: Date;
  /** For an occurrence of a recurring task: its slot and generator; otherwise null. */
  occurrence: TaskOccurrence | null;
}

/** A handler: its return value is stored as the task's `result`. */
export type TaskHandler<T, R = unknown> = (task: RunningTask<T>, ctx: TaskContext) => R | Promise<R>;

/** What a grouped handler receives besides its tasks. */
export interface GroupContext {
  /** Aborted on timeout, lost key lease or shutdown (not when one task of the group is cancelled). */
  signal: AbortSignal;
  /** The group's resource key (`null` for a task without one: a group of one). */
  resourceKey: string | null;
  /** Logger bound to this group. */
  logger: OnceTaskLogger;
  /** Whether cancellation of this task (by ID) was requested while the group runs. */
  isCancelled(taskId: string): boolean;
  /** `ctx.setProgress` of one task of the group (see {@link TaskContext.setProgress}). */
  setProgress(taskId: string, value: TaskProgress, options?: SetProgressOptions): Promise<void>;
}

/**
 * A grouped handler: receives every ready task of one resource key (up to `maxBatchSize`), in
 * queue order. Return nothing (all succeed), or an array with one entry per task: an `Error`
 * fails that task (its retry policy applies), anything else is its stored result. Throwing
 * fails every task of the group.
 */
export type GroupHandler<T> = (
  tasks: RunningTask<T>[],
  ctx: GroupContext,
) => void | readonly unknown[] | Promise<void | readonly unknown[]>;

/** Cleanup run once (with retries) for a cancelled task. */
export type CancelHandler<T> = (task: RunningTask<T>, ctx: TaskContext) => unknown;

/** Options shared by `handle` and `handleGroup`. */
export interface HandlerOptions<T = unknown> {
  /** Retry policy. Default `exponentialBackoff()` (3 attempts, 1 s base, x2, 5 min cap, jitter). */
  retry?: RetryPolicy;
  /** Lease length; renewed every third of it while the handler runs. Default 10 minutes. */
  leaseMs?: number;
  /** Handler calls of this kind running at once in this process. Default 1. */
  concurrency?: number;
  /** Abort the handler's signal and fail the attempt after this long. Default: no limit. */
  timeoutMs?: number;
  /** Runs for each cancelled task, after a running attempt stopped or instead of a pending one. */
  onCancel?: CancelHandler<T>;
  /** Retry policy of `onCancel`, with its own attempt counter. Default `exponentialBackoff({ maxAttempts: 5, maxMs: 10 min })`. */
  cancelRetry?: RetryPolicy;
  /**
   * Kinds with a `resourceKey` only: after a task of a key finishes (any outcome), the key's next
   * task starts no sooner than this many ms later, in any process; if the worker running it dies,
   * the cooldown runs from its lease's expiry. Kept on the key's lock document, in the commit that
   * releases it (no extra write). Default 0.
   */
  cooldownMs?: number;
}

/** Options of `handleGroup`. */
export interface GroupHandlerOptions<T = unknown> extends HandlerOptions<T> {
  /** Most tasks handed to one call. Default 100. */
  maxBatchSize?: number;
}

/** Handler options after defaults and validation. */
export interface ResolvedHandlerOptions {
  retry: RetryPolicy;
  leaseMs: number;
  concurrency: number;
  timeoutMs: number | undefined;
  cancelRetry: RetryPolicy;
  maxBatchSize: number;
  cooldownMs: number;
}

/** What a kind's worker runs: a single-task handler or a grouped one, and maybe `onCancel`. */
export type HandlerSpec<T> =
  | { mode: 'single'; handler: TaskHandler<T>; onCancel: CancelHandler<T> | undefined }
  | { mode: 'group'; handler: GroupHandler<T>; onCancel: CancelHandler<T> | undefined };
