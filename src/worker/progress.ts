import { InvalidOptionsError, LeaseLostError } from '../errors.js';
import type { HeldTask, Lease } from '../lease/lease.js';
import type { LeaseProtocol } from '../lease/protocol.js';
import { monotonicNow } from '../store/calls.js';
import type { TaskProgress } from '../task-document.js';
import { toFirestoreValue } from '../values.js';

/**
 * `ctx.setProgress`: a report is kept on the held task and rides on the next lease renewal (or
 * the outcome) by default, so it costs no write of its own; `{ flush: true }` writes it now,
 * at most once a second per task (a flush asked for sooner waits, and writes the newest report).
 * Every write is fenced like the attempt's others: after a lost lease the report is refused.
 */

/** Most characters of a progress object as JSON. */
export const MAX_PROGRESS_JSON = 4096;
/** Least time between two flushed progress writes of one task. */
export const PROGRESS_FLUSH_INTERVAL_MS = 1000;

/** Options of `ctx.setProgress`. */
export interface SetProgressOptions {
  /** Write now (at most once a second per task) instead of with the next lease renewal. Default false. */
  flush?: boolean;
}

/** Checks and encodes a progress report: a number in [0, 1] or a plain object of at most 4 KiB as JSON. */
export function encodeProgress(value: unknown): unknown {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0 || value > 1) throw new InvalidOptionsError(`setProgress: a number must be in [0, 1] (got ${value})`);
    return value;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidOptionsError('setProgress: expected a number in [0, 1] or a plain object');
  let json: string;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw new InvalidOptionsError(`setProgress: the object cannot be serialized (${(err as Error).message})`);
  }
  if (json.length > MAX_PROGRESS_JSON) throw new InvalidOptionsError(`setProgress: the object is ${json.length} characters as JSON; at most ${MAX_PROGRESS_JSON}`);
  return toFirestoreValue(value, 'progress');
}

/** The progress reporting of one held task. */
export class ProgressReporter {
  private lastFlushAt = -Infinity;
  private scheduled: Promise<void> | null = null;

  constructor(
    private readonly lease: Lease,
    private readonly held: HeldTask,
    private readonly protocol: LeaseProtocol,
  ) {}

  /** Records a report (see {@link SetProgressOptions}); rejects once the attempt can write no more. */
  report(value: TaskProgress, options: SetProgressOptions = {}): Promise<void> {
    if (this.held.lost) return Promise.reject(this.held.lost);
    if (this.lease.ended || this.held.settled) return Promise.reject(new LeaseLostError(this.held.taskId, 'the attempt is over; progress can no longer be written'));
    let encoded: unknown;
    try {
      encoded = encodeProgress(value);
    } catch (err) {
      return Promise.reject(err);
    }
    this.held.progress = { value: encoded, dirty: true };
    return options.flush ? this.flush() : Promise.resolve();
  }

  private flush(): Promise<void> {
    // A flush already waiting writes the newest report when its turn comes.
    if (this.scheduled) return this.scheduled;
    const wait = this.lastFlushAt + PROGRESS_FLUSH_INTERVAL_MS - monotonicNow();
    const turn = wait > 0 ? new Promise<void>((resolve) => setTimeout(resolve, wait)) : Promise.resolve();
    // (`then` runs after the assignment below, so a flush asked for during the write waits its turn.)
    this.scheduled = turn.then(() => {
      this.scheduled = null;
      this.lastFlushAt = monotonicNow();
      return this.protocol.writeProgress(this.lease, this.held);
    });
    return this.scheduled;
  }
}
