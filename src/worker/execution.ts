import type { z } from 'zod';
import { InvalidOptionsError, LeaseLostError, ShutdownError, TaskCancelledError, UnencodableValueError, toError } from '../errors.js';
import type { HandlerSpec, ResolvedHandlerOptions, RunningTask, TaskContext } from '../handlers.js';
import { LeaseKeeper } from '../lease/keeper.js';
import type { HeldTask, Lease } from '../lease/lease.js';
import type { LeaseProtocol } from '../lease/protocol.js';
import type { OnceTaskLogger } from '../logger.js';
import { decideRetry, type RetryPolicy } from '../retry.js';
import { parsePayload, type TaskDefinition } from '../task-definition.js';
import { fromFirestoreValue, toFirestoreValue } from '../values.js';
import { callHandler, type AttemptOutcome } from './handler-call.js';
import type { HookRunner, TaskFailureInfo, TaskOutcome } from './hooks.js';
import type { SettleOperation, Telemetry } from '../telemetry/telemetry.js';
import { ProgressReporter, type SetProgressOptions } from './progress.js';
import type { TaskProgress } from '../task-document.js';

/**
 * Runs one claimed lease to its recorded outcome: keeps the lease (renewals and its hard local
 * deadline), enforces `timeoutMs`, turns cancellation and shutdown into aborted signals, and
 * writes each task's outcome fenced by the lease token. A lease holds one task, or a group of
 * one key.
 *
 * JavaScript cannot stop a handler, so an aborted handler that keeps running keeps its task,
 * its key lock and its slot — renewed — until it returns; only then is the outcome decided at
 * the abort written (the outcome and the end of renewals are one step). A lease that expired or
 * was lost cannot be kept: nothing is written, and the worker still does not start that task or
 * key again in this process until the old handler returns.
 */

/** gRPC INVALID_ARGUMENT: Firestore refused a value. */
const INVALID_ARGUMENT = 3;

/** What an execution needs from its worker. */
export interface ExecutionSettings<T> {
  def: TaskDefinition;
  spec: HandlerSpec<T>;
  options: ResolvedHandlerOptions;
  protocol: LeaseProtocol;
  log: OnceTaskLogger;
  /** Current wall time (the manager's clock). */
  now: () => number;
  /** Whether `stop()` has begun: a claim that completes now is handed back, never run. */
  stopping: () => boolean;
  /** Once handlers were aborted for shutdown: the time (Date.now()) by which writes give up (else null). */
  writeDeadline: () => number | null;
  /** Makes the worker look at the queue again (a task was handed to `onCancel`). */
  wake: () => void;
  /** The lease's handler (or `onCancel`) has returned; its outcome is written next. */
  handlerReturned: (lease: Lease) => void;
  /** The manager's hooks. */
  hooks: HookRunner;
  /** The manager's OpenTelemetry instruments. */
  telemetry: Telemetry;
}

type Item<T> = { held: HeldTask; task: RunningTask<T> };

export class Execution<S extends z.ZodType> {
  /** Outcomes recorded for each lease's tasks, and the last failure: what its `process` span ends with. */
  private readonly recorded = new WeakMap<Lease, { outcomes: TaskOutcome[]; error?: Error }>();
  private readonly reporters = new WeakMap<HeldTask, ProgressReporter>();

  constructor(private readonly s: ExecutionSettings<z.output<S>>) {}

