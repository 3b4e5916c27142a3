import type { Clock } from '../clock.js';
import type { OnceTaskLogger } from '../logger.js';
import type { QueueWindow } from '../store/head-listener.js';
import type { MalformedDocument, TaskStore, VersionedTask } from '../store/task-store.js';
import type { TaskStatus } from '../task-document.js';

/**
 * Cross-process wake-ups without polling: a listener on the head of a kind's queue of pending
 * (and cancelling) tasks, its first {@link WINDOW_SIZE} by due time. When tasks in it are due (a
 * task was created, retried or released elsewhere) it hands them to the worker at once; when
 * the next lies in the future (a scheduled task, a retry) it does so at that time. A listener
 * that dies is re-established with backoff.
 *
 * Running tasks are not listened to: a claim would change the listened result (a read) for
 * every task, and so would every renewal of the earliest lease. Leases that may expire (their
 * holder died) are looked up instead: when a task leaves the listened queue (someone claimed
 * it), and when the listener attaches, one query (a second later, at attach at once) finds the
 * earliest lease of the kind, and the worker is woken when it would expire (a claim round then
 * looks for expired leases), and looks again after that while tasks run. No running task, no
 * lookups: an idle queue costs no reads.
 */

/** The statuses the head listener follows. */
const LISTENED_STATUSES: readonly TaskStatus[] = ['pending', 'cancelling'];
/**
 * How many tasks the listener shows (the window). Each costs one listener read when it enters,
 * as the head alone would; a window lets the worker claim a burst in one round instead of one
 * task per claim-and-listener round trip (see `watchQueueHead`). 16: a claim round's hand-overs
 * (the reader keeps as many), about 250 tasks/s per process at the emulator's round trip.
 */
export const WINDOW_SIZE = 16;
/** How long after a task left the listened queue its lease is looked up (coalesces a burst of claims into one lookup). */
const LEASE_LOOKUP_DELAY_MS = 1000;
export class QueueWatcher {
  private unsubscribe: (() => void) | null = null;
  private dueTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** The lookup of the earliest lease, when one is due. */
  private lookupTimer: NodeJS.Timeout | undefined;
  /** The wake-up at the earliest lease's expiry (plus the skew allowance). */
  private leaseTimer: NodeJS.Timeout | undefined;
  private backoffMs = MIN_BACKOFF_MS;
  /** The window the listener showed last. */
  private window: QueueWindow | null = null;

  constructor(
    private readonly store: TaskStore,
    private readonly kind: string,
    /**
     * Called when the worker should look at the queue: with the due tasks the listener shows,
     * and whether they are all the due tasks there are (the window was not full); with nothing
     * when only a look is wanted (a lease may have expired, the listener was re-attached).
     */
    private readonly wake: (due?: readonly VersionedTask[], complete?: boolean) => void,
    private readonly log: OnceTaskLogger,
    /** Called with a malformed document at the head of the queue. */
    private readonly onMalformed: (doc: MalformedDocument) => void,
    /** Wall time of this process. */
    private readonly clock: Clock,
    /** A running head's lease is claimable this long after its stored expiry. */
    private readonly maxClockSkewMs: number,
  ) {}

  /** Whether a listener is attached (or about to be re-attached). */
  get active(): boolean {
    return this.unsubscribe !== null || this.retryTimer !== undefined;
  }

  /** Attaches the listener if it is not (idempotent). */
  start(): void {
    if (this.active) return;
    this.unsubscribe = this.store.watchHead(
      this.kind,
      LISTENED_STATUSES,
      WINDOW_SIZE,
      (window) => {
        for (const bad of window.malformed) this.onMalformed(bad);
        this.backoffMs = MIN_BACKOFF_MS;
        this.window = window;
        this.handOver();
        // At attach (a lease may have been running before, e.g. of a process this one replaces) at once.
        if (window.first) this.lookUpLeasesSoon(0);
        else if (window.left) this.lookUpLeasesSoon();
      },
      (err) => this.onError(err),
    );
  }

  /** Detaches the listener and its timers. */
  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.window = null;
    clearTimeout(this.dueTimer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.lookupTimer);
    clearTimeout(this.leaseTimer);
    this.dueTimer = undefined;
    this.retryTimer = undefined;
    this.lookupTimer = undefined;
    this.leaseTimer = undefined;
  }

  /** A task left the listened queue: look up the earliest lease soon, unless a lookup or a lease wake-up is already set. */
  private lookUpLeasesSoon(delayMs = LEASE_LOOKUP_DELAY_MS): void {
    if (this.lookupTimer !== undefined || this.leaseTimer !== undefined || !this.active) return;
    this.lookupTimer = setTimeout(() => void this.lookUpLeases(), delayMs);
    this.lookupTimer.unref?.();
  }

  /** Finds the kind's earliest lease (one query) and sets a wake-up for when it would expire. */
  private async lookUpLeases(): Promise<void> {
    let expiresAt: Date | null;
    try {
      expiresAt = await this.store.nextDueAt(this.kind, ['running']);
    } catch (err) {
      // The sweep looks for expired leases anyway; the next claim seen looks up again.
      this.log.debug({ err }, 'oncetask: lease lookup failed');
      expiresAt = null;
    } finally {
      this.lookupTimer = undefined;
    }
    if (expiresAt === null || !this.active) return;
    const inMs = expiresAt.getTime() + this.maxClockSkewMs - this.clock();
    this.leaseTimer = setTimeout(() => {
      this.leaseTimer = undefined;
      this.wake(); // the round looks for expired leases (the pending queue is short)
      this.lookUpLeasesSoon(); // tasks may still run (renewed): the next earliest lease
    }, Math.min(Math.max(0, inMs), MAX_TIMER_MS));
    this.leaseTimer.unref?.();
  }

  /**
   * Hands the window's due tasks to the worker, and sets a wake-up for the next one to come due.
   * A cancelling task comes due when its lease expires, plus the clock-skew allowance; one that
   * priority put ahead of its due time, at that time.
   */
  private handOver(): void {
    clearTimeout(this.dueTimer);
    this.dueTimer = undefined;
    const window = this.window;
    if (window === null) return;
    const now = this.clock();
    const due: VersionedTask[] = [];
    let nextAt = Infinity;
    for (const t of window.tasks) {
      const at = (t.task.notBefore ?? t.task.waitUntil).getTime() + (t.task.lease ? this.maxClockSkewMs : 0);
      if (at <= now) due.push(t);
      else nextAt = Math.min(nextAt, at);
    }
    // Due now: hand them over, so the worker can claim them without querying first.
    if (due.length > 0) this.wake(due, window.complete);
    // setTimeout caps at ~24.8 days; a later head re-arms when the listener fires again.
    if (Number.isFinite(nextAt)) this.dueTimer = setTimeout(() => this.handOver(), Math.min(nextAt - now, MAX_TIMER_MS));
  }

  private onError(err: Error): void {
    this.log.warn({ err, retryInMs: this.backoffMs }, 'oncetask: queue listener failed; re-establishing it');
    this.unsubscribe = null;
    this.window = null;
    clearTimeout(this.dueTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.start();
      this.wake(); // something may have come due while the listener was down
    }, this.backoffMs);
    this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
  }
}

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;
const MAX_TIMER_MS = 2 ** 31 - 1;
