import type { OnceTaskLogger } from '../logger.js';
import type { Clock } from '../clock.js';
import { ALL_KINDS, type ControlStore, type PauseEntry } from '../store/control-store.js';

/**
 * A manager's two control listeners, attached while it is started: the environment's pauses
 * (its workers stop claiming a paused kind, and resume by themselves at the pause's `until`),
 * and this process's cancel inbox (a task it runs that another process cancelled has its signal
 * aborted at once). Both are document listeners: nothing is read while nothing changes.
 */

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;

export class ProcessControl {
  private pauses = new Map<string, PauseEntry>();
  private known = false;
  private readonly subscribers = new Set<() => void>();
  private unwatch: (() => void)[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs = MIN_BACKOFF_MS;
  /** Inbox entries already handled (`docId@ms`). */
  private readonly seen = new Set<string>();
  private started = false;

  constructor(
    private readonly control: ControlStore,
    private readonly workerId: string,
    private readonly clock: Clock,
    private readonly log: OnceTaskLogger,
    /** A task this process may be running was cancelled in another process. */
    private readonly onCancelPosted: (taskDocId: string) => void,
  ) {}

  /** Attaches both listeners (idempotent). */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.attach();
  }

  /** Detaches them. The pauses last seen are kept (a restart listens again before claiming). */
  stop(): void {
    this.started = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const off of this.unwatch) off();
    this.unwatch = [];
    this.known = false;
  }

  /** Whether the pauses are known (the first snapshot arrived): workers claim only then. */
  get ready(): boolean {
    return this.known;
  }

  /** Calls `fn` whenever the pauses change (or become known). Returns the unsubscribe function. */
  subscribe(fn: () => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  /**
   * Whether `kind` is paused at wall time `now`: null if not; else until when (ms since the
   * epoch; Infinity: until `resume`). A pause of every kind counts too.
   */
  pausedUntil(kind: string, now: number): number | null {
    let until: number | null = null;
    for (const entry of [this.pauses.get(kind), this.pauses.get(ALL_KINDS)]) {
      if (!entry) continue;
      const end = entry.until === null ? Infinity : entry.until.getTime();
      if (end > now) until = Math.max(until ?? 0, end);
    }
    return until;
  }

  /** Applies pauses this process has just written (its own listener confirms them shortly). */
  apply(pauses: Map<string, PauseEntry>): void {
    this.pauses = pauses;
    this.notify();
  }

  private notify(): void {
    for (const fn of this.subscribers) fn();
  }

  private attach(): void {
    const failed = (err: Error): void => this.failed(err);
    this.unwatch.push(
      this.control.watchPauses((pauses) => {
        this.backoffMs = MIN_BACKOFF_MS;
        this.pauses = pauses;
        this.known = true;
        this.notify();
      }, failed),
    );
    this.unwatch.push(
      this.control.watchInbox(this.workerId, (cancels) => {
        const now = this.clock();
        for (const [docId, at] of cancels) {
          const entry = `${docId}@${at.getTime()}`;
          if (this.seen.has(entry)) continue;
          if (this.seen.size > 10_000) this.seen.clear();
          this.seen.add(entry);
          // Old entries (posted before this process could hold the task) are for earlier attempts.
          if (now - at.getTime() < 10 * 60_000) this.onCancelPosted(docId);
        }
      }, failed),
    );
  }

  private failed(err: Error): void {
    if (!this.started || this.retryTimer) return;
    this.log.warn({ err, retryInMs: this.backoffMs }, 'oncetask: control listener failed; re-establishing it');
    for (const off of this.unwatch) off();
    this.unwatch = [];
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.started) return;
      // Known by a read meanwhile, so workers are not held up while the listener comes back.
      void this.control.readPauses().then(
        (pauses) => {
          if (!this.started) return;
          this.pauses = pauses;
          this.known = true;
          this.notify();
        },
        () => undefined,
      );
      try {
        this.attach();
      } catch (err) {
        // (A client terminated under a started manager refuses new listeners: keep trying, quietly bounded by the backoff.)
        this.failed(err as Error);
      }
    }, this.backoffMs);
    this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
  }
}
