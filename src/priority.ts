import { InvalidOptionsError } from './errors.js';

/**
 * Priorities without a second query shape. The queue is read in `waitUntil` order, so a task's
 * priority moves its queue position (`waitUntil`) ahead of its due time by `priority` ×
 * {@link PRIORITY_STEP_MS}; its real due time is kept in `notBefore`, and no worker claims it
 * before then. The exact rule: among tasks whose due time has passed, a task of priority p is
 * ordered as if it had come due p seconds earlier than it did (ties: creation order). So a
 * priority-0 task is passed over only by tasks that came due at most 1000 s (the highest
 * priority) after it: no work is starved for longer than that.
 */

/** Queue-position shift of one priority step, in ms. */
export const PRIORITY_STEP_MS = 1000;
/** Highest priority (a shift of 1000 s). */
export const MAX_PRIORITY = 1000;

/** Checks a priority from a caller or a definition's `priority(data)`. */
export function assertPriority(value: unknown, where: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_PRIORITY) {
    throw new InvalidOptionsError(`${where}: priority must be an integer from 0 to ${MAX_PRIORITY} (got ${String(value)})`);
  }
}

/**
 * Where a task due at `dueAt` with `priority` sits in the queue, written at wall time `now`:
 * its `waitUntil` (the queue position) and `notBefore` (the due time, whenever the position is
 * ahead of it: claims skip the task until then; null for priority 0).
 */
export function queuePosition(dueAt: Date, priority: number, now: number): { waitUntil: Date; notBefore: Date | null } {
  if (priority === 0) return { waitUntil: dueAt, notBefore: null };
  // (`now` is not needed for the rule; kept so callers state when the position was computed.)
  void now;
  return { waitUntil: new Date(dueAt.getTime() - priority * PRIORITY_STEP_MS), notBefore: dueAt };
}

/** Whether a task may start at `now`: its due time (not only its queue position) has come. */
export function isDue(task: { waitUntil: Date; notBefore: Date | null }, now: number): boolean {
  return (task.notBefore ?? task.waitUntil).getTime() <= now;
}
