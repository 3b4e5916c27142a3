import type { OnceTaskManager } from './manager.js';
import type { Firestore, Transaction, WriteBatch } from '@google-cloud/firestore';
import type { Clock } from './clock.js';
import type { OnceTaskLogger } from './logger.js';
import type { RecurrenceOptions } from './schedule/recurrence.js';
import type { TaskHooks } from './worker/hooks.js';
import type { StorageBackend } from './store/backend.js';
import type { TaskDefinitionInput } from './task-definition.js';

/** The option and result types of {@link OnceTaskManager}'s own methods, each option documented where it is defined. */

/** Options of {@link OnceTaskManager}. */
export interface OnceTaskManagerOptions {
  /** A Firestore instance: `new Firestore()` or firebase-admin's `getFirestore()`. Required unless `backend` is given. */
  firestore?: Firestore;
  /**
   * Instead of `firestore`: `memoryBackend()`, an in-process database with the same semantics
   * (for tests, development and single-process use; see `oncetask/testing`). Managers given the
   * same backend share its tasks like processes sharing Firestore.
   */
  backend?: StorageBackend;
  /** Environment: tasks, IDs and workers are isolated per environment. Default `ONCE_TASK_ENV`, else `"default"`. */
  env?: string;
  /** Collection holding the tasks. Default `"onceTasks"` (the shipped indexes and rules name it). */
  collection?: string;
  /**
   * Shards of the queue (1-30; default 1: unsharded). A collection with an indexed, steadily
   * increasing field takes about 500 writes/s; with N shards every composite index leads with a
   * `shard` field, which lifts that to about 500×N (deploy `firestore.indexes.sharded.json`).
   * Every process of an environment must use the same N. See the README's "Sharded queue" for
   * changing N on a collection that holds open tasks, and docs/capacity.md for sizing.
   */
  shards?: number;
  /** pino-compatible logger. Default: pino at `ONCE_TASK_LOG_LEVEL` (default `info`). */
  logger?: OnceTaskLogger;
  /**
   * How long succeeded and cancelled tasks are kept (`expireAt`, for the TTL policy). Default 30
   * days. `0` deletes a task in the very commit a worker ends it with (BullMQ's
   * `removeOnComplete`): nothing is left for the TTL policy or for queries to scan, but a later
   * `create` with the same ID creates the task again — idempotency then lasts only while the task
   * is open. Terminal writes made without a worker (a generator's end, cancelling a task nobody
   * runs) get `expireAt` = now instead.
   */
  retentionMs?: number;
  /**
   * How long failed tasks are kept; `0` deletes them when they fail for good. Default:
   * `retentionMs`, or 30 days when `retentionMs` is 0 (failures usually deserve a look).
   */
  failedRetentionMs?: number;
  /**
   * Whether idle workers listen (`onSnapshot`) to the head of their queue, so work created,
   * retried or released in any process wakes them within milliseconds and an idle worker costs
   * next to no reads. With false, idle workers poll every `pollIntervalMs`. Default `'auto'`:
   * listen, except on the Firestore emulator (`FIRESTORE_EMULATOR_HOST` set), which re-runs every
   * listener's query over the whole collection on every commit — there `'auto'` polls, every
   * 250 ms unless `pollIntervalMs` says otherwise. Pass `true` to listen on the emulator too.
   */
  listen?: boolean | 'auto';
  /**
   * With listening workers, one process per kind listens at a time: it holds the kind's
   * listener role, a lease of this many ms on a document in `<collection>_keys`, renewed every
   * third of it. So a new task costs one listener read however many processes run the kind.
   * The others watch the role document only (a read per renewal) and take the role over when its
   * holder stops, is saturated for 250 ms (every slot in use, work waiting), or dies — then
   * after this lease, which bounds how long new work and expired leases wait after a holder is
   * killed. `0`: no role, every idle process listens (and reads every head change). Default
   * 30000 (at least 1000 when not 0).
   */
  listenerRoleMs?: number;
  /**
   * Without a listener: the longest idle sleep between looks at the queue. With one: how often
   * a worker re-checks while due tasks wait behind resource keys busy in other processes.
   * Default 1000 ms.
   */
  pollIntervalMs?: number;
  /** With a listener: the longest idle sleep, a safety sweep for anything missed. Default 5 minutes. */
  sweepIntervalMs?: number;
  /** This process's identity in leases. Default `host:pid:random`. */
  workerId?: string;
  /**
   * The current time in ms since the epoch, like `Date.now` (the default). Every due time,
   * stored lease expiry and schedule is read from it; tests use it to skew one worker's clock.
   */
  clock?: Clock;
  /**
   * The most two processes' clocks may differ, in ms. Default 2000. A lease (and a key lock)
   * counts as expired for another worker only this long after its stored expiry, so workers
   * whose clocks differ by up to this much never run one task at once. Keep clocks NTP-synced.
   */
  maxClockSkewMs?: number;
  /**
   * Deadline of one Firestore call, in ms. Default 20 s. The SDK would otherwise retry some
   * calls for up to 10 minutes; a call past its deadline fails with `BackendTimeoutError` (its
   * outcome unknown). Lease writes are further bounded by the lease's own deadline.
   */
  callTimeoutMs?: number;
  /**
   * Coalescing of single-task writes (claims, renewals and outcomes of tasks without a resource
   * key) sent close together into one round trip of independent conditional writes, each still
   * fenced on its own. Default `{ windowMs: 5, maxWrites: 100 }`: with no flush in flight a write
   * goes out at once (with whatever else was written in the same event-loop turn); while one is
   * in flight, new writes wait for it at most `windowMs`. `false` (or `windowMs: 0`) sends each
   * write on its own.
   */
  writeBatching?: false | { windowMs?: number; maxWrites?: number };
  /**
   * Called around attempts: `beforeRun(task, ctx)` before each handler call (its throw fails the
   * attempt), `onTaskFailed(task, error, { final, retryAt })` after a failure was recorded, and
   * `onTaskSettled(task, outcome)` after any outcome was recorded. An error reporter (Sentry,
   * Cloud Error Reporting) plugs in here; the recorded error keeps its stack trace. A hook that
   * throws is logged and ignored; none is waited for longer than `hookTimeoutMs`.
   */
  hooks?: TaskHooks;
  /**
   * How a worker's `process <kind>` span relates to the `send <kind>` span of the create whose
   * context is stored on the task: `'link'` (default; a new trace per attempt, linked to the
   * producer's, as the messaging conventions advise) or `'child'` (the attempt joins the
   * producer's trace). OpenTelemetry is used through `@opentelemetry/api`: without an SDK
   * registered by the app nothing is recorded.
   */
  traceParenting?: 'link' | 'child';
  /**
   * Opt-in OpenTelemetry gauges of the queue, refreshed this often while started (ms, at least
   * 1000; default 0: off): `oncetask.queue.tasks` by kind and status and
   * `oncetask.queue.oldest_due_age` (s) by kind, for the kinds this manager has handlers for.
   * Each refresh costs per kind 6 + 4 COUNT aggregations and one `limit(1)` query (about 11
   * reads for a queue under 1000 tasks per status), never a read of the backlog.
   */
  queueMetricsIntervalMs?: number;
  /** Longest wait for one hook call, in ms (a `beforeRun` past it fails the attempt with `HOOK_TIMEOUT`). Default 5000. */
  hookTimeoutMs?: number;
}

