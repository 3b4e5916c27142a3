import type { z } from 'zod';
import {
  HandlerTimeoutError,
  InvalidPayloadError,
  LeaseExpiredError,
  LeaseLostError,
  MalformedTaskError,
  ShutdownError,
  UnencodableValueError,
  toError,
} from './errors.js';
import type { Lease, LeaseProtocol } from './lease.js';
import type { OnceTaskLogger } from './logger.js';
import { decideRetry, type RetryPolicy } from './retry.js';
import type { TaskStore, VersionedTask } from './store.js';
import { CLAIMABLE_STATUSES } from './task-document.js';
import { parsePayload, type TaskDefinition } from './task-definition.js';
import { fromFirestoreValue, toFirestoreValue } from './values.js';

/**
 * The worker loop of one task kind in one process: find due candidates, claim up to
 * `concurrency` of them, run each handler under a renewed lease, write the outcome fenced by
 * the lease token, and sleep until the next due time, a local wake-up or the poll interval.
 */

/** What a handler receives besides the task. */
export interface TaskContext {
  /** Aborted when the task times out (`timeoutMs`), its lease is lost, or the worker shuts down. */
  signal: AbortSignal;
  /** 1-based number of this attempt. */
  attempt: number;
  /** Logger bound to this task and attempt. */
  logger: OnceTaskLogger;
}

/** The task a handler runs. */
export interface RunningTask<T> {
  id: string;
  kind: string;
  /** The payload, parsed by the kind's schema. */
  data: T;
  resourceKey: string | null;
  /** 1-based number of this attempt (same as `ctx.attempt`). */
  attempt: number;
  createdAt: Date;
}

/** A handler: its return value is stored as the task's `result`. */
export type TaskHandler<T, R = unknown> = (task: RunningTask<T>, ctx: TaskContext) => R | Promise<R>;

/** Handler options after defaults and validation. */
export interface ResolvedHandlerOptions {
  retry: RetryPolicy;
  leaseMs: number;
  concurrency: number;
  timeoutMs: number | undefined;
}

/** Settings shared by every worker of a manager. */
export interface WorkerSettings {
  store: TaskStore;
  protocol: LeaseProtocol;
  logger: OnceTaskLogger;
  /** Longest sleep between looks at the queue when nothing is known to come due sooner. */
  pollIntervalMs: number;
}

type Outcome = { kind: 'ok'; value: unknown } | { kind: 'error'; err: Error } | { kind: 'aborted'; reason: Error };

interface ActiveRun {
  lease: Lease;
  controller: AbortController;
  done: Promise<void>;
}

/** Error backoff of the loop when Firestore is unreachable: 0.5 s doubling to 30 s. */
const MIN_ERROR_BACKOFF_MS = 500;
const MAX_ERROR_BACKOFF_MS = 30_000;
/** How long a write may take while shutting down before the lease is left to expire. */
const SHUTDOWN_WRITE_TIMEOUT_MS = 3000;
/** gRPC INVALID_ARGUMENT: Firestore refused a value. */
const INVALID_ARGUMENT = 3;
/** How many malformed document IDs a worker remembers so each is reported once. */
const MAX_REMEMBERED_MALFORMED = 10_000;

export class KindWorker<S extends z.ZodType> {
  private readonly running = new Map<string, ActiveRun>();
  private readonly reportedMalformed = new Set<string>();
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wakeWaiter: (() => void) | null = null;
  private wokenEarly = false;
  private readonly log: OnceTaskLogger;

  constructor(
    private readonly settings: WorkerSettings,
    private readonly def: TaskDefinition<S>,
    private readonly handler: TaskHandler<z.output<S>>,
    private readonly options: ResolvedHandlerOptions,
  ) {
    this.log = settings.logger.child({ kind: def.kind });
  }

  /** Starts the loop (idempotent). */
  start(): void {
    if (this.loop) return;
    this.stopping = false;
    this.loop = this.runLoop();
  }

  /** Makes a sleeping loop look at the queue now (e.g. a task was created in this process). */
  wake(): void {
    if (this.wakeWaiter) this.wakeWaiter();
    else this.wokenEarly = true;
  }

