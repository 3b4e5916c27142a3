import type { DocumentData } from '@google-cloud/firestore';
import { LeaseLostError } from '../errors.js';
import { monotonicNow } from '../store/calls.js';
import type { TaskFields, TaskStore } from '../store/task-store.js';
import type { HeldTask, Lease } from './lease.js';

/**
 * The fenced writes of a held lease: every write after the claim carries the version of our own
 * last write as precondition, is serialized with the document's other writes, and is refused
 * once the lease token is no longer the document's (or the lease's local deadline has passed).
 * Also the witnesses that tell whether a write whose answer was lost has landed.
 */

/** Fence re-checks before a fenced write gives up on a document that keeps changing. */
const MAX_FENCE_RETRIES = 10;

/** The lease field of a task (`lease`) or key lock (`holder`) as stored, if it has one. */
export function leaseOf(data: DocumentData): { token?: unknown; expiresAt?: { toMillis?: () => number } } | null {
  const lease = data.lease ?? data.holder;
  return typeof lease === 'object' && lease !== null ? (lease as { token?: unknown; expiresAt?: { toMillis?: () => number } }) : null;
}

/**
 * Witness of a key-lock release by the lease `token`: the lock is still as that release left it
 * (nobody holds it, and it names our token). Not `releasedToken` alone, which a later claim by
 * another worker leaves in place: the version read back would then be that claim's, and a
 * worker remembering it as "released" could claim the key while the other holds it.
 */
export function releasedBy(token: string): (data: DocumentData) => boolean {
  return (data) => data.releasedToken === token && data.holder === null;
}

/**
 * A task write fenced by the lease token, serialized with the task's other writes. The update
 * carries the version of our own last write as precondition; if the document changed since,
 * the current document decides: still our token means someone touched another field (e.g.
 * requested cancellation), so retry on the new version; otherwise the lease is lost and the
 * write refused. A renewal that finds the task settled sends nothing; nothing is sent after
 * the lease's local deadline.
 */
export function writeTask(
  store: TaskStore,
  lease: Lease,
  held: HeldTask,
  fields: TaskFields | null,
  purpose: 'renew' | 'outcome',
  witness: (data: DocumentData) => boolean,
): Promise<void> {
  const run = async (): Promise<void> => {
    if (held.lost) throw held.lost;
    if (purpose === 'renew' && held.settled) return;
    for (let i = 0; i < MAX_FENCE_RETRIES; i++) {
      if (lease.ended || monotonicNow() >= lease.deadline) throw new LeaseLostError(held.taskId, 'the lease expired locally before this write');
      const written = await store.updateIfUnchanged(held.docId, fields, held.updateTime, { deadline: lease.deadline, witness, what: purpose === 'renew' ? 'lease renewal' : 'outcome' });
      if (written.ok) {
        held.updateTime = written.updateTime;
        return;
      }
      const current = written.reason === 'missing' ? null : written.current;
      const decoded = current ? store.decode(current.data) : null;
      const detail = !current
        ? 'the task was deleted'
        : !decoded!.ok
          ? `the document became malformed (${decoded!.reason})`
          : decoded!.task.lease?.token !== lease.token
            ? decoded!.task.lease
              ? `taken over (worker ${decoded!.task.lease.workerId} holds attempt ${decoded!.task.attempts})`
              : `taken over (status is now ${decoded!.task.status})`
            : null;
      if (detail !== null || !current || !decoded?.ok) {
        held.lost = new LeaseLostError(held.taskId, detail ?? 'lost');
        throw held.lost;
      }
      held.updateTime = current.updateTime;
      if (decoded.task.cancelRequested && !held.cancelRequested) {
        held.cancelRequested = true;
        lease.onCancelRequested?.(held);
      }
    }
    throw new LeaseLostError(held.taskId, 'the task kept changing');
  };
  const next = held.queue.then(run, run);
  held.queue = next.catch(() => undefined);
  return next;
}

/** A lock write fenced by the lease token (like {@link writeTask}); nothing after its release. */
export function writeLock(store: TaskStore, lease: Lease, fields: TaskFields, purpose: 'renew' | 'release', witness: (data: DocumentData) => boolean): Promise<void> {
  const lock = lease.lock!;
  const taskId = lease.tasks[0]?.taskId ?? '?';
  const run = async (): Promise<void> => {
    if (lock.released) return;
    for (let i = 0; i < MAX_FENCE_RETRIES; i++) {
      if (lease.ended || monotonicNow() >= lease.deadline) throw new LeaseLostError(taskId, 'the lease expired locally before this write');
      const result = await store.commitConditional([{ target: 'lock', docId: lock.docId, fields, precondition: lock.updateTime }], {
        deadline: lease.deadline,
        witness,
        what: purpose === 'renew' ? 'key lock renewal' : 'key lock release',
      });
      if (Array.isArray(result)) {
        lock.updateTime = result[0]!;
        return;
      }
      const holder = result.current ? store.locks.decode(result.current.data)?.holder : null;
      if (!result.current || holder?.token !== lease.token) throw new LeaseLostError(taskId, 'the resource-key lock was taken over');
      lock.updateTime = result.current.updateTime;
    }
    throw new LeaseLostError(taskId, 'the resource-key lock kept changing');
  };
  const next = lock.queue.then(run, run);
  lock.queue = next.catch(() => undefined);
  return next;
}
