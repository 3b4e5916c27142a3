import { EnvironmentMismatchError, InvalidStateError, TaskNotFoundError } from './errors.js';
import type { TaskFields, TaskStore } from './store.js';
import { OPEN_STATUSES, TERMINAL_STATUSES, type StoredTask } from './task-document.js';

/**
 * Administrative changes to tasks: reset, retry now, delete and cancel. Each is an optimistic
 * read-decide-write on one document (no transaction), so it never flips a task that changed
 * in between (a task that just completed is never turned into `cancelled`).
 */

/** Fields that make a task new again: pending, due now, no attempts, errors, result or lease. */
function freshFields(): TaskFields {
  const now = new Date();
  return {
    status: 'pending',
    waitUntil: now,
    attempts: 0,
    cancelAttempts: 0,
    cancelRequested: false,
    errors: [],
    errorCount: 0,
    result: null,
    doneAt: null,
    expireAt: null,
    lease: null,
    updatedAt: now,
  };
}

export class TaskAdmin {
  constructor(
    private readonly store: TaskStore,
    /** How long terminal tasks are kept before TTL deletion. */
    private readonly retentionMs: number,
    /** Wakes this process's workers of a kind: a task of it became due. */
    private readonly wake: (kind: string) => void,
  ) {}

  /** Throws {@link EnvironmentMismatchError} if the ID exists only in other environments. */
  async assertNotElsewhere(id: string): Promise<void> {
    const others = await this.store.otherEnvironmentsOf(id);
    if (others.length > 0) throw new EnvironmentMismatchError(id, this.store.env, others);
  }

  /** Missing here: which error to throw. */
  private async missing(id: string): Promise<never> {
    await this.assertNotElsewhere(id);
    throw new TaskNotFoundError(id, this.store.env);
  }

  /** Resets terminal tasks; IDs of other environments are refused before anything changes. */
  async reset(ids: readonly string[]): Promise<number> {
    const unique = [...new Set(ids)];
    const found = await this.store.getMany(unique);
    for (const [i, id] of unique.entries()) if (found[i] === null) await this.assertNotElsewhere(id);
    let count = 0;
    for (const id of unique) {
      const r = await this.store.mutate(id, (task) => (TERMINAL_STATUSES.includes(task.status) ? freshFields() : null));
      if (r.outcome === 'updated') {
        count++;
        this.wake(r.task.kind);
      }
    }
    return count;
  }

  /** Makes a pending task due now, or resets a failed one. */
  async retryNow(id: string): Promise<void> {
    const r = await this.store.mutate(id, (task) => {
      if (task.status === 'pending') return { waitUntil: new Date(), updatedAt: new Date() };
      if (task.status === 'failed') return freshFields();
      throw new InvalidStateError(`retryNow: task "${id}" is ${task.status}; only pending or failed tasks can be retried`);
    });
    if (r.outcome === 'missing') await this.missing(id);
    if (r.outcome === 'updated') this.wake(r.task.kind);
  }

  /** Deletes a task; false when it exists nowhere, an error when it exists in another environment. */
  async delete(id: string): Promise<boolean> {
    if (await this.store.delete(id)) return true;
    await this.assertNotElsewhere(id);
    return false;
  }

  /**
   * Requests cancellation of one task. Returns 1 if newly cancelled, 0 if it had ended or was
   * cancelled already. `endsAtOnce(kind)` says whether a pending task of that kind can end
   * `cancelled` right away (this process knows its handler has no `onCancel`).
   */
  async cancel(id: string, endsAtOnce: (kind: string) => boolean): Promise<{ count: 0 | 1; task: StoredTask | null }> {
    const r = await this.store.mutate(id, (task) => this.cancelFields(task, endsAtOnce(task.kind)));
    if (r.outcome === 'missing') return this.missing(id);
    if (r.outcome === 'updated') this.wake(r.task.kind); // a cancelled pending task is due for onCancel now
    return { count: r.outcome === 'updated' ? 1 : 0, task: r.task };
  }

  private cancelFields(task: StoredTask, endsAtOnce: boolean): TaskFields | null {
    if (!OPEN_STATUSES.includes(task.status) || task.cancelRequested || task.status === 'cancelling') return null;
    const now = new Date();
    if (task.status === 'running') {
      // The worker holding the lease sees this at its next renewal (its fenced write re-reads).
      return { cancelRequested: true, updatedAt: now };
    }
    if (endsAtOnce) {
      return { status: 'cancelled', cancelRequested: true, lease: null, doneAt: now, expireAt: new Date(now.getTime() + this.retentionMs), updatedAt: now };
    }
    return { status: 'cancelling', cancelRequested: true, waitUntil: now, updatedAt: now };
  }
}