  /**
   * Stops claiming, waits up to `graceMs` for running handlers, aborts the rest and releases
   * their leases. Resolves when the loop and every handler run have ended.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.loop;
    this.loop = null;
    const runs = [...this.running.values()];
    if (runs.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([Promise.all(runs.map((r) => r.done)), graceOver]);
    clearTimeout(timer);
    for (const run of this.running.values()) run.controller.abort(new ShutdownError());
    await Promise.all(runs.map((r) => r.done));
  }

  private sleep(ms: number): Promise<void> {
    if (this.wokenEarly || this.stopping) {
      this.wokenEarly = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakeWaiter = null;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.wakeWaiter = done;
    });
  }

  private async runLoop(): Promise<void> {
    let errorBackoff = MIN_ERROR_BACKOFF_MS;
    let spread = false;
    while (!this.stopping) {
      const free = this.options.concurrency - this.running.size;
      if (free <= 0) {
        await this.sleep(this.settings.pollIntervalMs);
        continue;
      }
      try {
        const { claimed, conflicts, nextDueAt } = await this.claimRound(free, spread);
        errorBackoff = MIN_ERROR_BACKOFF_MS;
        spread = conflicts > 0;
        if (claimed > 0 || conflicts > 0) continue; // the queue moved: look again at once
        const untilDue = nextDueAt === null ? Infinity : nextDueAt - Date.now();
        await this.sleep(Math.min(this.settings.pollIntervalMs, untilDue));
      } catch (err) {
        this.log.error({ err, retryInMs: errorBackoff }, 'oncetask: looking for tasks failed; backing off');
        await this.sleep(errorBackoff);
        errorBackoff = Math.min(MAX_ERROR_BACKOFF_MS, errorBackoff * 2);
      }
    }
  }

  /** One look at the queue: claims up to `free` due tasks and starts them. */
  private async claimRound(free: number, spread: boolean): Promise<{ claimed: number; conflicts: number; nextDueAt: number | null }> {
    const { tasks, malformed } = await this.settings.store.findClaimable(this.def.kind, CLAIMABLE_STATUSES, free * 2 + 4);
    for (const bad of malformed) void this.reportMalformed(bad.docId, bad.updateTime, bad.reason);

    const now = Date.now();
    const due: VersionedTask[] = [];
    let nextDueAt: number | null = null;
    for (const candidate of tasks) {
      const at = candidate.task.waitUntil.getTime();
      if (at > now) {
        nextDueAt = nextDueAt === null ? at : Math.min(nextDueAt, at);
      } else if (!this.running.has(candidate.docId)) {
        due.push(candidate);
      }
    }
    // After a lost race, start at a random place so workers stop chasing the same documents.
    if (spread && due.length > 1) {
      const offset = Math.floor(Math.random() * due.length);
      due.push(...due.splice(0, offset));
    }
    const picked = due.slice(0, free);
    const results = await Promise.all(picked.map((candidate) => this.tryClaim(candidate)));
    const claimed = results.filter((r) => r === 'claimed').length;
    const conflicts = results.filter((r) => r === 'conflict').length;
    return { claimed, conflicts, nextDueAt };
  }

  private async tryClaim(candidate: VersionedTask): Promise<'claimed' | 'conflict' | 'ended'> {
    if (candidate.task.status === 'running') {
      // Lease expired: the previous attempt counts as failed; the policy decides if it runs again.
      const decision = decideRetry(this.options.retry, candidate.task.attempts, new LeaseExpiredError(candidate.task.attempts));
      if (!decision.retry) {
        const ended = await this.settings.protocol.failExpired(candidate);
        if (ended) this.log.warn({ taskId: candidate.task.id }, 'oncetask: lease expired and no attempts left; task failed');
        return ended ? 'ended' : 'conflict';
      }
    }
    const lease = await this.settings.protocol.claim(candidate, this.options.leaseMs);
    if (!lease) return 'conflict';
    const controller = new AbortController();
    const run: ActiveRun = { lease, controller, done: Promise.resolve() };
    this.running.set(lease.docId, run);
    run.done = this.execute(candidate, run).finally(() => {
      this.running.delete(lease.docId);
      this.wake();
    });
    return 'claimed';
  }

  private async reportMalformed(docId: string, updateTime: VersionedTask['updateTime'], reason: string): Promise<void> {
    if (this.reportedMalformed.has(docId)) return;
    if (this.reportedMalformed.size >= MAX_REMEMBERED_MALFORMED) this.reportedMalformed.clear();
    this.reportedMalformed.add(docId);
    const error = new MalformedTaskError(docId, reason);
    this.log.error({ docId, reason }, 'oncetask: malformed task document; marking it failed');
    try {
      await this.settings.protocol.failMalformed(docId, updateTime, error);
    } catch (err) {
      this.log.error({ docId, err }, 'oncetask: could not mark malformed task failed');
    }
  }

  /** Runs one claimed attempt to its recorded outcome. Never throws. */
  private async execute(candidate: VersionedTask, run: ActiveRun): Promise<void> {
    const { lease } = run;
    const log = this.log.child({ taskId: lease.taskId, attempt: lease.attempt });
    const heartbeat = setInterval(() => void this.renew(run, log), Math.max(20, this.options.leaseMs / 3));
    try {
      let data: z.output<S>;
      try {
        data = parsePayload(this.def, fromFirestoreValue(candidate.task.data));
      } catch (err) {
        const error = err instanceof InvalidPayloadError ? err : toError(err);
        log.error({ err: error }, 'oncetask: stored payload does not match the schema; task failed');
        await this.bounded(this.settings.protocol.fail(lease, error, { final: true }));
        return;
      }
      const outcome = await this.invoke(candidate, data, run, log);
      await this.record(run, outcome, log);
    } catch (err) {
      if (err instanceof LeaseLostError) log.warn({ err }, 'oncetask: outcome not written: lease lost to a newer attempt');
      else log.error({ err }, 'oncetask: could not record the outcome; the task runs again after its lease expires');
    } finally {
      clearInterval(heartbeat);
    }
  }

