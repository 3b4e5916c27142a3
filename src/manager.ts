import { hostname } from 'node:os';
import type { z } from 'zod';
import { assertDefinition, TaskAdmin } from './admin/task-admin.js';
import { TaskReads, type ListOptions, type ListPage, type QueueDepth } from './admin/task-reads.js';
import { DEFAULT_MAX_CLOCK_SKEW_MS, systemClock, type Clock } from './clock.js';
import { assertKnownOptions } from './known-options.js';
import { HandlerAlreadyRegisteredError, InvalidIdError, InvalidOptionsError, InvalidPayloadError, MalformedTaskError, TaskNotFoundError, WaitTimeoutError } from './errors.js';
import { checkLabels } from './labels.js';
import { assertPriority } from './priority.js';
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
  WAIT_FOR_OPTIONS,
} from './options.js';
import type { OperationStats } from './store/op-stats.js';
import { TaskStore, type CreatePolicy, type TaskFields, type VersionedTask } from './store/task-store.js';
import { prepareRecurrence, type RecurrenceOptions } from './recurrence.js';
import { newTaskFields, OPEN_STATUSES, TERMINAL_STATUSES, toTaskInfo, type TaskInfo, type TaskStatus } from './task-document.js';
import { assertValidId, identify, kindOf, parsePayload, type TaskDefinition } from './task-definition.js';
import { toFirestoreValue } from './values.js';
import { DEFAULT_HOOK_TIMEOUT_MS, HookRunner } from './worker/hooks.js';
import { drain, type DrainOptions, type DrainResult } from './worker/drain.js';
import { QueueGauges } from './telemetry/queue-gauges.js';
import { Telemetry } from './telemetry/telemetry.js';
import { KindWorker } from './worker/kind-worker.js';
import { ProcessControl } from './worker/process-control.js';
import { ControlStore } from './store/control-store.js';
import { Pauses, type PauseInfo, type PauseOptions, type ResumeOptions } from './admin/pauses.js';
import { ScheduleAdmin, type ListSchedulesOptions, type RunScheduleNowResult, type ScheduleInfo, type UpsertScheduleResult } from './admin/schedules.js';

