import type { Clock } from '../clock.js';
import { queuePosition } from '../priority.js';
import { EnvironmentMismatchError, InvalidOptionsError, InvalidStateError, TaskNotFoundError } from '../errors.js';
import type { TaskFields, TaskStore } from '../store/task-store.js';
import { isTaskDefinition, type TaskDefinition } from '../task-definition.js';
import { OPEN_STATUSES, TERMINAL_STATUSES, type StoredTask } from '../task-document.js';

/**
 * Administrative changes to tasks: reset, retry now, delete and cancel. Each is an optimistic
 * read-decide-write on one document (no transaction), so it never flips a task that changed
 * in between (a task that just completed is never turned into `cancelled`); each write carries
 * its own witness, so an answer lost on the way back does not change what is reported.
 * Bulk operations page with a stable cursor (document-ID order), never from the top again.
 */

/** Page size of bulk operations over a resource key. */
const BULK_PAGE = 500;

/** What the administration needs from the manager's workers in this process. */
export interface LocalWorkers {
  /** Wakes this process's workers of a kind: a task of it became due. */
  wake(kind: string): void;
  /** Aborts a task's local run at once (its cancellation was just requested here). */
  cancelLocal(kind: string, docId: string): void;
  /** A pending task can end cancelled at once when this process runs its kind without onCancel. */
  endsCancelledAtOnce(kind: string): boolean;
  /** Tells the process holding a running task (by its worker ID) that its cancellation was requested. */
  postCancel(workerId: string, docId: string): void;
}

export class TaskAdmin {
  constructor(
    private readonly store: TaskStore,
    /** How long terminal tasks are kept before TTL deletion. */
    private readonly retentionMs: number,
    private readonly clock: Clock,
    private readonly local: LocalWorkers,
  ) {}

  /** Fields that make a task new again: pending, due now, no attempts, errors, result or lease. */
  private freshFields(task: StoredTask): TaskFields {
    const now = new Date(this.clock());
    return {
      status: 'pending',
      ...queuePosition(now, task.priority, now.getTime()),
      attempts: 0,
      cancelAttempts: 0,
      cancelRequested: false,
      errors: [],
      errorCount: 0,
      result: null,
      doneAt: null,
      expireAt: null,
      lease: null,
      progress: null,
      startedAt: null,
      durationMs: null,
      updatedAt: now,
    };
  }

  /** Throws {@link EnvironmentMismatchError} if the ID exists only in other environments. */
  async assertNotElsewhere(id: string): Promise<void> {
    const others = await this.store.listing.otherEnvironmentsOf(id);
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
      const r = await this.store.mutate(id, (task) => (TERMINAL_STATUSES.includes(task.status) ? this.freshFields(task) : null));
      if (r.outcome === 'updated') {
        count++;
        this.local.wake(r.task.kind);
      }
    }
    return count;
  }

  /** Makes a pending task due now, or resets a failed one. */
  async retryNow(id: string): Promise<void> {
    const r = await this.store.mutate(id, (task) => {
      if (task.status === 'pending') return { ...queuePosition(new Date(this.clock()), task.priority, this.clock()), updatedAt: new Date(this.clock()) };
      if (task.status === 'failed') return this.freshFields(task);
      throw new InvalidStateError(`retryNow: task "${id}" is ${task.status}; only pending or failed tasks can be retried`);
    });
    if (r.outcome === 'missing') await this.missing(id);
    if (r.outcome === 'updated') this.local.wake(r.task.kind);
  }

  /** Deletes a task; false when it exists nowhere, an error when it exists in another environment. */
  async delete(id: string): Promise<boolean> {
    if (await this.store.delete(id)) return true;
    await this.assertNotElsewhere(id);
    return false;
  }

  /** Deletes many tasks; returns how many existed. IDs of other environments are refused first. */
  async deleteMany(ids: readonly string[]): Promise<number> {
    const found = await this.store.getMany(ids);
    for (const [i, id] of ids.entries()) if (found[i] === null) await this.assertNotElsewhere(id);
    return this.store.deleteMany(ids);
  }

  /**
   * Requests cancellation of one task. Returns 1 if newly cancelled, 0 if it had ended or was
   * cancelled already.
   */
  async cancel(id: string): Promise<number> {
    const r = await this.store.mutate(id, (task) => this.cancelFields(task, this.local.endsCancelledAtOnce(task.kind)));
    if (r.outcome === 'missing') return this.missing(id);
    if (r.outcome !== 'updated') return 0;
    if (r.task.status === 'running') {
      this.local.cancelLocal(r.task.kind, this.store.docId(id));
      if (r.task.lease) this.local.postCancel(r.task.lease.workerId, this.store.docId(id));
    }
    else this.local.wake(r.task.kind); // a cancelled pending task is due for onCancel now
    return 1;
  }

  /** Cancels many tasks; unknown IDs throw before anything changes. */
  async cancelMany(ids: readonly string[]): Promise<number> {
    const unique = [...new Set(ids)];
    const found = await this.store.getMany(unique);
    for (const [i, id] of unique.entries()) {
      if (found[i] === null) {
        await this.assertNotElsewhere(id);
        throw new TaskNotFoundError(id, this.store.env);
      }
    }
    let count = 0;
    for (const id of unique) count += await this.cancel(id);
    return count;
  }

  /**
   * Cancels every open task of a resource key, a page at a time in document-ID order: what it
   * changes (a pending task becoming `cancelling`, due now) never moves the cursor.
   */
  async cancelByResourceKey(kind: string, resourceKey: string): Promise<number> {
    let count = 0;
    let after: string | undefined;
    for (;;) {
      const page = await this.store.listing.pageByResourceKey(kind, resourceKey, OPEN_STATUSES, BULK_PAGE, after);
      for (const t of page.tasks) if (!t.task.cancelRequested) count += await this.cancel(t.task.id);
      if (page.next === null) return count;
      after = page.next;
    }
  }

  private cancelFields(task: StoredTask, endsAtOnce: boolean): TaskFields | null {
    if (!OPEN_STATUSES.includes(task.status) || task.cancelRequested || task.status === 'cancelling') return null;
    const now = new Date(this.clock());
    if (task.status === 'running') {
      // The worker holding the lease sees this at its next renewal (its fenced write re-reads).
      return { cancelRequested: true, updatedAt: now };
    }
    if (endsAtOnce) {
      return { status: 'cancelled', cancelRequested: true, lease: null, doneAt: now, expireAt: new Date(now.getTime() + this.retentionMs), updatedAt: now };
    }
    return { status: 'cancelling', cancelRequested: true, ...queuePosition(now, task.priority, now.getTime()), updatedAt: now };
  }
}

/** Throws unless `def` was made by `defineTask()`. */
export function assertDefinition(def: unknown): asserts def is TaskDefinition {
  if (!isTaskDefinition(def)) throw new InvalidOptionsError('expected a task definition made by defineTask()');
}
