import { hostname } from 'node:os';
import type { z } from 'zod';
import { assertDefinition, TaskAdmin } from './admin/task-admin.js';
import { TaskReads, type ListOptions, type ListPage, type QueueDepth } from './admin/task-reads.js';
import { DEFAULT_MAX_CLOCK_SKEW_MS, systemClock, type Clock } from './clock.js';
import { assertKnownOptions } from './known-options.js';
import { HandlerAlreadyRegisteredError, InvalidIdError, InvalidOptionsError, InvalidPayloadError } from './errors.js';
import type { GroupHandler, GroupHandlerOptions, HandlerOptions, HandlerSpec, TaskHandler } from './handlers.js';
import { LeaseProtocol, newWorkerId, type Retention } from './lease/protocol.js';
import { DEFAULT_CALL_TIMEOUT_MS } from './store/calls.js';
import { DEFAULT_WRITE_BATCHING } from './store/write-batcher.js';
import { defaultLogger, type OnceTaskLogger } from './logger.js';
import {
  assertDate,
  DEFAULT_GRACE_MS,
  DEFAULT_EMULATOR_POLL_INTERVAL_MS,
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_SWEEP_INTERVAL_MS,
  DEFAULT_LISTENER_ROLE_MS,
  DEFAULT_RETENTION_MS,
  managerOptionsSchema,
  parseOptions,
  resolveHandlerOptions,
  CREATE_MANY_OPTIONS,
  CREATE_OPTIONS,
  checkHooks,
  LIMIT_OPTIONS,
  MANAGER_OPTIONS,
  STOP_OPTIONS,
} from './options.js';
import type { OperationStats } from './store/op-stats.js';
import { TaskStore, type TaskFields, type VersionedTask } from './store/task-store.js';
import { prepareRecurrence, type RecurrenceOptions } from './recurrence.js';
import { newTaskFields, OPEN_STATUSES, type TaskInfo, type TaskStatus } from './task-document.js';
import { assertValidId, identify, kindOf, parsePayload, type TaskDefinition } from './task-definition.js';
import { toFirestoreValue } from './values.js';
import { DEFAULT_HOOK_TIMEOUT_MS, HookRunner } from './worker/hooks.js';
import { drain, type DrainOptions, type DrainResult } from './worker/drain.js';
import { QueueGauges } from './telemetry/queue-gauges.js';
import { Telemetry } from './telemetry/telemetry.js';
import { KindWorker } from './worker/kind-worker.js';

export type { ListOptions, ListPage, QueueDepth } from './admin/task-reads.js';
export type { OnceTaskManagerOptions, CreateOptions, CreateResult, CreateManyOptions, CreateManyResult, StopOptions } from './manager-options.js';
import type { OnceTaskManagerOptions, CreateOptions, CreateResult, CreateManyOptions, CreateManyResult, StopOptions } from './manager-options.js';

/** Longest ID of a recurring generator, so its occurrence IDs stay within 500 bytes. */
const MAX_GENERATOR_ID_BYTES = 470;

/** Wakes local workers of (collection, env, kind) when a task is created in this process. */
const localWorkers = new Map<string, Set<{ wake(dueHead?: VersionedTask): void }>>();


/**
 * The entry point: creates tasks, registers handlers, runs workers, and reads and administers
 * tasks — all within one environment of one collection.
 */
export class OnceTaskManager {
  /** The environment this manager works in. */
  readonly env: string;
  /** The task collection's name. */
  readonly collection: string;
  /** This process's identity in leases. */
  readonly workerId: string;
  private readonly store: TaskStore;
  private readonly admin: TaskAdmin;
  private readonly reads: TaskReads;
  private readonly clock: Clock;
  private readonly maxClockSkewMs: number;
  private readonly logger: OnceTaskLogger;
  private readonly retention: Retention;
  private readonly pollIntervalMs: number;
  private readonly sweepIntervalMs: number;
  private readonly listen: boolean;
  private readonly listenerRoleMs: number;
  private readonly workers = new Map<string, KindWorker<z.ZodType>>();
  private started = false;
  private readonly hooks: HookRunner;
  private readonly telemetry: Telemetry;
  /** Opt-in queue gauges (`queueMetricsIntervalMs`), refreshed while started. */
  private readonly gauges: QueueGauges | null;

