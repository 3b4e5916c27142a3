import type { z } from 'zod';
import type { GroupHandler, GroupHandlerOptions, HandlerOptions, TaskHandler } from './handlers.js';
import type { OperationStats } from './store/op-stats.js';
import type { TaskDefinition } from './task-definition.js';
import type { DrainOptions, DrainResult } from './worker/drain.js';
import { managerParts, OnceTaskManagerBase } from './manager/base.js';
import type { ManagerParts } from './manager/setup.js';

export type { ListOptions, ListPage, QueueDepth } from './admin/task-reads.js';
export type { PauseInfo, PauseOptions, ResumeOptions } from './admin/pauses.js';
export type { LastSpawn, ListSchedulesOptions, RunScheduleNowResult, ScheduleInfo, UpsertScheduleOutcome, UpsertScheduleResult } from './admin/schedules.js';
export type { OnceTaskManagerOptions, CreateOptions, CreateOutcome, CreateResult, CreateManyOptions, CreateManyResult, StopOptions, WaitForOptions } from './manager-options.js';
import type { OnceTaskManagerOptions, CreateOptions, CreateResult, CreateManyOptions, CreateManyResult, StopOptions } from './manager-options.js';

/*
 * The public entry. Its parts: the composition root (./manager/setup.ts), creating
 * (./manager/creation.ts), the worker pool (./worker/pool.ts), and reading, waiting, pausing,
 * schedules and administration in the base class (./manager/base.ts).
 */

/**
 * The entry point: creates tasks, registers handlers, runs workers, and reads and administers
 * tasks — all within one environment of one collection.
 */
export class OnceTaskManager extends OnceTaskManagerBase {
  /** The environment this manager works in. */
  readonly env: string;
  /** The task collection's name. */
  readonly collection: string;
  /** This process's identity in leases. */
  readonly workerId: string;

  constructor(options: OnceTaskManagerOptions) {
    super(options);
    const { env, collection, workerId } = this.parts;
    this.env = env;
    this.collection = collection;
    this.workerId = workerId;
  }

  /** What this manager is made of (built by `setUpManager`). */
  private get parts(): ManagerParts {
    return managerParts(this);
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
    return this.parts.creation.create(def, data, options);
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
    return this.parts.creation.createMany(def, data, options);
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
    this.parts.pool.register(def, { mode: 'single', handler: handler as TaskHandler<z.output<S>>, onCancel: options?.onCancel }, options, 'handle');
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
    this.parts.pool.register(def, { mode: 'group', handler, onCancel: options?.onCancel }, options, 'handleGroup');
  }

  /** Starts a worker loop for every registered kind (and for kinds registered later). */
  start(): void {
    this.parts.pool.start();
  }

  /**
   * Serverless mode: starts the workers of `kinds` (default: every registered kind), runs due
   * tasks until none is left due or `maxMs` has passed, then stops (handing back what is still
   * running after `graceMs`) and resolves with what ran. For a Cloud Run job, a Cloud Scheduler
   * ping or a function triggered by a new task document; the manager must not be started.
   */
  async drain(options: DrainOptions = {}): Promise<DrainResult> {
    return this.parts.pool.drain(options, (graceMs) => this.stop({ graceMs }));
  }

  /**
   * Stops claiming, lets running handlers finish for up to `graceMs`, then aborts the rest and
   * releases their leases so another worker can take them at once. Resolves when every loop
   * and handler run has ended.
   */
  async stop(options: StopOptions = {}): Promise<void> {
    await this.parts.pool.stop(options);
  }

  /** Counts of the Firestore operations this manager caused (billed reads, writes, deletes). */
  stats(): OperationStats {
    return this.parts.store.ops.snapshot();
  }
}
