import { LeaseLostError } from '../errors.js';
import type { OnceTaskLogger } from '../logger.js';
import { monotonicNow } from '../store/calls.js';
import type { Lease } from './lease.js';
import type { LeaseProtocol } from './protocol.js';

/**
 * Keeps one lease alive while its attempt runs: renews it every third of `leaseMs`, and owns the
 * lease's hard local deadline. When the deadline passes — renewals failing, hanging in a
 * partition, or simply late — the attempt ends at once: its signal is aborted and the lease is
 * marked ended, so nothing more is written for it. The deadline is measured on the monotonic
 * clock from when the claim or the last successful renewal was sent, so it always comes before
 * the moment other workers may act on the stored expiry.
 */
export class LeaseKeeper {
  private heartbeat: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly lease: Lease,
    private readonly protocol: LeaseProtocol,
    private readonly leaseMs: number,
    /** Aborts the attempt's signal. */
    private readonly abort: (reason: Error) => void,
    private readonly log: OnceTaskLogger,
  ) {}

  /** Starts renewing and arms the deadline. An already-passed deadline ends the attempt at once. */
  start(): void {
    this.armDeadline();
    if (this.stopped) return;
    this.heartbeat = setInterval(() => void this.renew(), Math.max(20, this.leaseMs / 3));
  }

  /** Stops renewing (the outcome is being written, or the attempt is over). The deadline stays armed. */
  stopRenewing(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  /** Stops everything. */
  stop(): void {
    this.stopped = true;
    this.stopRenewing();
    clearTimeout(this.deadlineTimer);
  }

  /** Ends the attempt without waiting for the deadline: no more renewals or writes; the lease lapses. */
  end(): void {
    this.lease.ended = true;
    this.stop();
  }

  private armDeadline(): void {
    clearTimeout(this.deadlineTimer);
    const left = this.lease.deadline - monotonicNow();
    if (left <= 0) {
      this.expire();
      return;
    }
    this.deadlineTimer = setTimeout(() => this.armDeadlineOrExpire(), left);
  }

  /** A renewal may have moved the deadline while the timer slept. */
  private armDeadlineOrExpire(): void {
    if (this.lease.deadline - monotonicNow() > 0) this.armDeadline();
    else this.expire();
  }

  private expire(): void {
    if (this.lease.ended) return;
    this.end();
    const taskId = this.lease.tasks[0]?.taskId ?? '?';
    this.log.warn({ taskId }, 'oncetask: lease could not be renewed before it expired; attempt stopped');
    this.abort(new LeaseLostError(taskId, 'the lease expired before it could be renewed (Firestore unreachable or slow)'));
  }

  private async renew(): Promise<void> {
    if (this.lease.ended || this.stopped) return;
    try {
      await this.protocol.renew(this.lease, this.leaseMs);
    } catch (err) {
      if (err instanceof LeaseLostError) {
        this.end();
        this.abort(err);
        return;
      }
      this.log.warn({ err }, 'oncetask: lease renewal failed; the attempt stops at its deadline unless a renewal succeeds');
    }
  }
}
