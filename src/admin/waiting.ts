import { assertKnownOptions } from '../known-options.js';
import { InvalidOptionsError, MalformedTaskError, TaskNotFoundError, WaitTimeoutError } from '../errors.js';
import type { OnceTaskLogger } from '../logger.js';
import type { WaitForOptions } from '../manager-options.js';
import { WAIT_FOR_OPTIONS } from '../options.js';
import type { TaskStore } from '../store/task-store.js';
import { assertValidId } from '../task-definition.js';
import { TERMINAL_STATUSES, toTaskInfo, type TaskInfo } from '../task-document.js';

/**
 * Following one task from any process: waiting for its end, or watching every change, each over
 * one listener on the task's document (`onSnapshot`), closed when done.
 */

/** setTimeout's longest delay (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class TaskWaiting {
  constructor(
    private readonly store: TaskStore,
    /** The environment waited in (named by {@link TaskNotFoundError}). */
    private readonly env: string,
    private readonly logger: OnceTaskLogger,
  ) {}

  /** {@link OnceTaskManager.waitFor}. */
  async waitFor(id: string, options: WaitForOptions = {}): Promise<TaskInfo> {
    assertValidId(id);
    assertKnownOptions(options, WAIT_FOR_OPTIONS, 'waitFor');
    const { timeoutMs, signal } = options ?? {};
    if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_TIMER_MS)) {
      throw new InvalidOptionsError(`waitFor: option "timeoutMs" must be a number of ms > 0 and at most ${MAX_TIMER_MS}`);
    }
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InvalidOptionsError('waitFor: option "signal" must be an AbortSignal');
    return new Promise<TaskInfo>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      let unsubscribe: (() => void) | undefined;
      const finish = (settle: () => void): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        unsubscribe?.();
        settle();
      };
      const onAbort = (): void => finish(() => reject(signal!.reason));
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== undefined) timer = setTimeout(() => finish(() => reject(new WaitTimeoutError(id, timeoutMs))), timeoutMs);
      try {
        unsubscribe = this.store.watchTask(
          id,
          (decoded, docId) => {
            if (decoded === null) finish(() => reject(new TaskNotFoundError(id, this.env)));
            else if (!decoded.ok) finish(() => reject(new MalformedTaskError(docId, decoded.reason)));
            else if (TERMINAL_STATUSES.includes(decoded.task.status)) finish(() => resolve(toTaskInfo(decoded.task)));
          },
          (err) => finish(() => reject(err)),
        );
      } catch (err) {
        finish(() => reject(err)); // (e.g. a terminated client): no timer or abort listener left behind
        return;
      }
      if (done) unsubscribe(); // (settled before the listener was there to close)
    });
  }

  /** {@link OnceTaskManager.watch}. */
  watch(id: string, onChange: (task: TaskInfo | null) => void, onError?: (err: Error) => void): () => void {
    assertValidId(id);
    if (typeof onChange !== 'function') throw new InvalidOptionsError('watch: onChange must be a function');
    if (onError !== undefined && typeof onError !== 'function') throw new InvalidOptionsError('watch: onError must be a function');
    const call = (fn: () => void, what: string): void => {
      try {
        fn();
      } catch (err) {
        this.logger.warn({ taskId: id, err: err instanceof Error ? err.message : String(err) }, `oncetask: watch ${what} threw`);
      }
    };
    const report = (err: Error): void => {
      if (onError) call(() => onError(err), 'onError');
      else this.logger.warn({ taskId: id, err: err.message }, 'oncetask: watch failed');
    };
    return this.store.watchTask(
      id,
      (decoded, docId) => {
        if (decoded !== null && !decoded.ok) report(new MalformedTaskError(docId, decoded.reason));
        else call(() => onChange(decoded === null ? null : toTaskInfo(decoded.task)), 'onChange');
      },
      report,
    );
  }
}
