import type { ClaimMode, HeldTask } from '../lease/lease.js';
import type { VersionedTask } from '../store/task-store.js';

/**
 * Which candidates of a page a claim round tries: not those held in this process, not those
 * under a lease that may still be live for its holder (skew allowance), at most one per
 * resource key and none of a key held here. Generators are picked to spawn.
 */

/** A candidate chosen for a claim (or, for a recurring generator, a spawn). */
export interface Pick {
  candidate: VersionedTask;
  mode: ClaimMode | 'spawn';
}

/** What the picking needs to know of the worker. */
export interface PickContext {
  /** Wall time of the round. */
  now: number;
  /** Keys already picked in this round (updated). */
  seenKeys: Set<string>;
  maxClockSkewMs: number;
  /** The task as held in this process, if it is. */
  heldHere(docId: string): HeldTask | undefined;
  /** Whether a run in this process holds the key. */
  isKeyHeldHere(key: string): boolean;
  /** Whether a task's lease (if any) has expired for a claimer, skew allowance included. */
  isClaimable(candidate: VersionedTask): boolean;
}

/**
 * The picks among `tasks`, in order; `skippedBusy` when a due candidate was passed over because
 * it or its key is busy (the round then reads on, or re-checks soon), and the earliest time a
 * passed-over lease may count as expired (`busyUntil`).
 */
export function pickCandidates(tasks: readonly VersionedTask[], ctx: PickContext): { picks: Pick[]; skippedBusy: boolean; busyUntil: number | null } {
  const picks: Pick[] = [];
  let skippedBusy = false;
  let busyUntil: number | null = null;
  for (const candidate of tasks) {
    const held = ctx.heldHere(candidate.docId);
    if (held) {
      // Held here. A copy older than our own last write is just stale; a newer one is the
      // task after our outcome (a retry waiting for its stubborn handler to return): busy,
      // and only a look at the queue (not the listener) will notice when it is free.
      if (isNewer(candidate.updateTime, held.updateTime)) skippedBusy = true;
      continue;
    }
    const { task } = candidate;
    if (task.notBefore !== null && task.notBefore.getTime() > ctx.now) {
      // Priority put it ahead in the queue, but it is not due yet: look again when it is.
      busyUntil = busyUntil === null ? task.notBefore.getTime() : Math.min(busyUntil, task.notBefore.getTime());
      skippedBusy = true;
      continue;
    }
    if (task.lease !== null && !ctx.isClaimable(candidate)) {
      // Expired by our clock but maybe not by the holder's: wait out the skew allowance.
      const at = task.lease.expiresAt.getTime() + ctx.maxClockSkewMs;
      busyUntil = busyUntil === null ? at : Math.min(busyUntil, at);
      skippedBusy = true;
      continue;
    }
    const cancel = task.status === 'cancelling' || task.cancelRequested;
    if (task.recurrence !== null) {
      // Generators spawn (or, when cancelled, just end): no handler, no key lock.
      picks.push({ candidate, mode: cancel ? 'cancel' : 'spawn' });
      continue;
    }
    const key = task.resourceKey;
    if (key !== null) {
      if (ctx.seenKeys.has(key) || ctx.isKeyHeldHere(key)) {
        skippedBusy = true;
        continue;
      }
      ctx.seenKeys.add(key);
    }
    picks.push({ candidate, mode: cancel ? 'cancel' : 'run' });
  }
  return { picks, skippedBusy, busyUntil };
}

/** Whether version `a` of a document is later than version `b`. */
function isNewer(a: VersionedTask['updateTime'], b: VersionedTask['updateTime']): boolean {
  return a.seconds > b.seconds || (a.seconds === b.seconds && a.nanoseconds > b.nanoseconds);
}
