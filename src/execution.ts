import type { z } from 'zod';
import {
  HandlerTimeoutError,
  InvalidOptionsError,
  LeaseLostError,
  ShutdownError,
  TaskCancelledError,
  UnencodableValueError,
  toError,
} from './errors.js';
import type { HandlerSpec, ResolvedHandlerOptions, RunningTask, TaskContext } from './handlers.js';
import type { HeldTask, Lease, LeaseProtocol } from './lease.js';
import type { OnceTaskLogger } from './logger.js';
import { decideRetry, type RetryPolicy } from './retry.js';
import { parsePayload, type TaskDefinition } from './task-definition.js';
import { fromFirestoreValue, toFirestoreValue } from './values.js';

/**
 * Runs one claimed lease to its recorded outcome: renews the lease while the handler runs,
 * enforces `timeoutMs`, turns cancellation and shutdown into aborted signals, and writes each
 * task's outcome fenced by the lease token. A lease holds one task, or a group of one key.
 */

/** What an attempt ended with. */
type Outcome = { kind: 'ok'; value: unknown } | { kind: 'error'; err: Error } | { kind: 'aborted'; reason: Error };

/** gRPC INVALID_ARGUMENT: Firestore refused a value. */
const INVALID_ARGUMENT = 3;

/** What an execution needs from its worker. */
export interface ExecutionSettings<T> {
  def: TaskDefinition;
  spec: HandlerSpec<T>;
  options: ResolvedHandlerOptions;
  protocol: LeaseProtocol;
  log: OnceTaskLogger;
  /** Once handlers were aborted for shutdown: the time by which writes give up (else null). */
  writeDeadline: () => number | null;
  /** Makes the worker look at the queue again (a task was handed to `onCancel`). */
  wake: () => void;
}

export class Execution<S extends z.ZodType> {
  constructor(private readonly s: ExecutionSettings<z.output<S>>) {}

  /** Runs the lease's attempt to its outcome. Never throws. */
  async run(lease: Lease, controller: AbortController): Promise<void> {
    const first = lease.tasks[0]!;
    const log = this.s.log.child(
      lease.tasks.length === 1 ? { taskId: first.taskId, attempt: first.attempt, mode: first.mode } : { resourceKey: first.task.resourceKey, tasks: lease.tasks.length },
    );
    const single = this.s.spec.mode === 'single' || first.mode === 'cancel';
    lease.onCancelRequested = () => {
      if (single) controller.abort(new TaskCancelledError(first.taskId));
    };
    const heartbeat = setInterval(() => void this.renew(lease, controller, log), Math.max(20, this.s.options.leaseMs / 3));
    try {
      const runnable = await this.parsePayloads(lease, log);
      if (runnable.length === 0) return;
      if (first.mode === 'cancel') await this.runCancel(lease, runnable[0]!, controller, log);
      else if (this.s.spec.mode === 'single') await this.runSingle(lease, runnable[0]!, controller, log);
      else await this.runGroup(lease, runnable, controller, log);
    } catch (err) {
      if (err instanceof LeaseLostError) log.warn({ err }, 'oncetask: outcome not written: lease lost to a newer attempt');
      else log.error({ err }, 'oncetask: could not record the outcome; the task runs again after its lease expires');
    } finally {
      clearInterval(heartbeat);
      await this.bounded(this.s.protocol.releaseLock(lease)).catch((err: unknown) => log.warn({ err }, 'oncetask: could not release the key lock'));
    }
  }