  constructor(options: OnceTaskManagerOptions) {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionsError('OnceTaskManager: expected an options object');
    assertKnownOptions(options, MANAGER_OPTIONS, 'OnceTaskManager');
    const { firestore, logger, clock, hooks, ...rest } = options;
    if (clock !== undefined && typeof clock !== 'function') throw new InvalidOptionsError('OnceTaskManager: option "clock" must be a function returning ms since the epoch');
    if (typeof firestore !== 'object' || firestore === null || typeof firestore.collection !== 'function') {
      throw new InvalidOptionsError('OnceTaskManager: option "firestore" must be a Firestore instance');
    }
    const parsed = parseOptions(managerOptionsSchema, rest, 'OnceTaskManager');
    this.env = parsed.env ?? parseOptions(managerOptionsSchema, { env: process.env.ONCE_TASK_ENV || 'default' }, 'ONCE_TASK_ENV').env!;
    this.collection = parsed.collection ?? 'onceTasks';
    this.workerId = parsed.workerId ?? newWorkerId(hostname());
    const retentionMs = parsed.retentionMs ?? DEFAULT_RETENTION_MS;
    this.retention = { retentionMs, failedRetentionMs: parsed.failedRetentionMs ?? (retentionMs > 0 ? retentionMs : DEFAULT_RETENTION_MS) };
    this.sweepIntervalMs = parsed.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    // 'auto': listen in production; poll on the emulator, whose listeners scan the collection per commit.
    const auto = parsed.listen === 'auto' || parsed.listen === undefined;
    const onEmulator = Boolean(process.env.FIRESTORE_EMULATOR_HOST);
    this.listen = auto ? !onEmulator : parsed.listen === true;
    this.listenerRoleMs = parsed.listenerRoleMs ?? DEFAULT_LISTENER_ROLE_MS;
    this.pollIntervalMs = parsed.pollIntervalMs ?? (auto && onEmulator ? DEFAULT_EMULATOR_POLL_INTERVAL_MS : DEFAULT_POLL_INTERVAL_MS);
    this.logger = (logger ?? defaultLogger()).child({ env: this.env, workerId: this.workerId });
    this.clock = clock ?? systemClock;
    this.maxClockSkewMs = parsed.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;
    const batching = parsed.writeBatching === false ? { windowMs: 0, maxWrites: 1 } : { ...DEFAULT_WRITE_BATCHING, ...parsed.writeBatching };
    this.store = new TaskStore(firestore, this.collection, this.env, parsed.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS, batching, parsed.shards ?? 1);
    this.admin = new TaskAdmin(this.store, this.retention.retentionMs, this.clock, {
      wake: (kind) => this.wakeLocal(kind),
      cancelLocal: (kind, docId) => this.workers.get(kind)?.cancelLocal(docId),
      endsCancelledAtOnce: (kind) => {
        const worker = this.workers.get(kind);
        return worker !== undefined && !worker.hasCancelHandler;
      },
    });
    this.reads = new TaskReads(this.store, this.logger);
    this.hooks = new HookRunner(checkHooks(hooks), parsed.hookTimeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS, this.logger);
    this.telemetry = new Telemetry(this.env, parsed.traceParenting ?? 'link');
    this.store.ops.observer = (type, count) => this.telemetry.firestoreOperations(type, count);
    const gaugeMs = parsed.queueMetricsIntervalMs ?? 0;
    this.gauges =
      gaugeMs > 0
        ? new QueueGauges(
            { kinds: () => [...this.workers.keys()], countByStatus: (kind) => this.countByStatus(kind), queueDepth: (kind) => this.queueDepth(kind), now: this.clock },
            this.env,
            gaugeMs,
            this.logger,
          )
        : null;
  }