/** Options of {@link OnceTaskManager.create}. */
export interface CreateOptions {
  /** Not before this time. Default: now. */
  waitUntil?: Date;
  /** Create inside this transaction (the task is read, so call before the transaction's writes). */
  transaction?: Transaction;
  /** Create with this batch (checked for existence now; committed with the caller's writes). */
  batch?: WriteBatch;
  /**
   * Make this task a generator that spawns one occurrence task per slot of a schedule — an RFC
   * 5545 rule (`rrule`), a cron expression (`cron`) or a fixed interval (`every`) — with IDs
   * `{id}_occ_{slot in UTC ISO-8601}`, each run by the kind's handler. See also `upsertSchedule`.
   */
  recurrence?: RecurrenceOptions;
  /**
   * Labels of the task (`key → value`, at most 10 in all), merged over the definition's
   * `labels(data)` (a key given here wins). Keys: a letter, then up to 62 letters, digits,
   * `_ - .`; values: 1-200 characters. A bad label throws `InvalidOptionsError` and nothing is
   * written. `list({ labels })` finds tasks by them. No extra Firestore cost per create (the
   * labels ride in the task document; the label index adds one entry per label).
   */
  labels?: Record<string, string>;
  /**
   * Priority, an integer 0-1000 (default: the definition's `priority(data)`, else 0); wins over
   * the definition's. Among due tasks a higher priority runs sooner (see `src/priority.ts`).
   */
  priority?: number;
}

/**
 * What a create did, for a task ID:
 * - `created`: a new task was written (or, for a `throttle` / `debounce` kind, a finished task
 *   of the ID was replaced by a new one: attempts, errors and result reset);
 * - `exists`: a task with the ID exists and was left as it is;
 * - `throttled`: a `throttle` kind's task of the ID was created less than `windowMs` ago: no-op;
 * - `debounced`: a `debounce` kind's pending task (not started) got the new payload and its due
 *   time moved (see {@link TaskDefinitionInput.debounce}).
 */
export type CreateOutcome = 'created' | 'exists' | 'throttled' | 'debounced';

/** Result of {@link OnceTaskManager.create}. */
export interface CreateResult {
  id: string;
  /** True when a new task was written (`outcome === 'created'`). */
  created: boolean;
  /** What happened; see {@link CreateOutcome}. */
  outcome: CreateOutcome;
}

/** Options of {@link OnceTaskManager.createMany}. */
export interface CreateManyOptions {
  /** Not before this time, for every task. Default: now. */
  waitUntil?: Date;
  /** Labels of every task, merged over the definition's `labels(data)` (see {@link CreateOptions.labels}). */
  labels?: Record<string, string>;
  /** Priority of every task, 0-1000; wins over the definition's `priority(data)`. */
  priority?: number;
}

/** Result of {@link OnceTaskManager.createMany}. */
export interface CreateManyResult {
  /** IDs in input order. */
  ids: string[];
  /** How many were new (outcome `created`, replacements of finished tasks included). */
  created: number;
  /** How many were no-ops of a `throttle` kind (created within its window). Always 0 for other kinds. */
  throttled: number;
  /** How many moved a pending task of a `debounce` kind. Always 0 for other kinds. */
  debounced: number;
}

/** Options of {@link OnceTaskManager.waitFor}. */
export interface WaitForOptions {
  /** Give up after this many ms with a `WaitTimeoutError` (positive). Default: no limit. */
  timeoutMs?: number;
  /** Stop waiting when this signal aborts; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of {@link OnceTaskManager.stop}. */
export interface StopOptions {
  /** How long running handlers may take to finish before they are aborted and released. Default 5000 ms. */
  graceMs?: number;
}