  /** Parses every held payload; a payload that no longer matches the schema fails its task for good. */
  private async parsePayloads(lease: Lease, log: OnceTaskLogger): Promise<{ held: HeldTask; task: RunningTask<z.output<S>> }[]> {
    const runnable: { held: HeldTask; task: RunningTask<z.output<S>> }[] = [];
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

  private async runSingle(lease: Lease, item: { held: HeldTask; task: RunningTask<z.output<S>> }, controller: AbortController, log: OnceTaskLogger): Promise<void> {
    const handler = this.s.spec.handler as (task: RunningTask<z.output<S>>, ctx: TaskContext) => unknown;
    const ctx: TaskContext = { signal: controller.signal, attempt: item.held.attempt, logger: log, occurrence: item.task.occurrence };
    const outcome = await this.invoke(() => handler(item.task, ctx), controller);
    if (outcome.kind === 'aborted' && (await this.handledAbort(lease, [item.held], outcome.reason, log))) return;
    await this.recordRun(lease, item.held, outcome.kind === 'aborted' ? { kind: 'error', err: outcome.reason } : outcome, log);
  }

  private async runGroup(lease: Lease, items: { held: HeldTask; task: RunningTask<z.output<S>> }[], controller: AbortController, log: OnceTaskLogger): Promise<void> {
    const handler = this.s.spec.handler as (tasks: RunningTask<z.output<S>>[], ctx: unknown) => unknown;
    const byId = new Map(items.map((i) => [i.held.taskId, i.held]));
    const ctx = {
      signal: controller.signal,
      resourceKey: items[0]!.task.resourceKey,
      logger: log,
      isCancelled: (taskId: string) => byId.get(taskId)?.cancelRequested ?? false,
    };
    const outcome = await this.invoke(() => handler(items.map((i) => i.task), ctx), controller);
    const helds = items.map((i) => i.held);
    if (outcome.kind === 'aborted' && (await this.handledAbort(lease, helds, outcome.reason, log))) return;
    let perTask: Outcome[];
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
    await Promise.all(helds.map((held, i) => this.settle(this.recordRun(lease, held, perTask[i]!, log), log)));
  }

  private async runCancel(lease: Lease, item: { held: HeldTask; task: RunningTask<z.output<S>> }, controller: AbortController, log: OnceTaskLogger): Promise<void> {
    const { held } = item;
    const onCancel = this.s.spec.onCancel;
    if (!onCancel) {
      await this.bounded(this.s.protocol.cancelled(lease, held));
      return;
    }
    const ctx: TaskContext = { signal: controller.signal, attempt: held.attempt, logger: log, occurrence: item.task.occurrence };
    const outcome = await this.invoke(() => onCancel(item.task, ctx), controller);
    if (outcome.kind === 'aborted' && (await this.handledAbort(lease, [held], outcome.reason, log))) return;
    if (outcome.kind === 'ok') {
      await this.bounded(this.s.protocol.cancelled(lease, held));
      log.info({}, 'oncetask: task cancelled');
      return;
    }
    const err = outcome.kind === 'error' ? outcome.err : outcome.reason;
    const decision = decideRetry(this.s.options.cancelRetry, held.attempt, err);
    if (decision.retry) {
      log.warn({ err }, 'oncetask: onCancel failed; will retry');
      await this.bounded(this.s.protocol.toCancelling(lease, held, new Date(Date.now() + decision.delayMs), err));
    } else {
      log.error({ err }, 'oncetask: onCancel failed; no retries left; task cancelled');
      await this.bounded(this.s.protocol.cancelled(lease, held, err));
    }
  }

  /**
   * Shutdown releases the tasks; a lost lease writes nothing. Returns false for other reasons
   * (timeout, cancellation), which are recorded like failures.
   */
  private async handledAbort(lease: Lease, helds: HeldTask[], reason: Error, log: OnceTaskLogger): Promise<boolean> {
    if (reason instanceof ShutdownError) {
      await Promise.all(helds.map((held) => this.settle(this.bounded(this.s.protocol.release(lease, held)), log)));
      log.info({}, 'oncetask: released on shutdown');
      return true;
    }
    if (reason instanceof LeaseLostError) {
      log.warn({ err: reason }, 'oncetask: handler aborted: lease lost');
      return true;
    }
    return false;
  }

  /** Writes one run-mode task's outcome. */
  private async recordRun(lease: Lease, held: HeldTask, outcome: Outcome, log: OnceTaskLogger): Promise<void> {
    const { protocol } = this.s;
    if (outcome.kind === 'ok') {
      // A task that completed ends succeeded, even if cancellation arrived meanwhile.
      let unstorable: UnencodableValueError;
      try {
        await this.bounded(protocol.succeed(lease, held, toFirestoreValue(outcome.value, 'handler result')));
        return;
      } catch (err) {
        if (err instanceof UnencodableValueError) unstorable = err;
        else if ((err as { code?: unknown }).code === INVALID_ARGUMENT) {
          // Firestore refused the value (too large, too deep): not something a retry fixes.
          unstorable = new UnencodableValueError(`handler result could not be stored: ${toError(err).message}`, { cause: err });
        } else throw err;
      }
      log.error({ err: unstorable, taskId: held.taskId }, 'oncetask: handler result cannot be stored; task failed');
      await this.bounded(protocol.fail(lease, held, unstorable, { final: true }));
      return;
    }
    const err = outcome.kind === 'error' ? outcome.err : outcome.reason;
    if (held.cancelRequested) {
      // Cancelled and did not complete: hand it to onCancel, or end it cancelled.
      if (this.s.spec.onCancel) {
        await this.bounded(protocol.toCancelling(lease, held, new Date()));
        this.s.wake();
      } else {
        await this.bounded(protocol.cancelled(lease, held));
      }
      log.info({ taskId: held.taskId }, 'oncetask: task cancelled while running');
      return;
    }
    await this.recordFailure(lease, held, err, this.s.options.retry, log);
  }

  private async recordFailure(lease: Lease, held: HeldTask, err: Error, policy: RetryPolicy, log: OnceTaskLogger): Promise<void> {
    const decision = decideRetry(policy, held.attempt, err);
    if (decision.retry) {
      const retryAt = new Date(Date.now() + decision.delayMs);
      log.warn({ err, taskId: held.taskId, retryAt }, 'oncetask: attempt failed; will retry');
      await this.bounded(this.s.protocol.fail(lease, held, err, { retryAt }));
    } else {
      log.error({ err, taskId: held.taskId }, 'oncetask: attempt failed; no retries left');
      await this.bounded(this.s.protocol.fail(lease, held, err, { final: true }));
    }
  }

  /** Calls a handler, racing it against its signal; the signal aborts on timeout too. */
  private async invoke(call: () => unknown, controller: AbortController): Promise<Outcome> {
    const aborted = new Promise<Outcome>((resolve) => {
      const onAbort = (): void => resolve({ kind: 'aborted', reason: toError(controller.signal.reason) });
      if (controller.signal.aborted) onAbort();
      else controller.signal.addEventListener('abort', onAbort, { once: true });
    });
    const { timeoutMs } = this.s.options;
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => controller.abort(new HandlerTimeoutError(timeoutMs)), timeoutMs);
    const handled = (async () => call())().then(
      (value): Outcome => ({ kind: 'ok', value }),
      (err: unknown): Outcome => ({ kind: 'error', err: toError(err) }),
    );
    try {
      return await Promise.race([handled, aborted]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async renew(lease: Lease, controller: AbortController, log: OnceTaskLogger): Promise<void> {
    if (controller.signal.aborted) return;
    try {
      await this.s.protocol.renew(lease, this.s.options.leaseMs);
    } catch (err) {
      if (err instanceof LeaseLostError) {
        controller.abort(err);
        return;
      }
      log.warn({ err }, 'oncetask: lease renewal failed');
      if (Date.now() >= lease.expiresAt.getTime()) {
        // Another worker may take the task now: stop this attempt rather than risk two runs.
        controller.abort(new LeaseLostError(lease.tasks[0]?.taskId ?? '?', 'lease expired while renewals failed'));
      }
    }
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