  /** Runs the lease's attempt to its outcome. Never throws; resolves once the handler has returned. */
  async run(lease: Lease, controller: AbortController): Promise<void> {
    const first = lease.tasks[0]!;
    const log = this.s.log.child(
      lease.tasks.length === 1 ? { taskId: first.taskId, attempt: first.attempt, mode: first.mode } : { resourceKey: first.task.resourceKey, tasks: lease.tasks.length },
    );
    const single = this.s.spec.mode === 'single' || first.mode === 'cancel';
    lease.onCancelRequested = () => {
      if (single) controller.abort(new TaskCancelledError(first.taskId));
    };
    const keeper = new LeaseKeeper(lease, this.s.protocol, this.s.options.leaseMs, (reason) => controller.abort(reason), log);
    try {
      keeper.start();
      if (this.s.stopping()) {
        // The claim completed after stop() began: hand it back without calling the handler.
        await Promise.all(lease.tasks.map((held) => this.settle(this.bounded(this.s.protocol.release(lease, held)), log)));
        log.info({}, 'oncetask: claimed while stopping; handed back without running');
        return;
      }
      if (lease.ended) return; // the claim's answer came after the lease's deadline
      const runnable = await this.parsePayloads(lease, log);
      if (runnable.length === 0) return;
      const span = this.s.telemetry.startProcess(
        this.s.def.kind,
        runnable.map(({ held, task }) => ({ id: held.taskId, attempt: held.attempt, resourceKey: task.resourceKey, generatorId: held.task.generatorId, waitUntil: held.task.waitUntil, traceContext: held.task.traceContext })),
        this.s.now(),
      );
      this.recorded.set(lease, { outcomes: [] });
      try {
        if (first.mode === 'cancel') await this.runCancel(lease, runnable[0]!, controller, keeper, log);
        else if (this.s.spec.mode === 'single') await this.runSingle(lease, runnable[0]!, controller, keeper, log);
        else await this.runGroup(lease, runnable, controller, keeper, log);
      } finally {
        const { outcomes, error } = this.recorded.get(lease)!;
        const distinct = [...new Set(outcomes)];
        span.end(distinct.length === 0 ? 'lease_lost' : distinct.length === 1 ? distinct[0]! : 'mixed', error);
      }
    } catch (err) {
      if (err instanceof LeaseLostError) {
        this.s.telemetry.lostLease(this.s.def.kind);
        log.warn({ err }, 'oncetask: outcome not written: lease lost or expired');
      } else log.error({ err }, 'oncetask: could not record the outcome; the task runs again after its lease expires');
    } finally {
      keeper.stopRenewing();
      await this.bounded(this.s.protocol.releaseLock(lease)).catch((err: unknown) => log.warn({ err }, 'oncetask: could not release the key lock'));
      keeper.stop();
    }
  }

  /** What a handler (or `beforeRun`, or `onCancel`) receives besides its task. */
  private context(lease: Lease, item: Item<z.output<S>>, controller: AbortController, log: OnceTaskLogger): TaskContext {
    const reporter = this.reporter(lease, item.held);
    return { signal: controller.signal, attempt: item.held.attempt, logger: log, occurrence: item.task.occurrence, setProgress: (value, options) => reporter.report(value, options) };
  }

  /** The progress reporter of a held task (one per task, so its flush limit holds across calls). */
  private reporter(lease: Lease, held: HeldTask): ProgressReporter {
    let reporter = this.reporters.get(held);
    if (!reporter) this.reporters.set(held, (reporter = new ProgressReporter(lease, held, this.s.protocol)));
    return reporter;
  }

  /** Parses every held payload; a payload that no longer matches the schema fails its task for good. */
  private async parsePayloads(lease: Lease, log: OnceTaskLogger): Promise<Item<z.output<S>>[]> {
    const runnable: Item<z.output<S>>[] = [];
    for (const held of lease.tasks) {
      let data: z.output<S>;
      try {
        data = parsePayload(this.s.def as TaskDefinition<S>, fromFirestoreValue(held.task.data));
      } catch (err) {
        const error = toError(err);
        log.error({ err: error, taskId: held.taskId }, 'oncetask: stored payload does not match the schema');
        if (held.mode === 'cancel') await this.settle(this.s.protocol.cancelled(lease, held, error), log);
        else await this.settle(this.s.protocol.fail(lease, held, error, { final: true }), log);
        continue;
      }
      const { task } = held;
      runnable.push({
        held,
        task: {
          id: held.taskId,
          kind: task.kind,
          data,
          resourceKey: task.resourceKey,
          attempt: held.attempt,
          createdAt: task.createdAt,
          waitUntil: task.waitUntil,
          occurrence: task.generatorId !== null && task.slot !== null ? { generatorId: task.generatorId, slot: task.slot } : null,
        },
      });
    }
    return runnable;
  }