  private async invoke(candidate: VersionedTask, data: z.output<S>, run: ActiveRun, log: OnceTaskLogger): Promise<Outcome> {
    const { controller, lease } = run;
    const aborted = new Promise<Outcome>((resolve) => {
      const onAbort = (): void => resolve({ kind: 'aborted', reason: toError(controller.signal.reason) });
      if (controller.signal.aborted) onAbort();
      else controller.signal.addEventListener('abort', onAbort, { once: true });
    });
    const { timeoutMs } = this.options;
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => controller.abort(new HandlerTimeoutError(timeoutMs)), timeoutMs);
    const task: RunningTask<z.output<S>> = {
      id: lease.taskId,
      kind: this.def.kind,
      data,
      resourceKey: candidate.task.resourceKey,
      attempt: lease.attempt,
      createdAt: candidate.task.createdAt,
    };
    const ctx: TaskContext = { signal: controller.signal, attempt: lease.attempt, logger: log };
    const handled = (async () => this.handler(task, ctx))().then(
      (value): Outcome => ({ kind: 'ok', value }),
      (err: unknown): Outcome => ({ kind: 'error', err: toError(err) }),
    );
    try {
      return await Promise.race([handled, aborted]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Writes the attempt's outcome, fenced by the lease. */
  private async record(run: ActiveRun, outcome: Outcome, log: OnceTaskLogger): Promise<void> {
    const { protocol } = this.settings;
    const { lease } = run;
    if (outcome.kind === 'aborted') {
      if (outcome.reason instanceof ShutdownError) {
        await this.bounded(protocol.release(lease));
        log.info({}, 'oncetask: released on shutdown');
        return;
      }
      if (outcome.reason instanceof LeaseLostError) {
        log.warn({ err: outcome.reason }, 'oncetask: handler aborted: lease lost');
        return;
      }
      outcome = { kind: 'error', err: outcome.reason }; // timeout: a failed attempt
    }
    if (outcome.kind === 'ok') {
      let unstorable: UnencodableValueError;
      try {
        await this.bounded(protocol.succeed(lease, toFirestoreValue(outcome.value, 'handler result')));
        log.debug({}, 'oncetask: task succeeded');
        return;
      } catch (err) {
        if (err instanceof UnencodableValueError) unstorable = err;
        else if ((err as { code?: unknown }).code === INVALID_ARGUMENT) {
          // Firestore refused the value (too large, too deep): not something a retry fixes.
          unstorable = new UnencodableValueError(`handler result could not be stored: ${toError(err).message}`, { cause: err });
        } else throw err;
      }
      log.error({ err: unstorable }, 'oncetask: handler result cannot be stored; task failed');
      await this.bounded(protocol.fail(lease, unstorable, { final: true }));
      return;
    }
    const decision = decideRetry(this.options.retry, lease.attempt, outcome.err);
    if (decision.retry) {
      const retryAt = new Date(Date.now() + decision.delayMs);
      log.warn({ err: outcome.err, retryAt }, 'oncetask: attempt failed; will retry');
      await this.bounded(protocol.fail(lease, outcome.err, { retryAt }));
    } else {
      log.error({ err: outcome.err }, 'oncetask: attempt failed; no retries left');
      await this.bounded(protocol.fail(lease, outcome.err, { final: true }));
    }
  }

  private async renew(run: ActiveRun, log: OnceTaskLogger): Promise<void> {
    if (run.controller.signal.aborted) return;
    try {
      await this.settings.protocol.renew(run.lease, this.options.leaseMs);
    } catch (err) {
      if (err instanceof LeaseLostError) {
        run.controller.abort(err);
        return;
      }
      log.warn({ err }, 'oncetask: lease renewal failed');
      if (Date.now() >= run.lease.expiresAt.getTime()) {
        // Another worker may take the task now: stop this attempt rather than risk two runs.
        run.controller.abort(new LeaseLostError(run.lease.taskId, 'lease expired while renewals failed'));
      }
    }
  }

  /** While shutting down, a write that hangs (backend down) must not hold up `stop()`. */
  private bounded<T>(write: Promise<T>): Promise<T | undefined> {
    if (!this.stopping) return write;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), SHUTDOWN_WRITE_TIMEOUT_MS)));
    return Promise.race([write, timeout]).finally(() => clearTimeout(timer));
  }
}
