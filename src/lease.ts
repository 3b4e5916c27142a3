import { randomUUID } from 'node:crypto';
import type { Timestamp } from '@google-cloud/firestore';
import { LeaseExpiredError, LeaseLostError, type OnceTaskError } from './errors.js';
import type { TaskStore, TaskFields, VersionedTask } from './store.js';
import { appendError, type TaskErrorRecord } from './task-document.js';

/**
 * The claim and lease protocol. A claim is an update with a `lastUpdateTime` precondition (no
 * transaction, no lock) that stamps a fresh random token; every later write for that attempt
 * (renewal, outcome, release) is fenced by the token, so a worker whose lease was taken over
 * can never overwrite the newer attempt.
 */

/** A claimed attempt, held by the worker that runs it. */
export interface Lease {
  readonly docId: string;
  readonly taskId: string;
  /** Random per claim; the fence. */
  readonly token: string;
  /** 1-based attempt number of this claim. */
  readonly attempt: number;
  /** Errors and count as of the claim, to append the outcome to. */
  readonly errors: readonly TaskErrorRecord[];
  readonly errorCount: number;
  /** When the lease runs out unless renewed (local clock). */
  expiresAt: Date;
  /** Version of our last write: the precondition of the next one. */
  updateTime: Timestamp;
  /** Serializes this lease's writes so a renewal and an outcome never race each other. */
  queue: Promise<unknown>;
}

/** What a failed attempt becomes. */
export type FailureOutcome = { retryAt: Date } | { final: true };

/** Fence re-checks before a fenced write gives up on a document that keeps changing. */
const MAX_FENCE_RETRIES = 10;

export class LeaseProtocol {
  constructor(
    private readonly store: TaskStore,
    /** Identifies this process in leases (`host:pid:random`). */
    readonly workerId: string,
    /** How long terminal tasks are kept before the TTL policy may delete them. */
    private readonly retentionMs: number,
  ) {}

  /**
   * Claims a due candidate for `leaseMs`. Returns `null` when another worker changed it first
   * (the precondition failed): the caller simply moves on to another candidate.
   */
  async claim(candidate: VersionedTask, leaseMs: number): Promise<Lease | null> {
    const { task } = candidate;
    const now = new Date();
    const expiresAt = new Date(now.getTime() + leaseMs);
    const token = randomUUID();
    let errors: readonly TaskErrorRecord[] = task.errors;
    let errorCount = task.errorCount;
    if (task.status === 'running') {
      // The previous attempt's lease ran out: the worker died or stalled. Record it as a failure.
      const expired = new LeaseExpiredError(task.attempts);
      errors = appendError(errors, { at: now, attempt: task.attempts, message: expired.message, code: expired.code });
      errorCount += 1;
    }
    const attempt = task.attempts + 1;
    const written = await this.store.updateIfUnchanged(
      candidate.docId,
      {
        status: 'running',
        attempts: attempt,
        waitUntil: expiresAt,
        lease: { token, workerId: this.workerId, expiresAt },
        errors,
        errorCount,
        updatedAt: now,
      },
      candidate.updateTime,
    );
    if (!written.ok) return null;
    return {
      docId: candidate.docId,
      taskId: task.id,
      token,
      attempt,
      errors,
      errorCount,
      expiresAt,
      updateTime: written.updateTime,
      queue: Promise.resolve(),
    };
  }

  /**
   * Ends a task whose previous attempt's lease expired and whose retry policy allows no more
   * attempts, without running it again. Conditional on the version read; false if it changed.
   */
  async failExpired(candidate: VersionedTask): Promise<boolean> {
    const { task } = candidate;
    const now = new Date();
    const expired = new LeaseExpiredError(task.attempts);
    const written = await this.store.updateIfUnchanged(
      candidate.docId,
      {
        ...this.terminalFields('failed', now),
        errors: appendError(task.errors, { at: now, attempt: task.attempts, message: expired.message, code: expired.code }),
        errorCount: task.errorCount + 1,
      },
      candidate.updateTime,
    );
    return written.ok;
  }

