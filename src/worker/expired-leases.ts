import { LeaseExpiredError } from '../errors.js';
import type { ResolvedHandlerOptions } from '../handlers.js';
import type { ClaimMode } from '../lease/lease.js';
import type { OnceTaskLogger } from '../logger.js';
import { decideRetry } from '../retry.js';
import { isDue } from '../priority.js';
import type { TaskStatus } from '../task-document.js';
import type { VersionedTask } from '../store/task-store.js';
import type { WorkerSettings } from './worker-settings.js';

/** Statuses a grouped claim takes from a key's queue (cancel requests are claimed one by one). */
const GROUP_STATUSES: readonly TaskStatus[] = ['pending', 'running'];

/**
 * What a claimer decides about tasks whose previous lease expired, and which of a key's tasks
 * join a grouped claim. A lease counts as expired only `maxClockSkewMs` after its stored expiry.
 */
export class ExpiredLeases {
  constructor(
    private readonly settings: WorkerSettings,
    private readonly kind: string,
    private readonly options: ResolvedHandlerOptions,
    private readonly log: OnceTaskLogger,
  ) {}

  /** Whether a task's lease (if any) has expired for a claimer, skew allowance included. */
  isClaimable(candidate: VersionedTask, now: number): boolean {
    const { lease } = candidate.task;
    return lease === null || lease.expiresAt.getTime() + this.settings.maxClockSkewMs <= now;
  }

  /** A key's ready tasks for a grouped claim, in queue order, up to `maxBatchSize`. */
  async groupCandidates(key: string): Promise<VersionedTask[]> {
    const { tasks } = await this.settings.store.findByResourceKey(this.kind, key, GROUP_STATUSES, this.options.maxBatchSize);
    const now = this.settings.clock();
    const ready: VersionedTask[] = [];
    for (const t of tasks) {
      if (!isDue(t.task, now) || t.task.cancelRequested || t.task.recurrence !== null) continue;
      if (!this.isClaimable(t, now)) continue;
      if (await this.mayRetry(t, 'run')) ready.push(t);
    }
    return ready;
  }

  /**
   * A task whose previous attempt's lease expired counts that attempt as failed: if the policy
   * allows no more, it is ended (failed, or cancelled for `onCancel`) instead of claimed.
   */
  async mayRetry(candidate: VersionedTask, mode: ClaimMode): Promise<boolean> {
    const { task } = candidate;
    if (task.lease === null) return true;
    const attempt = mode === 'run' ? task.attempts : task.cancelAttempts;
    const policy = mode === 'run' ? this.options.retry : this.options.cancelRetry;
    const expired = new LeaseExpiredError(attempt);
    if (decideRetry(policy, attempt, expired).retry) return true;
    const { protocol } = this.settings;
    const ended = mode === 'run' ? await protocol.failExpired(candidate) : await protocol.finishCancelled(candidate, expired);
    if (ended) this.log.warn({ taskId: task.id, mode }, 'oncetask: lease expired and no attempts left; task ended');
    return false;
  }
}