  // ---- creating -------------------------------------------------------------------------

  /**
   * Creates a task unless one with the same ID exists in this environment (then `created` is
   * false and the stored task is left as it is). The payload is validated first; an invalid
   * payload throws {@link InvalidPayloadError} naming the field, and nothing is written.
   */
  async create<S extends z.ZodType>(def: TaskDefinition<S>, data: z.input<S>, options: CreateOptions = {}): Promise<CreateResult> {
    assertDefinition(def);
    assertKnownOptions(options, CREATE_OPTIONS, 'create');
    const { transaction, batch, waitUntil, recurrence } = options;
    if (transaction && batch) throw new InvalidOptionsError('create: pass either "transaction" or "batch", not both');
    if (recurrence !== undefined && waitUntil !== undefined) {
      throw new InvalidOptionsError('create: a recurring task starts at its first slot; pass "recurrence" or "waitUntil", not both');
    }
    const { id, fields } = this.prepare(def, data, waitUntil ?? new Date(this.clock()), recurrence);
    let head = null as VersionedTask | null; // (set inside the callback; the cast keeps TypeScript from narrowing it to null)
    const created = await this.telemetry.send(def.kind, [id], async (traceContext) => {
      fields.traceContext = traceContext;
      if (transaction) return this.store.createInTransaction(transaction, id, fields);
      if (batch) return this.store.createInBatch(batch, id, fields);
      const result = await this.store.create(id, fields);
      head = result?.head ?? null;
      return result !== null;
    });
    // A task due now is handed to local workers as it was written: they claim it without a read.
    if (created) this.wakeLocal(def.kind, head && head.task.waitUntil.getTime() <= this.clock() ? head : undefined);
    return { id, created };
  }

  /**
   * Creates many tasks of one kind. Every payload is validated before anything is written.
   * Not atomic: each task is created unless it exists.
   */
  async createMany<S extends z.ZodType>(
    def: TaskDefinition<S>,
    data: readonly z.input<S>[],
    options: CreateManyOptions = {},
  ): Promise<CreateManyResult> {
    assertDefinition(def);
    assertKnownOptions(options, CREATE_MANY_OPTIONS, 'createMany');
    if (!Array.isArray(data)) throw new InvalidOptionsError('createMany: data must be an array');
    const now = options.waitUntil ?? new Date(this.clock());
    const items = data.map((item, index) => {
      try {
        return this.prepare(def, item, now);
      } catch (err) {
        if (err instanceof InvalidPayloadError) {
          throw new InvalidPayloadError(def.kind, err.issues.map((i) => ({ ...i, path: `[${index}]${i.path ? `.${i.path}` : ''}` })));
        }
        throw err;
      }
    });
    const outcomes = await this.telemetry.send(def.kind, items.map((i) => i.id), (traceContext) => {
      for (const item of items) item.fields.traceContext = traceContext;
      return this.store.createMany(items);
    });
    const created = outcomes.filter(Boolean).length;
    if (created > 0) this.wakeLocal(def.kind);
    return { ids: items.map((i) => i.id), created };
  }

  private prepare<S extends z.ZodType>(
    def: TaskDefinition<S>,
    data: z.input<S>,
    waitUntil: Date,
    recurrence?: RecurrenceOptions,
  ): { id: string; fields: TaskFields } {
    assertDate(waitUntil, 'waitUntil');
    const parsed = parsePayload(def, data);
    const { id, resourceKey } = identify(def, parsed);
    if (recurrence !== undefined && Buffer.byteLength(id) > MAX_GENERATOR_ID_BYTES) {
      // Occurrence IDs append `_occ_<ISO slot>` (29 bytes) and must stay valid IDs.
      throw new InvalidIdError(`${def.kind}: a recurring task's id must be at most ${MAX_GENERATOR_ID_BYTES} bytes`);
    }
    const schedule = recurrence === undefined ? undefined : prepareRecurrence(recurrence);
    const fields = newTaskFields({
      id,
      kind: def.kind,
      env: this.env,
      data: toFirestoreValue(data, `${def.kind} payload`),
      resourceKey,
      waitUntil: schedule?.at ?? waitUntil,
      now: new Date(this.clock()),
      ...(schedule ? { recurrence: { recurrence: schedule.recurrence, series: schedule.cursor } } : {}),
    });
    return { id, fields };
  }

