import type { z } from 'zod';
import type { WorkerProbe } from '../testing/internals.js';
import { assertDefinition } from '../admin/task-admin.js';
import type { Clock } from '../clock.js';
import { HandlerAlreadyRegisteredError, InvalidOptionsError } from '../errors.js';
import type { HandlerSpec } from '../handlers.js';
import { assertKnownOptions } from '../known-options.js';
import { LeaseProtocol, type Retention } from '../lease/protocol.js';
import type { OnceTaskLogger } from '../logger.js';
import { DEFAULT_GRACE_MS, resolveHandlerOptions, STOP_OPTIONS } from '../options.js';
import type { StopOptions } from '../manager-options.js';
import type { TaskStore } from '../store/task-store.js';
import type { QueueGauges } from '../telemetry/queue-gauges.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import type { TaskDefinition } from '../task-definition.js';
import { drain, type DrainOptions, type DrainResult } from './drain.js';
import type { HookRunner } from './hooks.js';
import { KindWorker } from './kind-worker.js';
import type { LocalWake } from './local-wake.js';
import type { ProcessControl } from './process-control.js';

/**
 * A manager's workers: one {@link KindWorker} per registered kind, started and stopped together
 * with the manager's control listeners and queue gauges, and entered in the process-wide
 * wake-up registry ({@link LocalWake}) while started.
 */

/** What every worker of a manager shares (see {@link WorkerSettings}), and what the pool runs alongside them. */
export interface PoolSettings {
  store: TaskStore;
  workerId: string;
  retention: Retention;
  logger: OnceTaskLogger;
  pollIntervalMs: number;
  sweepIntervalMs: number;
  listen: boolean;
  listenerRoleMs: number;
  clock: Clock;
  maxClockSkewMs: number;
  hooks: HookRunner;
  telemetry: Telemetry;
  /** The pauses and cancel-inbox listeners, attached while started. */
  control: ProcessControl;
  /** Opt-in queue gauges (`queueMetricsIntervalMs`), refreshed while started. */
  gauges: QueueGauges | null;
  /** The process-wide wake-up registry, for this manager's collection and environment. */
  wake: LocalWake;
}

export class WorkerPool {
  private started = false;
  /** Whether it was ever started (the testing kit starts only managers a test has not started and stopped itself). */
  private everStarted = false;

  constructor(
    private readonly settings: PoolSettings,
    /** The workers by kind (shared with the administration, which cancels and wakes through them). */
    private readonly workers: Map<string, KindWorker<z.ZodType>>,
  ) {}

  /** The kinds with a registered handler, in registration order. */
  kinds(): string[] {
    return [...this.workers.keys()];
  }

  /** Registers the handler of a kind (`method` names the public call in errors); starts its worker if the pool runs. */
  register<S extends z.ZodType>(def: TaskDefinition<S>, spec: HandlerSpec<z.output<S>>, options: unknown, method: string): void {
    assertDefinition(def);
    const where = `${method}(${def.kind})`;
    if (typeof spec.handler !== 'function') throw new InvalidOptionsError(`${where}: handler must be a function`);
    if (this.workers.has(def.kind)) throw new HandlerAlreadyRegisteredError(def.kind);
    const resolved = resolveHandlerOptions(options, where, spec.mode === 'group');
    if (resolved.cooldownMs > 0 && def.resourceKey === undefined) throw new InvalidOptionsError(`${where}: option "cooldownMs" needs a kind with a resourceKey`);
    const s = this.settings;
    const worker = new KindWorker(
      {
        store: s.store,
        protocol: new LeaseProtocol(s.store, s.workerId, s.retention, s.clock, { cooldownMs: resolved.cooldownMs, strictOrder: def.strictOrder === true }),
        logger: s.logger,
        pollIntervalMs: s.pollIntervalMs,
        sweepIntervalMs: s.sweepIntervalMs,
        listen: s.listen,
        listenerRoleMs: s.listenerRoleMs,
        retentionMs: s.retention.retentionMs,
        clock: s.clock,
        maxClockSkewMs: s.maxClockSkewMs,
        hooks: s.hooks,
        telemetry: s.telemetry,
        control: s.control,
      },
      def,
      spec,
      resolved,
    ) as unknown as KindWorker<z.ZodType>;
    this.workers.set(def.kind, worker);
    if (this.started) this.startWorker(def.kind, worker);
  }

  /** Starts every registered worker, the control listeners and the gauges. Idempotent. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.everStarted = true;
    this.settings.control.start();
    for (const [kind, worker] of this.workers) this.startWorker(kind, worker);
    this.settings.gauges?.start();
    this.settings.logger.info({ kinds: this.kinds() }, 'oncetask: workers started');
  }

  /** Runs a drain (see {@link drain}); `stop` is the manager's own stop, with the drain's grace period. */
  drain(options: DrainOptions, stop: (graceMs: number) => Promise<void>): Promise<DrainResult> {
    return drain(
      {
        started: this.started,
        workers: this.workers,
        hooks: this.settings.hooks,
        clock: this.settings.clock,
        startKinds: (kinds) => {
          this.started = true;
          this.everStarted = true;
          this.settings.control.start();
          for (const kind of kinds) this.startWorker(kind, this.workers.get(kind)!);
        },
        stop,
      },
      options,
    );
  }

  /** Stops every worker (see {@link OnceTaskManager.stop}), then the control listeners and the hooks still running. */
  async stop(options: StopOptions): Promise<void> {
    assertKnownOptions(options, STOP_OPTIONS, 'stop');
    const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
    if (typeof graceMs !== 'number' || !Number.isFinite(graceMs) || graceMs < 0) {
      throw new InvalidOptionsError('stop: option "graceMs" must be a number >= 0');
    }
    if (!this.started) return;
    this.started = false;
    this.settings.gauges?.stop();
    for (const [kind, worker] of this.workers) this.settings.wake.remove(kind, worker);
    await Promise.all([...this.workers.values()].map((w) => w.stop(graceMs)));
    this.settings.control.stop();
    await this.settings.hooks.drain(); // e.g. an error reporter still sending the last failure (each call is bounded)
    this.settings.logger.info({}, 'oncetask: workers stopped');
  }

  /** Whether the workers are started. */
  get isStarted(): boolean {
    return this.started;
  }

  /** Whether they were ever started. */
  get wasStarted(): boolean {
    return this.everStarted;
  }

  /** What the testing kit sees of each worker. */
  probes(): WorkerProbe[] {
    return [...this.workers.values()].map((w) => w.probe);
  }

  /** Makes every worker look at its queue now. */
  wakeAll(): void {
    for (const worker of this.workers.values()) worker.wake();
  }

  /** Dies like a killed process (the testing kit's `crashWorker`): nothing more is written; leases and the listener role expire. */
  async crash(): Promise<void> {
    this.started = false;
    this.settings.gauges?.stop();
    this.settings.control.stop();
    for (const [kind, worker] of this.workers) this.settings.wake.remove(kind, worker);
    await Promise.all([...this.workers.values()].map((w) => w.crash()));
  }

  private startWorker(kind: string, worker: KindWorker<z.ZodType>): void {
    this.settings.wake.add(kind, worker);
    worker.start();
  }
}