  /** Fails a document that is not a valid task (malformed, or payload no longer parses). */
  async failMalformed(docId: string, updateTime: Timestamp, error: OnceTaskError): Promise<boolean> {
    const now = new Date();
    const written = await this.store.updateIfUnchanged(
      docId,
      {
        ...this.terminalFields('failed', now),
        errors: [{ at: now, attempt: 0, message: error.message, code: error.code }],
        errorCount: 1,
      },
      updateTime,
    );
    return written.ok;
  }

  /** Extends the lease by `leaseMs` from now. Throws {@link LeaseLostError} if it was taken. */
  async renew(lease: Lease, leaseMs: number): Promise<void> {
    const now = new Date();
    const expiresAt = new Date(now.getTime() + leaseMs);
    await this.write(lease, {
      waitUntil: expiresAt,
      lease: { token: lease.token, workerId: this.workerId, expiresAt },
      updatedAt: now,
    });
    lease.expiresAt = expiresAt;
  }

  /** Records success with the handler's (already encoded) result. */
  async succeed(lease: Lease, result: unknown): Promise<void> {
    await this.write(lease, { ...this.terminalFields('succeeded', new Date()), result });
  }

  /** Records a failed attempt: back to pending at `retryAt`, or failed for good. */
  async fail(lease: Lease, err: Error, outcome: FailureOutcome): Promise<void> {
    const now = new Date();
    const code = (err as { code?: unknown }).code;
    const record: TaskErrorRecord = {
      at: now,
      attempt: lease.attempt,
      message: err.message.slice(0, 4000),
      code: typeof code === 'string' ? code : null,
    };
    const failure = { errors: appendError(lease.errors, record), errorCount: lease.errorCount + 1 };
    if ('final' in outcome) {
      await this.write(lease, { ...this.terminalFields('failed', now), ...failure });
    } else {
      await this.write(lease, { status: 'pending', waitUntil: outcome.retryAt, lease: null, updatedAt: now, ...failure });
    }
  }

  /** Hands the task back, due now, without counting the attempt (used on shutdown). */
  async release(lease: Lease): Promise<void> {
    const now = new Date();
    await this.write(lease, { status: 'pending', waitUntil: now, lease: null, attempts: lease.attempt - 1, updatedAt: now });
  }

  private terminalFields(status: 'succeeded' | 'failed', now: Date): TaskFields {
    return {
      status,
      lease: null,
      doneAt: now,
      expireAt: new Date(now.getTime() + this.retentionMs),
      updatedAt: now,
    };
  }

  /**
   * A write fenced by the lease token. The update carries the version of our own last write as
   * precondition; if the document changed since, it is re-read: still our token and running
   * means someone touched another field (retry on the new version); otherwise the lease is lost.
   */
  private write(lease: Lease, fields: TaskFields): Promise<void> {
    const run = async (): Promise<void> => {
      for (let i = 0; i < MAX_FENCE_RETRIES; i++) {
        const written = await this.store.updateIfUnchanged(lease.docId, fields, lease.updateTime);
        if (written.ok) {
          lease.updateTime = written.updateTime;
          return;
        }
        if (written.reason === 'missing') throw new LeaseLostError(lease.taskId, 'the task was deleted');
        const current = await this.store.readDoc(lease.docId);
        if (!current) throw new LeaseLostError(lease.taskId, 'the task was deleted');
        if (!current.decoded.ok) throw new LeaseLostError(lease.taskId, `the document became malformed (${current.decoded.reason})`);
        const task = current.decoded.task;
        if (task.lease?.token !== lease.token) {
          const holder = task.lease ? `worker ${task.lease.workerId} holds attempt ${task.attempts}` : `status is now ${task.status}`;
          throw new LeaseLostError(lease.taskId, `taken over (${holder})`);
        }
        lease.updateTime = current.updateTime;
      }
      throw new LeaseLostError(lease.taskId, 'the document kept changing under the lease');
    };
    const next = lease.queue.then(run, run);
    lease.queue = next.catch(() => undefined);
    return next;
  }
}

/** A new worker identity: `host:pid:random`. */
export function newWorkerId(hostname: string): string {
  return `${hostname}:${process.pid}:${randomUUID().slice(0, 8)}`;
}