  private wakeLocal(kind: string, dueHead?: VersionedTask): void {
    for (const worker of localWorkers.get(this.wakeKey(kind)) ?? []) worker.wake(dueHead);
  }

  private wakeKey(kind: string): string {
    return `${this.collection}\u0000${this.env}\u0000${kind}`;
  }

  // ---- working --------------------------------------------------------------------------

  /**
   * Registers the handler of a kind: called once per task; its return value is stored as the
   * task's `result`. A kind has one handler per manager (`handle` or `handleGroup`).
   */
  handle<S extends z.ZodType, R>(
    def: TaskDefinition<S>,
    handler: TaskHandler<z.output<S>, R>,
    options: HandlerOptions<z.output<S>> = {},
  ): void {
    this.register(def, { mode: 'single', handler: handler as TaskHandler<z.output<S>>, onCancel: options?.onCancel }, options, 'handle');
  }

  /**
   * Registers a grouped handler: each call receives every ready task of one resource key (up to
   * `maxBatchSize`, in queue order) under one lease of the key. Tasks without a key come in
   * groups of one.
   */
  handleGroup<S extends z.ZodType>(
    def: TaskDefinition<S>,
    handler: GroupHandler<z.output<S>>,
    options: GroupHandlerOptions<z.output<S>> = {},
  ): void {
    this.register(def, { mode: 'group', handler, onCancel: options?.onCancel }, options, 'handleGroup');
  }

  private register<S extends z.ZodType>(def: TaskDefinition<S>, spec: HandlerSpec<z.output<S>>, options: unknown, method: string): void {
    assertDefinition(def);
    const where = `${method}(${def.kind})`;
    if (typeof spec.handler !== 'function') throw new InvalidOptionsError(`${where}: handler must be a function`);
    if (this.workers.has(def.kind)) throw new HandlerAlreadyRegisteredError(def.kind);
    const resolved = resolveHandlerOptions(options, where, spec.mode === 'group');
    const worker = new KindWorker(
      {
        store: this.store,
        protocol: new LeaseProtocol(this.store, this.workerId, this.retention, this.clock),
        logger: this.logger,
        pollIntervalMs: this.pollIntervalMs,
        sweepIntervalMs: this.sweepIntervalMs,
        listen: this.listen,
        listenerRoleMs: this.listenerRoleMs,
        retentionMs: this.retention.retentionMs,
        clock: this.clock,
        maxClockSkewMs: this.maxClockSkewMs,
        hooks: this.hooks,
        telemetry: this.telemetry,
      },
      def,
      spec,
      resolved,
    ) as unknown as KindWorker<z.ZodType>;
    this.workers.set(def.kind, worker);
    if (this.started) this.startWorker(def.kind, worker);
  }

