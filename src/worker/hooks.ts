import { HookTimeoutError } from '../errors.js';
import type { RunningTask, TaskContext } from '../handlers.js';
import type { OnceTaskLogger } from '../logger.js';

/**
 * The manager's hooks around task attempts (an error reporter such as Sentry plugs in here),
 * called so that a hook that throws or hangs never breaks the worker: its error is logged, and
 * no hook holds a slot, a lease or `stop()` for longer than `hookTimeoutMs`.
 */

/** How an attempt ended, as recorded. */
export type TaskOutcome =
  /** The handler returned; its result is stored. */
  | 'succeeded'
  /** It failed and runs again (`retryAt` in the failure hook). */
  | 'retrying'
  /** It failed for good (no retries left, a `NonRetryableError`, or a result that cannot be stored). */
  | 'failed'
  /** The task was cancelled (a pending one, or a running one that stopped; `onCancel` done). */
  | 'cancelled'
  /** Cancelled while running, with an `onCancel` handler still to run. */
  | 'cancelling'
  /** Handed back unrun or unfinished on `stop()`: it runs again, without using up an attempt. */
  | 'released';

/** What {@link TaskHooks.onTaskFailed} learns besides the task and the error. */
export interface TaskFailureInfo {
  /** No retry follows: the task ended `failed`. */
  final: boolean;
  /** When it runs again; null when `final`. */
  retryAt: Date | null;
}

/** Hooks of a {@link OnceTaskManager} (the option `hooks`). Each may return a promise. */
export interface TaskHooks {
  /**
   * Before each attempt's handler (each task of a group, before the group's call; not before
   * `onCancel`). A throw fails the attempt the way a handler's throw does (the retry policy
   * applies), and so does taking longer than `hookTimeoutMs`.
   */
  beforeRun?: (task: RunningTask<unknown>, ctx: TaskContext) => unknown;
  /** After a failed attempt was recorded, retried or final. */
  onTaskFailed?: (task: RunningTask<unknown>, error: Error, info: TaskFailureInfo) => unknown;
  /** After any attempt's outcome was recorded (failures too, after `onTaskFailed`). */
  onTaskSettled?: (task: RunningTask<unknown>, outcome: TaskOutcome) => unknown;
}

/** Default bound of one hook call. */
export const DEFAULT_HOOK_TIMEOUT_MS = 5000;

/** Calls the manager's hooks, each bounded, and keeps track of the ones still running for `stop()`. */
export class HookRunner {
  private readonly inFlight = new Set<Promise<void>>();
  /** The library's own listeners to recorded outcomes (`drain()` counts them). */
  private readonly observers = new Set<(outcome: TaskOutcome) => void>();

  constructor(
    private readonly hooks: TaskHooks,
    private readonly timeoutMs: number,
    private readonly log: OnceTaskLogger,
  ) {}

  /** Whether a `beforeRun` hook is set (the handler call skips the hook step otherwise). */
  get hasBeforeRun(): boolean {
    return this.hooks.beforeRun !== undefined;
  }

  /** Runs `beforeRun`; rejects with its error, or with {@link HookTimeoutError} after the bound. */
  async beforeRun(task: RunningTask<unknown>, ctx: TaskContext): Promise<void> {
    const hook = this.hooks.beforeRun;
    if (!hook) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new HookTimeoutError('beforeRun', this.timeoutMs)), this.timeoutMs)));
    try {
      await Promise.race([(async () => hook(task, ctx))(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reports a recorded outcome (and, for a failure, the error first). Never throws; does not wait. */
  settled(task: RunningTask<unknown>, outcome: TaskOutcome, failure?: { error: Error; info: TaskFailureInfo }): void {
    for (const observe of this.observers) observe(outcome);
    const { onTaskFailed, onTaskSettled } = this.hooks;
    if (failure && onTaskFailed) this.fire('onTaskFailed', task, () => onTaskFailed(task, failure.error, failure.info));
    if (onTaskSettled) this.fire('onTaskSettled', task, () => onTaskSettled(task, outcome));
  }

  /** Calls `observer` with every recorded outcome until the returned function is called. */
  observe(observer: (outcome: TaskOutcome) => void): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  /** Waits for the hooks still running (each at most its bound). */
  async drain(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }

  private fire(name: string, task: RunningTask<unknown>, call: () => unknown): void {
    let timer: NodeJS.Timeout | undefined;
    const bounded = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.timeoutMs)));
    const run = Promise.race([(async () => call())().then(() => 'done' as const), bounded])
      .then((result) => {
        if (result === 'timeout') this.log.warn({ hook: name, taskId: task.id, timeoutMs: this.timeoutMs }, 'oncetask: hook did not return in time; no longer waited for');
      })
      .catch((err: unknown) => this.log.warn({ hook: name, taskId: task.id, err }, 'oncetask: hook threw; ignored'))
      .finally(() => {
        clearTimeout(timer);
        this.inFlight.delete(run);
      });
    this.inFlight.add(run);
  }
}