export type { ListOptions, ListPage, QueueDepth } from './admin/task-reads.js';
export type { PauseInfo, PauseOptions, ResumeOptions } from './admin/pauses.js';
export type { LastSpawn, ListSchedulesOptions, RunScheduleNowResult, ScheduleInfo, UpsertScheduleOutcome, UpsertScheduleResult } from './admin/schedules.js';
export type { OnceTaskManagerOptions, CreateOptions, CreateOutcome, CreateResult, CreateManyOptions, CreateManyResult, StopOptions, WaitForOptions } from './manager-options.js';
import type { OnceTaskManagerOptions, CreateOptions, CreateOutcome, CreateResult, CreateManyOptions, CreateManyResult, StopOptions, WaitForOptions } from './manager-options.js';

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
  private readonly schedules: ScheduleAdmin;
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
  /** The pauses and cancel-inbox listeners, attached while started. */
  private readonly control: ProcessControl;
  private readonly pauses: Pauses;

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
    const controlStore = new ControlStore(this.store);
    this.control = new ProcessControl(controlStore, this.workerId, this.clock, this.logger, (docId) => {
      for (const worker of this.workers.values()) void worker.cancelPosted(docId);
    });
    this.pauses = new Pauses(controlStore, this.control, this.clock);
    this.admin = new TaskAdmin(this.store, this.retention.retentionMs, this.clock, {
      postCancel: (workerId, docId) => {
        // The holder sees the request at its next renewal anyway; the inbox makes it immediate.
        if (workerId === this.workerId) return;
        controlStore.postCancel(workerId, docId, new Date(this.clock())).catch((err: unknown) => this.logger.warn({ err, docId }, 'oncetask: could not post the cancellation to the worker running the task; it sees it at its next lease renewal'));
      },
      wake: (kind) => this.wakeLocal(kind),
      cancelLocal: (kind, docId) => this.workers.get(kind)?.cancelLocal(docId),
      endsCancelledAtOnce: (kind) => {
        const worker = this.workers.get(kind);
        return worker !== undefined && !worker.hasCancelHandler;
      },
    });
    this.reads = new TaskReads(this.store, this.logger);
    this.schedules = new ScheduleAdmin(this.store, this.clock, {
      wake: (kind) => this.wakeLocal(kind),
      missing: async (id) => {
        await this.admin.assertNotElsewhere(id);
        throw new TaskNotFoundError(id, this.env);
      },
    });
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
   * false, `outcome` is `'exists'` and the stored task is left as it is). The payload, labels
   * and priority are validated first; an invalid payload throws {@link InvalidPayloadError}
   * naming the field, a bad option {@link InvalidOptionsError}, and nothing is written.
   *
   * A kind defined with `throttle` or `debounce` follows its rule instead (`outcome`
   * `'throttled'` / `'debounced'`, or `'created'` when a finished task of the ID is replaced by
   * a new one); such kinds cannot be created in a `transaction` or `batch`, nor be recurring, and
   * a `debounce` kind takes no `waitUntil` (it is due `delayMs` after the create).
   *
   * Firestore cost: 1 write for a new task (plus 1 read inside a `transaction` or with a
   * `batch`); an existing ID costs a refused write (not billed) and, for a throttle or debounce
   * kind, 1 read plus 1 write when it replaces or moves the task (each lost race with another
   * process adds a read and a write).
   */
  async create<S extends z.ZodType>(def: TaskDefinition<S>, data: z.input<S>, options: CreateOptions = {}): Promise<CreateResult> {
    assertDefinition(def);
    assertKnownOptions(options, CREATE_OPTIONS, 'create');
    const { transaction, batch, waitUntil, recurrence, labels, priority } = options;
    if (transaction && batch) throw new InvalidOptionsError('create: pass either "transaction" or "batch", not both');
    if (recurrence !== undefined && waitUntil !== undefined) {
      throw new InvalidOptionsError('create: a recurring task starts at its first slot; pass "recurrence" or "waitUntil", not both');
    }
    const policy = creationPolicy(def);
    if (policy) {
      const where = `create(${def.kind})`;
      if (transaction || batch) throw new InvalidOptionsError(`${where}: a ${policy.kind} kind cannot be created in a transaction or batch`);
      if (recurrence !== undefined) throw new InvalidOptionsError(`${where}: a ${policy.kind} kind cannot be recurring`);
      if (policy.kind === 'debounce' && waitUntil !== undefined) throw new InvalidOptionsError(`${where}: a debounce kind is due delayMs after its create; "waitUntil" does not apply`);
    }
    const now = new Date(this.clock());
    const { id, fields } = this.prepare(def, data, waitUntil ?? now, { recurrence, labels, priority, now, where: 'create' });
    let head = null as VersionedTask | null; // (set inside the callback; the cast keeps TypeScript from narrowing it to null)
    const outcome = await this.telemetry.send(def.kind, [id], async (traceContext): Promise<CreateOutcome> => {
      fields.traceContext = traceContext;
      if (policy) {
        const result = await this.store.createWithPolicy(id, fields, policy, now);
        head = result.head;
        return result.outcome;
      }
      if (transaction) return (await this.store.createInTransaction(transaction, id, fields)) ? 'created' : 'exists';
      if (batch) return (await this.store.createInBatch(batch, id, fields)) ? 'created' : 'exists';
      const result = await this.store.create(id, fields);
      head = result?.head ?? null;
      return result !== null ? 'created' : 'exists';
    });
    const created = outcome === 'created';
    // A task due now is handed to local workers as it was written: they claim it without a read.
    if (created) this.wakeLocal(def.kind, head && head.task.waitUntil.getTime() <= this.clock() && (head.task.notBefore === null || head.task.notBefore.getTime() <= this.clock()) ? head : undefined);
    return { id, created, outcome };
  }

  /**
   * Creates many tasks of one kind. Every payload (and the labels and priority) is validated
   * before anything is written. Not atomic: each task is created unless it exists. A `throttle`
   * or `debounce` kind applies its rule per task (items of one ID in input order, so the last
   * payload of a debounced ID wins), one conditional write each instead of a BulkWriter; the
   * result counts the `throttled` and `debounced` ones.
   *
   * Firestore cost: 1 write per new task; for a throttle or debounce kind, an existing ID adds
   * 1 read, and 1 write when it replaces or moves the task.
   */
  async createMany<S extends z.ZodType>(
    def: TaskDefinition<S>,
    data: readonly z.input<S>[],
    options: CreateManyOptions = {},
  ): Promise<CreateManyResult> {
    assertDefinition(def);
    assertKnownOptions(options, CREATE_MANY_OPTIONS, 'createMany');
    if (!Array.isArray(data)) throw new InvalidOptionsError('createMany: data must be an array');
    const policy = creationPolicy(def);
    if (policy?.kind === 'debounce' && options.waitUntil !== undefined) {
      throw new InvalidOptionsError(`createMany(${def.kind}): a debounce kind is due delayMs after its create; "waitUntil" does not apply`);
    }
    const now = new Date(this.clock());
    const waitUntil = options.waitUntil ?? now;
    const items = data.map((item, index) => {
      try {
        return this.prepare(def, item, waitUntil, { labels: options.labels, priority: options.priority, now, where: 'createMany' });
      } catch (err) {
        if (err instanceof InvalidPayloadError) {
          throw new InvalidPayloadError(def.kind, err.issues.map((i) => ({ ...i, path: `[${index}]${i.path ? `.${i.path}` : ''}` })));
        }
        throw err;
      }
    });
    const outcomes = await this.telemetry.send(def.kind, items.map((i) => i.id), async (traceContext): Promise<CreateOutcome[]> => {
      for (const item of items) item.fields.traceContext = traceContext;
      if (policy) return this.store.createManyWithPolicy(items, policy, now);
      return (await this.store.createMany(items)).map((created) => (created ? 'created' : 'exists'));
    });
    const count = (outcome: CreateOutcome): number => outcomes.filter((o) => o === outcome).length;
    const created = count('created');
    if (created > 0) this.wakeLocal(def.kind);
    return { ids: items.map((i) => i.id), created, throttled: count('throttled'), debounced: count('debounced') };
  }

  private prepare<S extends z.ZodType>(
    def: TaskDefinition<S>,
    data: z.input<S>,
    waitUntil: Date,
    extra: { recurrence?: RecurrenceOptions; labels?: Record<string, string>; priority?: number; now: Date; where: string },
  ): { id: string; fields: TaskFields } {
    const { recurrence, where } = extra;
    assertDate(waitUntil, 'waitUntil');
    if (extra.priority !== undefined) assertPriority(extra.priority, `${where}: option "priority"`);
    const given = extra.labels === undefined ? {} : checkLabels(extra.labels, `${where}: option "labels"`);
    const parsed = parsePayload(def, data);
    const { id, resourceKey } = identify(def, parsed);
    // The definition's labels, with the option's over them (at most 10 in all).
    const labels = checkLabels({ ...(def.labels ? checkLabels(def.labels(parsed), `${def.kind}: labels()`) : {}), ...given }, `${where}(${def.kind})`);
    let priority = extra.priority;
    if (priority === undefined && def.priority) {
      const fromDefinition = def.priority(parsed);
      assertPriority(fromDefinition, `${def.kind}: priority()`);
      priority = fromDefinition;
    }
    if (recurrence !== undefined && Buffer.byteLength(id) > MAX_GENERATOR_ID_BYTES) {
      // Occurrence IDs append `_occ_<ISO slot>` (29 bytes) and must stay valid IDs.
      throw new InvalidIdError(`${def.kind}: a recurring task's id must be at most ${MAX_GENERATOR_ID_BYTES} bytes`);
    }
    const schedule = recurrence === undefined ? undefined : prepareRecurrence(recurrence, { now: extra.now });
    const fields = newTaskFields({
      id,
      kind: def.kind,
      env: this.env,
      data: toFirestoreValue(data, `${def.kind} payload`),
      resourceKey,
      waitUntil: schedule?.at ?? waitUntil,
      now: extra.now,
      labels,
      priority: priority ?? 0,
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
    if (resolved.cooldownMs > 0 && def.resourceKey === undefined) throw new InvalidOptionsError(`${where}: option "cooldownMs" needs a kind with a resourceKey`);
    const worker = new KindWorker(
      {
        store: this.store,
        protocol: new LeaseProtocol(this.store, this.workerId, this.retention, this.clock, { cooldownMs: resolved.cooldownMs, strictOrder: def.strictOrder === true }),
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
        control: this.control,
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
    this.control.start();
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
          this.control.start();
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
    this.control.stop();
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

  /**
   * Lists tasks newest first, optionally by kind, status and labels, a page at a time. Cost:
   * the documents returned plus one (`limit + 1` reads at most). With `labels`, the first
   * label is queried and the rest (and kind and status) checked while paging: up to 10 pages
   * of max(limit + 1, 100) documents (see {@link ListOptions.labels}).
   */
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

  // ---- waiting --------------------------------------------------------------------------

  /**
   * Resolves with the task once it is terminal (`succeeded`, `failed` or `cancelled`), at once
   * if it already is. Rejects with {@link WaitTimeoutError} after `timeoutMs`, with the signal's
   * reason when `signal` aborts, with {@link TaskNotFoundError} if the task does not exist or is
   * deleted while waited for, with {@link MalformedTaskError} if its document is not a task, and
   * with the listener's error if Firestore ends the listener. Note that with `retentionMs: 0` a
   * worker deletes a task in the very commit that finishes it: waiting for such a task ends
   * with `TaskNotFoundError`, never with its outcome (`failedRetentionMs` decides the same for
   * failures).
   *
   * Uses one listener on the task's document (`onSnapshot`, from any process's changes), closed
   * whenever the promise settles. Firestore cost: 1 read for the first snapshot, then 1 per
   * change of the task until it ends (its claim, a lease renewal every `leaseMs / 3`, its
   * outcome, a retry's writes).
   */
  async waitFor(id: string, options: WaitForOptions = {}): Promise<TaskInfo> {
    assertValidId(id);
    assertKnownOptions(options, WAIT_FOR_OPTIONS, 'waitFor');
    const { timeoutMs, signal } = options ?? {};
    if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_TIMER_MS)) {
      throw new InvalidOptionsError(`waitFor: option "timeoutMs" must be a number of ms > 0 and at most ${MAX_TIMER_MS}`);
    }
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InvalidOptionsError('waitFor: option "signal" must be an AbortSignal');
    return new Promise<TaskInfo>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      let unsubscribe: (() => void) | undefined;
      const finish = (settle: () => void): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        unsubscribe?.();
        settle();
      };
      const onAbort = (): void => finish(() => reject(signal!.reason));
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== undefined) timer = setTimeout(() => finish(() => reject(new WaitTimeoutError(id, timeoutMs))), timeoutMs);
      try {
        unsubscribe = this.store.watchTask(
          id,
          (decoded, docId) => {
            if (decoded === null) finish(() => reject(new TaskNotFoundError(id, this.env)));
            else if (!decoded.ok) finish(() => reject(new MalformedTaskError(docId, decoded.reason)));
            else if (TERMINAL_STATUSES.includes(decoded.task.status)) finish(() => resolve(toTaskInfo(decoded.task)));
          },
          (err) => finish(() => reject(err)),
        );
      } catch (err) {
        finish(() => reject(err)); // (e.g. a terminated client): no timer or abort listener left behind
        return;
      }
      if (done) unsubscribe(); // (settled before the listener was there to close)
    });
  }

  /**
   * Calls `onChange` with the task on its first snapshot and after every change to it, from any
   * process (`null` while it does not exist: not created yet, or deleted). Returns the
   * unsubscribe function (idempotent). A document that is not a task is reported to `onError`
   * (as {@link MalformedTaskError}; watching goes on); so is the listener's end by Firestore,
   * after which nothing more is called. Without `onError` these are logged. A throw from a
   * callback is logged and ignored.
   *
   * Uses one listener on the task's document (`onSnapshot`). Firestore cost: 1 read for the
   * first snapshot, then 1 per change of the task while subscribed.
   */
  watch(id: string, onChange: (task: TaskInfo | null) => void, onError?: (err: Error) => void): () => void {
    assertValidId(id);
    if (typeof onChange !== 'function') throw new InvalidOptionsError('watch: onChange must be a function');
    if (onError !== undefined && typeof onError !== 'function') throw new InvalidOptionsError('watch: onError must be a function');
    const call = (fn: () => void, what: string): void => {
      try {
        fn();
      } catch (err) {
        this.logger.warn({ taskId: id, err: err instanceof Error ? err.message : String(err) }, `oncetask: watch ${what} threw`);
      }
    };
    const report = (err: Error): void => {
      if (onError) call(() => onError(err), 'onError');
      else this.logger.warn({ taskId: id, err: err.message }, 'oncetask: watch failed');
    };
    return this.store.watchTask(
      id,
      (decoded, docId) => {
        if (decoded !== null && !decoded.ok) report(new MalformedTaskError(docId, decoded.reason));
        else call(() => onChange(decoded === null ? null : toTaskInfo(decoded.task)), 'onChange');
      },
      report,
    );
  }

  // ---- pausing ---------------------------------------------------------------------------

  /**
   * Pauses a kind (or, without `kind`, every kind) in every process of this environment: workers
   * stop claiming within about a second (running tasks finish), and resume by themselves at
   * `until`, if given. Costs a read and a write of the environment's control document, and one
   * listener read in each started manager.
   */
  async pause(options: PauseOptions = {}): Promise<void> {
    await this.pauses.pause(options);
  }

  /** Lifts the pause of a kind (or, without `kind`, every pause). A read and a write, and a listener read per started manager. */
  async resume(options: ResumeOptions = {}): Promise<void> {
    await this.pauses.resume(options);
  }

  /** The pauses in force (one read). */
  async paused(): Promise<PauseInfo[]> {
    return this.pauses.paused();
  }

  // ---- schedules ----------------------------------------------------------------------

  /**
   * Creates a recurring generator, or brings the existing one of the same ID (from `def.id(data)`)
   * to `recurrence` and `data` — for declaring schedules at deploy time, idempotently:
   * - none: created as `create(def, data, { recurrence })` would (`outcome: 'created'`);
   * - open, as given already: nothing written (`'unchanged'`);
   * - open, changed: updated in place (`'updated'`), conditional on the version read (retried on a
   *   conflict, e.g. with a spawn). A changed rule is planned from now, strictly after the last
   *   slot spawned, so no slot is spawned twice; what it missed before now is dropped. Payload,
   *   resource key, labels and priority (from the definition) apply to occurrences spawned from
   *   now on; spawned occurrences are left as they are. A paused generator stays paused;
   * - ended (COUNT/UNTIL, cancelled, failed): replaced by a fresh generator (`'created'`).
   * A `cron` or interval schedule without `dtstart` compares equal whatever the time of the call;
   * an `rrule` one compares its `dtstart` too, so pass a fixed one. Costs 1 read, plus 1 write
   * unless unchanged (a create: 1 read and 1 write); each conflict 1 read and 1 write more.
   */
  async upsertSchedule<S extends z.ZodType>(def: TaskDefinition<S>, data: z.input<S>, recurrence: RecurrenceOptions): Promise<UpsertScheduleResult> {
    assertDefinition(def);
    if (typeof recurrence !== 'object' || recurrence === null) throw new InvalidOptionsError('upsertSchedule: recurrence must be an object with rrule, cron or every');
    const now = new Date(this.clock());
    const prepared = this.prepare(def, data, now, { recurrence, now, where: 'upsertSchedule' });
    return this.schedules.upsert(prepared, recurrence);
  }

  /**
   * Spawns one extra occurrence of an open generator, due now, with the ID
   * `{generatorId}_now_{ISO instant}` and the generator's payload, key, labels and priority. The
   * generator does not move and its `lastSpawn` is not changed (so `overlap: "skip"` does not
   * wait for this one). Paused generators can be run too. Throws `TaskNotFoundError`, or
   * `InvalidStateError` for a task that is not a generator or has ended. Costs 1 read and 1 write.
   */
  async runScheduleNow(generatorId: string): Promise<RunScheduleNowResult> {
    assertValidId(generatorId);
    return this.schedules.runNow(generatorId);
  }

  /**
   * Pauses an open generator: it spawns nothing until {@link resumeSchedule}. Its queue position
   * is parked at 9999-01-01 (so no worker reads it as due) and its real next slot is kept in
   * `paused`. Returns false when it was paused already. Cancel and upsert still work on it.
   * Costs 1 read and 1 write (none written when paused already).
   */
  async pauseSchedule(generatorId: string): Promise<boolean> {
    assertValidId(generatorId);
    return this.schedules.pause(generatorId);
  }

  /**
   * Resumes a paused generator at the slot it stood at: if slots came due meanwhile, its
   * `catchUp` decides at the next spawn (`latest`: the newest, `all`: every one, `none`: none
   * once a later slot is due). Returns false when it was not paused. Costs 1 read and 1 write.
   */
  async resumeSchedule(generatorId: string): Promise<boolean> {
    assertValidId(generatorId);
    return this.schedules.resume(generatorId);
  }

  /**
   * Recurring generators (of any status until TTL removes the ended ones), by queue position:
   * next slot first, paused ones last. One query: 1 read per generator returned (at least 1).
   * Generators written before this existed are listed once they have spawned again.
   */
  async listSchedules(options: ListSchedulesOptions = {}): Promise<ScheduleInfo[]> {
    return this.schedules.list(options);
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
   * one); a running task's `ctx.signal` is aborted — in this process at once, in another within
   * about a second (the cancellation is posted to that process's inbox: one more read and write
   * here, and a listener read and a task read there), or at the latest at its next lease renewal.
   * Returns 1 if newly cancelled, 0 if it had ended or was cancelled already.
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

/** setTimeout's longest delay (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** How a kind's creates treat an existing task of the ID: its `throttle` or `debounce`, else null (a plain create). */
function creationPolicy(def: TaskDefinition): CreatePolicy | null {
  if (def.throttle) return { kind: 'throttle', windowMs: def.throttle.windowMs };
  if (def.debounce) return { kind: 'debounce', delayMs: def.debounce.delayMs, maxDelayMs: def.debounce.maxDelayMs ?? null };
  return null;
}

function assertIds(ids: readonly string[], method: string): void {
  if (!Array.isArray(ids)) throw new InvalidOptionsError(`${method}: ids must be an array`);
  ids.forEach((id) => assertValidId(id));
}

function assertKey(resourceKey: unknown): asserts resourceKey is string {
  if (typeof resourceKey !== 'string' || resourceKey === '') throw new InvalidOptionsError('resourceKey must be a non-empty string');
}
