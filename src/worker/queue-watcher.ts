import type { Clock } from '../clock.js';
import type { OnceTaskLogger } from '../logger.js';
import type { MalformedDocument, TaskStore, VersionedTask } from '../store/task-store.js';
import { CLAIMABLE_STATUSES } from '../task-document.js';

/**
 * Cross-process wake-ups without polling: a listener on the head of a kind's queue. When the
 * head is due (a task was created, retried or released elsewhere) it wakes the worker at once;
 * when the head lies in the future (a scheduled task, a retry, a lease that may expire) it
 * wakes the worker at that time. A listener that dies is re-established with backoff.
 */
export class QueueWatcher {
  private unsubscribe: (() => void) | null = null;
  private dueTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs = MIN_BACKOFF_MS;

  constructor(
    private readonly store: TaskStore,
    private readonly kind: string,
    /** Called when the worker should look at the queue; with the due head task when known. */
    private readonly wake: (dueHead?: VersionedTask) => void,
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
      CLAIMABLE_STATUSES,
      (dueAt, head, malformed) => {
        if (malformed) this.onMalformed(malformed);
        this.onHead(dueAt, head);
      },
      (err) => this.onError(err),
    );
  }

  /** Detaches the listener and its timers. */
  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    clearTimeout(this.dueTimer);
    clearTimeout(this.retryTimer);
    this.dueTimer = undefined;
    this.retryTimer = undefined;
  }

  private onHead(dueAt: Date | null, head: VersionedTask | null): void {
    this.backoffMs = MIN_BACKOFF_MS;
    clearTimeout(this.dueTimer);
    if (dueAt === null) return;
    // A running head comes due when its lease expires, plus the clock-skew allowance; a head
    // that priority put ahead of its due time, at that time.
    const skew = head?.task.lease ? this.maxClockSkewMs : 0;
    const inMs = (head?.task.notBefore ?? dueAt).getTime() + skew - this.clock();
    // Due now: hand the head over, so the worker can claim it without querying first.
    if (inMs <= 0) this.wake(head ?? undefined);
    // setTimeout caps at ~24.8 days; a later head re-arms when the listener fires again.
    else this.dueTimer = setTimeout(() => this.wake(head ?? undefined), Math.min(inMs, MAX_TIMER_MS));
  }

  private onError(err: Error): void {
    this.log.warn({ err, retryInMs: this.backoffMs }, 'oncetask: queue listener failed; re-establishing it');
    this.unsubscribe = null;
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