  private async runSingle(lease: Lease, item: Item<z.output<S>>, controller: AbortController, keeper: LeaseKeeper, log: OnceTaskLogger): Promise<void> {
    const handler = this.s.spec.handler as (task: RunningTask<z.output<S>>, ctx: TaskContext) => unknown;
    const ctx = this.context(lease, item, controller, log);
    const { hooks } = this.s;
    // beforeRun runs as part of the attempt: its throw is the attempt's failure, and the
    // attempt's signal and timeout cover it.
    const call = hooks.hasBeforeRun ? async () => (await hooks.beforeRun(item.task, ctx), handler(item.task, ctx)) : () => handler(item.task, ctx);
    const outcome = await this.invoke(call, controller, lease, keeper, log);
    if (outcome === null) return;
    keeper.stopRenewing();
    if (outcome.kind === 'aborted' && (await this.handledAbort(lease, [item], outcome.reason, log))) return;
    await this.recordRun(lease, item, outcome.kind === 'aborted' ? { kind: 'error', err: outcome.reason } : outcome, log);
  }

  private async runGroup(lease: Lease, all: Item<z.output<S>>[], controller: AbortController, keeper: LeaseKeeper, log: OnceTaskLogger): Promise<void> {
    const handler = this.s.spec.handler as (tasks: RunningTask<z.output<S>>[], ctx: unknown) => unknown;
    const items = await this.passBeforeRun(lease, all, controller, log);
    if (items.length === 0) return;
    const byId = new Map(items.map((i) => [i.held.taskId, i.held]));
    const ctx = {
      signal: controller.signal,
      resourceKey: items[0]!.task.resourceKey,
      logger: log,
      isCancelled: (taskId: string) => byId.get(taskId)?.cancelRequested ?? false,
      setProgress: (taskId: string, value: TaskProgress, options?: SetProgressOptions) => {
        const held = byId.get(taskId);
        return held ? this.reporter(lease, held).report(value, options) : Promise.reject(new InvalidOptionsError(`setProgress: task "${taskId}" is not in this group`));
      },
    };
    const outcome = await this.invoke(() => handler(items.map((i) => i.task), ctx), controller, lease, keeper, log);
    if (outcome === null) return;
    keeper.stopRenewing();
    const helds = items.map((i) => i.held);
    if (outcome.kind === 'aborted' && (await this.handledAbort(lease, items, outcome.reason, log))) return;
    let perTask: AttemptOutcome[];
    if (outcome.kind !== 'ok') {
      const err = outcome.kind === 'error' ? outcome.err : outcome.reason;
      perTask = helds.map(() => ({ kind: 'error', err }));
    } else if (outcome.value === undefined || outcome.value === null) {
      perTask = helds.map(() => ({ kind: 'ok', value: null }));
    } else if (Array.isArray(outcome.value) && outcome.value.length === helds.length) {
      perTask = (outcome.value as unknown[]).map((v) => (v instanceof Error ? { kind: 'error', err: v } : { kind: 'ok', value: v }));
    } else {
      const err = new InvalidOptionsError(`group handler of "${this.s.def.kind}" must return nothing or an array with one entry per task (${helds.length})`);
      perTask = helds.map(() => ({ kind: 'error', err }));
    }
    // Per task, each fenced by its own version: a deleted or taken-over task does not affect the others.
    // One reading of the clock for all: tasks that failed together become due together and regroup.
    const endedAt = this.s.now();
    await Promise.all(items.map((item, i) => this.settle(this.recordRun(lease, item, perTask[i]!, log, endedAt), log)));
  }

  /**
   * Runs `beforeRun` for each task of a group; a task whose hook throws (or times out) fails
   * that attempt on its own and stays out of the group's call. Returns the tasks that passed.
   */
  private async passBeforeRun(lease: Lease, items: Item<z.output<S>>[], controller: AbortController, log: OnceTaskLogger): Promise<Item<z.output<S>>[]> {
    const { hooks } = this.s;
    if (!hooks.hasBeforeRun) return items;
    const passed: Item<z.output<S>>[] = [];
    for (const item of items) {
      const ctx = this.context(lease, item, controller, log);
      try {
        await hooks.beforeRun(item.task, ctx);
        passed.push(item);
      } catch (err) {
        await this.settle(this.recordRun(lease, item, { kind: 'error', err: toError(err) }, log), log);
      }
    }
    return passed;
  }

