import { registerInternals } from '../testing/internals.js';
import type { z } from 'zod';
import { assertDefinition, type TaskAdmin } from '../admin/task-admin.js';
import type { ListOptions, ListPage, QueueDepth, TaskReads } from '../admin/task-reads.js';
import type { TaskWaiting } from '../admin/waiting.js';
import type { PauseInfo, PauseOptions, Pauses, ResumeOptions } from '../admin/pauses.js';
import type { ListSchedulesOptions, RunScheduleNowResult, ScheduleAdmin, ScheduleInfo, UpsertScheduleResult } from '../admin/schedules.js';
import type { Clock } from '../clock.js';
import { InvalidOptionsError } from '../errors.js';
import { assertKnownOptions } from '../known-options.js';
import type { OnceTaskManagerOptions, WaitForOptions } from '../manager-options.js';
import { LIMIT_OPTIONS } from '../options.js';
import type { RecurrenceOptions } from '../schedule/recurrence.js';
import type { TaskStore } from '../store/task-store.js';
import { assertValidId, kindOf, type TaskDefinition } from '../task-definition.js';
import { OPEN_STATUSES, type TaskInfo, type TaskStatus } from '../task-document.js';
import type { WorkerPool } from '../worker/pool.js';
import type { TaskCreation } from './creation.js';
import { setUpManager, type ManagerParts } from './setup.js';

/**
 * The half of {@link OnceTaskManager}'s API that works on stored tasks — reading, waiting,
 * pausing, schedules and administration — each method checking its arguments and delegating
 * to the part built for it (see {@link setUpManager}). OnceTaskManager adds creating and working.
 */

/**
 * Each manager's parts, for OnceTaskManager's own methods: a module map rather than a
 * `protected` member, so that no internal type appears in the public one.
 */
const partsByManager = new WeakMap<OnceTaskManagerBase, ManagerParts>();

/** The parts a manager was built of (for its subclass, OnceTaskManager). */
export function managerParts(manager: OnceTaskManagerBase): ManagerParts {
  const parts = partsByManager.get(manager);
  if (parts === undefined) throw new Error('oncetask: not a constructed OnceTaskManager');
  return parts;
}

/** Reading, waiting, pausing, schedules and administration of {@link OnceTaskManager}. */
export abstract class OnceTaskManagerBase {
  private readonly store: TaskStore;
  private readonly admin: TaskAdmin;
  private readonly reads: TaskReads;
  private readonly waiting: TaskWaiting;
  private readonly pauses: Pauses;
  private readonly schedules: ScheduleAdmin;
  /** For `upsertSchedule`, which prepares a generator as `create` would. */
  private readonly creation: TaskCreation;
  /** For the kinds with a handler here. */
  private readonly pool: WorkerPool;
  private readonly clock: Clock;

  /** Validates the options and builds the manager's parts (throws {@link InvalidOptionsError}). */
  protected constructor(options: OnceTaskManagerOptions) {
    const parts = setUpManager(options, { countByStatus: (kind) => this.countByStatus(kind), queueDepth: (kind) => this.queueDepth(kind) });
    partsByManager.set(this, parts);
    this.store = parts.store;
    this.admin = parts.admin;
    this.reads = parts.reads;
    this.waiting = parts.waiting;
    this.pauses = parts.pauses;
    this.schedules = parts.schedules;
    this.creation = parts.creation;
    this.pool = parts.pool;
    this.clock = parts.clock;
    const { pool, store } = parts;
    registerInternals(this, { store, started: () => pool.isStarted, everStarted: () => pool.wasStarted, workers: () => pool.probes(), wakeAll: () => pool.wakeAll(), crash: () => pool.crash() });
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
    const names = kinds === undefined ? this.pool.kinds() : kinds.map((k) => kindOf(k, 'failedKinds'));
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
    return this.waiting.waitFor(id, options);
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
    return this.waiting.watch(id, onChange, onError);
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
    const prepared = this.creation.prepare(def, data, now, { recurrence, now, where: 'upsertSchedule' });
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
  }}

function assertIds(ids: readonly string[], method: string): void {
  if (!Array.isArray(ids)) throw new InvalidOptionsError(`${method}: ids must be an array`);
  ids.forEach((id) => assertValidId(id));
}

function assertKey(resourceKey: unknown): asserts resourceKey is string {
  if (typeof resourceKey !== 'string' || resourceKey === '') throw new InvalidOptionsError('resourceKey must be a non-empty string');
}