  /** Starts a worker loop for every registered kind (and for kinds registered later). */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const [kind, worker] of this.workers) this.startWorker(kind, worker);
    this.gauges?.start();
    this.logger.info({ kinds: [...this.workers.keys()] }, 'oncetask: workers started');
  }

  /**
   * Serverless mode: starts the workers of `kinds` (default: every registered kind), runs due
   * tasks until none is left due or `maxMs` has passed, then stops (handing back what is still
   * running after `graceMs`) and resolves with what ran. For a Cloud Run job, a Cloud Scheduler
   * ping or a function triggered by a new task document; the manager must not be started.
   */
  async drain(options: DrainOptions = {}): Promise<DrainResult> {
    return drain(
      {
        started: this.started,
        workers: this.workers,
        hooks: this.hooks,
        clock: this.clock,
        startKinds: (kinds) => {
          this.started = true;
          for (const kind of kinds) this.startWorker(kind, this.workers.get(kind)!);
        },
        stop: (graceMs) => this.stop({ graceMs }),
      },
      options,
    );
  }

  private startWorker(kind: string, worker: KindWorker<z.ZodType>): void {
    const key = this.wakeKey(kind);
    let set = localWorkers.get(key);
    if (!set) localWorkers.set(key, (set = new Set()));
    set.add(worker);
    worker.start();
  }

  /**
   * Stops claiming, lets running handlers finish for up to `graceMs`, then aborts the rest and
   * releases their leases so another worker can take them at once. Resolves when every loop
   * and handler run has ended.
   */
  async stop(options: StopOptions = {}): Promise<void> {
    assertKnownOptions(options, STOP_OPTIONS, 'stop');
    const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
    if (typeof graceMs !== 'number' || !Number.isFinite(graceMs) || graceMs < 0) {
      throw new InvalidOptionsError('stop: option "graceMs" must be a number >= 0');
    }
    if (!this.started) return;
    this.started = false;
    this.gauges?.stop();
    for (const [kind, worker] of this.workers) localWorkers.get(this.wakeKey(kind))?.delete(worker);
    await Promise.all([...this.workers.values()].map((w) => w.stop(graceMs)));
    await this.hooks.drain(); // e.g. an error reporter still sending the last failure (each call is bounded)
    this.logger.info({}, 'oncetask: workers stopped');
  }

  /** Counts of the Firestore operations this manager caused (billed reads, writes, deletes). */
  stats(): OperationStats {
    return this.store.ops.snapshot();
  }

  // ---- reading --------------------------------------------------------------------------

  /** The task with this ID in this environment, or `null`. */
  async get(id: string): Promise<TaskInfo | null> {
    return (await this.getMany([id]))[0] ?? null;
  }

  /** Tasks by ID, in the order given; `null` where absent (or malformed, which is logged). */
  async getMany(ids: readonly string[]): Promise<(TaskInfo | null)[]> {
    return this.reads.getMany(ids);
  }

  /**
   * Tasks per status — of one kind, or of every kind — by COUNT aggregations (6 of them; each
   * billed 1 read per 1000 tasks counted, at least 1). Never reads the tasks themselves.
   */
  async countByStatus(def?: TaskDefinition | string): Promise<Record<TaskStatus, number>> {
    return this.reads.countByStatus(def === undefined ? null : kindOf(def, 'countByStatus'));
  }

  /**
   * A kind's queue: pending tasks due now and due later, running, cancelling, and when the
   * oldest due task came due (4 COUNT aggregations and a `limit(1)` query: about 5 reads).
   */
  async queueDepth(def: TaskDefinition | string): Promise<QueueDepth> {
    return this.reads.queueDepth(kindOf(def, 'queueDepth'), new Date(this.clock()));
  }

  /**
   * Kinds with failed tasks and how many, most first — of `kinds` (default: the kinds this
   * manager has handlers for), one COUNT aggregation each. For a dead-task view.
   */
  async failedKinds(kinds?: readonly (TaskDefinition | string)[]): Promise<{ kind: string; failed: number }[]> {
    const names = kinds === undefined ? [...this.workers.keys()] : kinds.map((k) => kindOf(k, 'failedKinds'));
    if (names.length === 0) throw new InvalidOptionsError('failedKinds: pass the kinds to look at (this manager has no handlers registered)');
    return this.reads.failedKinds(names);
  }

  /** How many tasks of the kind are pending (waiting or due, not running), by a COUNT aggregation. */
  async countPending(def: TaskDefinition): Promise<number> {
    assertDefinition(def);
    return this.store.listing.countByStatus(def.kind, 'pending');
  }

  /** Lists tasks newest first, optionally by kind and status, a page at a time. */
  async list(options: ListOptions): Promise<ListPage> {
    return this.reads.list(options);
  }

  /** A resource key's tasks in queue order (due time, then creation order). */
  async listByResourceKey(def: TaskDefinition, resourceKey: string, options: { limit?: number } = {}): Promise<TaskInfo[]> {
    assertDefinition(def);
    assertKey(resourceKey);
    assertKnownOptions(options, LIMIT_OPTIONS, 'listByResourceKey');
    return this.reads.listByResourceKey(def.kind, resourceKey, options ?? {});
  }

  /** The occurrences a recurring generator has spawned, oldest slot first. */
  async listOccurrences(generatorId: string, options: { limit?: number } = {}): Promise<TaskInfo[]> {
    assertKnownOptions(options, LIMIT_OPTIONS, 'listOccurrences');
    return this.reads.listOccurrences(generatorId, options ?? {});
  }

  // ---- administering --------------------------------------------------------------------

  /**
   * Puts terminal tasks (succeeded, failed, cancelled) back to pending, due now, with their
   * attempts and errors cleared. Others are left alone. Returns how many were reset. An ID
   * that exists only in another environment throws {@link EnvironmentMismatchError}.
   */
  async reset(ids: readonly string[]): Promise<number> {
    assertIds(ids, 'reset');
    return this.admin.reset(ids);
  }

  /**
   * Runs a task as soon as a worker is free: a pending task waiting for its time or a retry
   * becomes due now; a failed task is reset. Throws for running, succeeded or cancelled tasks.
   */
  async retryNow(id: string): Promise<void> {
    assertValidId(id);
    await this.admin.retryNow(id);
  }

  /** Deletes a task; true when it existed. A running attempt's outcome write is then refused. */
  async delete(id: string): Promise<boolean> {
    assertValidId(id);
    return this.admin.delete(id);
  }

  /** Deletes many tasks; returns how many existed. */
  async deleteMany(ids: readonly string[]): Promise<number> {
    assertIds(ids, 'deleteMany');
    return this.admin.deleteMany(ids);
  }

  /**
   * Cancels a task. A pending task ends `cancelled` (after its `onCancel` runs, if the kind has
   * one); a running task's `ctx.signal` is aborted (in any process, within one lease-renewal
   * interval). Returns 1 if newly cancelled, 0 if it had ended or was cancelled already.
   */
  async cancel(id: string): Promise<number> {
    assertValidId(id);
    return this.admin.cancel(id);
  }

  /** Cancels many tasks; unknown IDs throw before anything changes. Returns how many were newly cancelled. */
  async cancelMany(ids: readonly string[]): Promise<number> {
    assertIds(ids, 'cancelMany');
    return this.admin.cancelMany(ids);
  }

  /** Cancels every open task of a resource key (any number of them). Returns how many were newly cancelled. */
  async cancelByResourceKey(def: TaskDefinition, resourceKey: string): Promise<number> {
    assertDefinition(def);
    assertKey(resourceKey);
    return this.admin.cancelByResourceKey(def.kind, resourceKey);
  }

  /**
   * Gives every open task of this environment the shard it belongs in under this manager's
   * `shards`: run it once after changing `shards` on a collection that holds open tasks (or
   * that holds tasks written before shards existed), while the indexes of the old setting are
   * still deployed. Costs one read per open task, and a read and a write per task it moves.
   */
  async reshard(): Promise<{ checked: number; moved: number }> {
    return this.store.listing.reshard(OPEN_STATUSES);
  }
}

function assertIds(ids: readonly string[], method: string): void {
  if (!Array.isArray(ids)) throw new InvalidOptionsError(`${method}: ids must be an array`);
  ids.forEach((id) => assertValidId(id));
}

function assertKey(resourceKey: unknown): asserts resourceKey is string {
  if (typeof resourceKey !== 'string' || resourceKey === '') throw new InvalidOptionsError('resourceKey must be a non-empty string');
}