  private async runCancel(lease: Lease, item: Item<z.output<S>>, controller: AbortController, keeper: LeaseKeeper, log: OnceTaskLogger): Promise<void> {
    const { held } = item;
    const onCancel = this.s.spec.onCancel;
    if (!onCancel) {
      keeper.stopRenewing();
      await this.write(held, 'cancel', () => this.s.protocol.cancelled(lease, held));
      this.report(lease, item.task, 'cancelled');
      return;
    }
    const ctx = this.context(lease, item, controller, log);
    const outcome = await this.invoke(() => onCancel(item.task, ctx), controller, lease, keeper, log);
    if (outcome === null) return;
    keeper.stopRenewing();
    if (outcome.kind === 'aborted' && (await this.handledAbort(lease, [item], outcome.reason, log))) return;
    if (outcome.kind === 'ok') {
      await this.write(held, 'cancel', () => this.s.protocol.cancelled(lease, held));
      log.info({}, 'oncetask: task cancelled');
      this.report(lease, item.task, 'cancelled');
      return;
    }
    const err = outcome.kind === 'error' ? outcome.err : outcome.reason;
    const decision = decideRetry(this.s.options.cancelRetry, held.attempt, err);
    if (decision.retry) {
      log.warn({ err }, 'oncetask: onCancel failed; will retry');
      await this.write(held, 'retry', () => this.s.protocol.toCancelling(lease, held, new Date(this.s.now() + decision.delayMs), err));
    } else {
      log.error({ err }, 'oncetask: onCancel failed; no retries left; task cancelled');
      await this.write(held, 'cancel', () => this.s.protocol.cancelled(lease, held, err));
      this.report(lease, item.task, 'cancelled');
    }
  }

  /**
   * Shutdown releases the tasks; a lost or expired lease writes nothing. Returns false for other
   * reasons (timeout, cancellation), which are recorded like failures.
   */
  private async handledAbort(lease: Lease, items: Item<z.output<S>>[], reason: Error, log: OnceTaskLogger): Promise<boolean> {
    if (reason instanceof ShutdownError) {
      await Promise.all(items.map((item) => this.settle(this.write(item.held, 'release', () => this.s.protocol.release(lease, item.held)).then(() => this.report(lease, item.task, 'released')), log)));
      log.info({}, 'oncetask: released on shutdown');
      return true;
    }
    if (reason instanceof LeaseLostError || lease.ended) {
      this.s.telemetry.lostLease(this.s.def.kind);
      log.warn({ err: reason }, 'oncetask: attempt stopped: lease lost or expired; nothing recorded');
      return true;
    }
    return false;
  }

  /** Writes one run-mode task's outcome; a retry is planned from `endedAt` (default: now). */
  private async recordRun(lease: Lease, item: Item<z.output<S>>, outcome: AttemptOutcome, log: OnceTaskLogger, endedAt?: number): Promise<void> {
    const { protocol } = this.s;
    const { held, task } = item;
    if (outcome.kind === 'ok') {
      // A task that completed ends succeeded, even if cancellation arrived meanwhile.
      let unstorable: UnencodableValueError;
      try {
        await this.write(held, 'succeed', () => protocol.succeed(lease, held, toFirestoreValue(outcome.value, 'handler result')));
        this.report(lease, task, 'succeeded');
        return;
      } catch (err) {
        if (err instanceof UnencodableValueError) unstorable = err;
        else if ((err as { code?: unknown }).code === INVALID_ARGUMENT) {
          // Firestore refused the value (too large, too deep): not something a retry fixes.
          unstorable = new UnencodableValueError(`handler result could not be stored: ${toError(err).message}`, { cause: err });
        } else throw err;
      }
      log.error({ err: unstorable, taskId: held.taskId }, 'oncetask: handler result cannot be stored; task failed');
      await this.write(held, 'fail', () => protocol.fail(lease, held, unstorable, { final: true }));
      this.failed(lease, task, unstorable, { final: true, retryAt: null });
      return;
    }
    const err = outcome.kind === 'error' ? outcome.err : outcome.reason;
    if (held.cancelRequested) {
      // Cancelled and did not complete: hand it to onCancel, or end it cancelled.
      if (this.s.spec.onCancel) {
        await this.write(held, 'cancel', () => protocol.toCancelling(lease, held, new Date(this.s.now())));
        this.s.wake();
        this.report(lease, task, 'cancelling');
      } else {
        await this.write(held, 'cancel', () => protocol.cancelled(lease, held));
        this.report(lease, task, 'cancelled');
      }
      log.info({ taskId: held.taskId }, 'oncetask: task cancelled while running');
      return;
    }
    await this.recordFailure(lease, item, err, this.s.options.retry, log, endedAt ?? this.s.now());
  }

  private async recordFailure(lease: Lease, { held, task }: Item<z.output<S>>, err: Error, policy: RetryPolicy, log: OnceTaskLogger, endedAt: number): Promise<void> {
    const decision = decideRetry(policy, held.attempt, err);
    if (decision.retry) {
      const retryAt = new Date(endedAt + decision.delayMs);
      log.warn({ err, taskId: held.taskId, retryAt }, 'oncetask: attempt failed; will retry');
      await this.write(held, 'retry', () => this.s.protocol.fail(lease, held, err, { retryAt }));
      this.failed(lease, task, err, { final: false, retryAt });
    } else {
      log.error({ err, taskId: held.taskId }, 'oncetask: attempt failed; no retries left');
      await this.write(held, 'fail', () => this.s.protocol.fail(lease, held, err, { final: true }));
      this.failed(lease, task, err, { final: true, retryAt: null });
    }
  }

  /** Reports a recorded failure to the hooks, the metrics and the attempt's span. */
  private failed(lease: Lease, task: RunningTask<z.output<S>>, error: Error, info: TaskFailureInfo): void {
    this.s.telemetry.failure(this.s.def.kind, info.final, error);
    const record = this.recorded.get(lease);
    if (record) record.error = error;
    this.report(lease, task, info.final ? 'failed' : 'retrying', { error, info });
  }

  /** Reports a recorded outcome to the hooks and the attempt's span. */
  private report(lease: Lease, task: RunningTask<z.output<S>>, outcome: TaskOutcome, failure?: { error: Error; info: TaskFailureInfo }): void {
    this.recorded.get(lease)?.outcomes.push(outcome);
    this.s.hooks.settled(task, outcome, failure);
  }

  /** An outcome write, in a `settle` span, bounded while shutting down. */
  private write<T>(held: HeldTask, operation: SettleOperation, write: () => Promise<T>): Promise<T | undefined> {
    return this.bounded(this.s.telemetry.settle(this.s.def.kind, held.taskId, operation, write));
  }

  /** Calls a handler (see {@link callHandler}) under the kind's `timeoutMs` and the shutdown write deadline. */
  private invoke(call: () => unknown, controller: AbortController, lease: Lease, keeper: LeaseKeeper, log: OnceTaskLogger): Promise<AttemptOutcome | null> {
    const called = callHandler(call, controller, lease, keeper, log, { timeoutMs: this.s.options.timeoutMs, writeDeadline: () => this.s.writeDeadline() });
    // (callHandler answers only once the handler has returned, even after an abort.)
    return called.then((outcome) => (this.s.handlerReturned(lease), outcome));
  }

  /** A lost lease on one task of a group is logged, not thrown. */
  private async settle(write: Promise<unknown>, log: OnceTaskLogger): Promise<void> {
    try {
      await write;
    } catch (err) {
      if (err instanceof LeaseLostError) log.warn({ err }, 'oncetask: outcome not written: lease lost');
      else throw err;
    }
  }

  /** While shutting down, a write that hangs (backend down) must not hold up `stop()`. */
  private bounded<T>(write: Promise<T>): Promise<T | undefined> {
    const deadline = this.s.writeDeadline();
    if (deadline === null) return write;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), Math.max(0, deadline - Date.now()))));
    return Promise.race([write, timeout]).finally(() => clearTimeout(timer));
  }
}
