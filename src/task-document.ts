import { z } from 'zod';
import type { SeriesCursor, StoredRecurrence } from './schedule/recurrence.js';
import { fromFirestoreValue, isTimestampLike } from './values.js';
import { queuePosition } from './priority.js';
import { labelPairs } from './labels.js';

/**
 * The stored shape of a task document and its conversion to the public {@link TaskInfo}.
 * Only the store reads and writes documents; this module says what a document must look like
 * so a malformed one is reported instead of crashing a worker.
 */

/**
 * Where a task is in its life. Stored, so tasks can be listed by state. `cancelling` means
 * cancellation was requested and its `onCancel` handler has yet to run.
 */
export type TaskStatus = 'pending' | 'running' | 'cancelling' | 'succeeded' | 'failed' | 'cancelled';

/** Every status, in life-cycle order. */
export const TASK_STATUSES: readonly TaskStatus[] = ['pending', 'running', 'cancelling', 'succeeded', 'failed', 'cancelled'];
/** Statuses a worker may claim from (a `running` task only once its lease has expired). */
export const CLAIMABLE_STATUSES: readonly TaskStatus[] = ['pending', 'running', 'cancelling'];
/** Statuses of tasks that have not ended: what cancellation can still stop. */
export const OPEN_STATUSES: readonly TaskStatus[] = ['pending', 'running', 'cancelling'];
/** Statuses after which nothing more happens to a task unless an admin resets it. */
export const TERMINAL_STATUSES: readonly TaskStatus[] = ['succeeded', 'failed', 'cancelled'];

/** How many failures a task keeps in `errors`; `errorCount` counts them all. */
export const MAX_RECORDED_ERRORS = 20;

/** One failed attempt. */
export interface TaskErrorRecord {
  /** When the attempt failed. */
  at: Date;
  /** Which attempt (1-based) failed. */
  attempt: number;
  /** The error's message. */
  message: string;
  /** The error's `code` when it had one (e.g. `HANDLER_TIMEOUT`, or a handler's own string code). */
  code: string | null;
  /** The error's stack trace, capped at 4000 characters (null when it had none, or was recorded before stacks were). */
  stack: string | null;
}

/** The live lease of a running task. */
export interface TaskLease {
  /** Worker that holds it (`host:pid:random`). */
  workerId: string;
  /** When it runs out unless renewed. */
  expiresAt: Date;
}

/** A task as the read API returns it. `T` is the payload type. */
export interface TaskInfo<T = unknown> {
  /** The idempotent ID (unique within the environment). */
  id: string;
  kind: string;
  env: string;
  status: TaskStatus;
  /** The stored payload, with Timestamps turned back into Dates. */
  data: T;
  resourceKey: string | null;
  /**
   * The queue position: when the task is due. While running (or cancelling under a lease) it is
   * the lease expiry; a finished task keeps the value it last had.
   */
  waitUntil: Date;
  createdAt: Date;
  updatedAt: Date;
  /** Attempts started so far. */
  attempts: number;
  /** Whether cancellation was requested (a running handler's signal is then aborted). */
  cancelRequested: boolean;
  /** Attempts of the `onCancel` handler so far (counted apart from `attempts`). */
  cancelAttempts: number;
  /** Failures so far (all of them; `errors` keeps the last 20). */
  errorCount: number;
  errors: TaskErrorRecord[];
  /** What the handler returned, once succeeded. */
  result: unknown;
  /** When it became terminal. */
  doneAt: Date | null;
  /** When the TTL policy may delete it (terminal tasks only). */
  expireAt: Date | null;
  lease: TaskLease | null;
  /** For a recurring generator: its schedule (times are wall times in `tzid`). */
  recurrence: StoredRecurrence | null;
  /** For an occurrence spawned by a generator: which one, and its slot. */
  occurrence: TaskOccurrence | null;
  /** Priority: higher runs sooner among due tasks (0 by default; see the README's "Priorities"). */
  priority: number;
  /**
   * When the task is due. Equal to `waitUntil` unless priority moved the queue position
   * ahead of the due time; the task never starts before `dueAt`.
   */
  dueAt: Date;
  /** What the current (or last) attempt reported with `ctx.setProgress`: a number in [0, 1], an object, or null. */
  progress: TaskProgress | null;
  /** When the current (or last) attempt started (was claimed). */
  startedAt: Date | null;
  /** How long the last finished attempt took, from its claim to its outcome, in ms. */
  durationMs: number | null;
  /** The task's labels (`key → value`). */
  labels: Record<string, string>;
}

/** A progress report: a fraction in [0, 1] or a small JSON object (at most 4 KiB as JSON). */
export type TaskProgress = number | { [key: string]: unknown };

/** Where an occurrence task comes from. */
export interface TaskOccurrence {
  /** ID of the generator that spawned it. */
  generatorId: string;
  /** The slot (UTC instant) it was spawned for. */
  slot: Date;
}

const timestamp = z.custom<Date>((v) => isTimestampLike(v) || v instanceof Date, 'expected a Timestamp').transform(
  (v) => (v instanceof Date ? v : (v as unknown as { toDate(): Date }).toDate()),
);

/**
 * A stored count. A Firestore instance created with `useBigInt: true` reads integers as
 * bigints; accept those too rather than call every task malformed.
 */
const counter = z
  .union([z.number(), z.bigint()])
  .transform((v) => Number(v))
  .pipe(z.number().int().nonnegative());

/** The full stored lease, with its fencing token. Internal: the token never leaves the library. */
const storedLease = z.object({ token: z.string().min(1), workerId: z.string(), expiresAt: timestamp });

const storedError = z.object({
  at: timestamp,
  attempt: counter,
  message: z.string(),
  code: z.string().nullable().optional().transform((c) => c ?? null),
  stack: z.string().nullable().optional().transform((s) => s ?? null),
});

/** Schema of a stored task document, used to detect malformed documents. */
export const storedTaskSchema = z.object({
  id: z.string().min(1),
  kind: z.string().min(1),
  env: z.string().min(1),
  status: z.enum(TASK_STATUSES as [TaskStatus, ...TaskStatus[]]),
  data: z.unknown(),
  resourceKey: z.string().nullable(),
  waitUntil: timestamp,
  createdAt: timestamp,
  updatedAt: timestamp,
  /** Creation order within a process (microseconds since the epoch, made unique): tie-break after waitUntil. */
  seq: z.union([z.number(), z.bigint()]).transform((v) => Number(v)),
  attempts: counter,
  cancelRequested: z.boolean().default(false),
  cancelAttempts: counter.default(0),
  errorCount: counter,
  errors: z.array(storedError),
  result: z.unknown().optional(),
  doneAt: timestamp.nullable(),
  expireAt: timestamp.nullable(),
  lease: storedLease.nullable(),
  recurrence: z
    .object({
      rrule: z.string(),
      dtstart: z.string(),
      tzid: z.string(),
      exdates: z.array(z.string()),
      catchUp: z.enum(['latest', 'all', 'none']),
      /** What the schedule was given as (for display); absent on generators written before cron and every existed. */
      cron: z.string().nullable().default(null),
      every: z.union([z.string(), z.number(), z.bigint().transform((v) => Number(v))]).nullable().default(null),
      overlap: z.enum(['allow', 'skip']).default('allow'),
    })
    .nullable()
    .default(null),
  series: z.object({ wall: z.string(), index: counter }).nullable().default(null),
  /** A generator's newest spawned occurrence, written by the spawn commit itself (null: none yet, or written before this field existed). */
  lastSpawn: z.object({ slot: timestamp, at: timestamp, occurrenceId: z.string() }).nullable().default(null),
  /** A paused generator: when it was paused and the due time of its next slot (its `waitUntil` is parked far ahead meanwhile). */
  paused: z.object({ at: timestamp, dueAt: timestamp }).nullable().default(null),
  /** `true` on a generator marked for `listSchedules` (see GENERATOR_MARKER); absent elsewhere, and on generators older than the marker until their next spawn. */
  generator: z.boolean().nullable().default(null),
  generatorId: z.string().nullable().default(null),
  slot: timestamp.nullable().default(null),
  /** Queue shard (see `shards`); absent on tasks written before shards existed. */
  shard: counter.nullable().default(null),
  /** Trace context of the create's `send` span (W3C `traceparent`), when tracing was on. */
  traceContext: z.record(z.string(), z.string()).nullable().default(null),
  /** Priority (see `src/priority.ts`): 0 unless given; higher runs sooner among due tasks. */
  priority: counter.default(0),
  /**
   * The real due time when priority moved the queue position (`waitUntil`) ahead of it: the
   * task is not claimed before this. Null when `waitUntil` is the due time itself.
   */
  notBefore: timestamp.nullable().default(null),
  /** What the running (or last) attempt reported with `ctx.setProgress` (null: nothing yet). */
  progress: z.unknown().optional().transform((v) => (v === undefined ? null : v)),
  /** When the current (or last) attempt was claimed. */
  startedAt: timestamp.nullable().default(null),
  /** How long the last finished attempt took, claim to outcome (ms). */
  durationMs: counter.nullable().default(null),
  /** Labels (at most 10; see `src/labels.ts`); `labelPairs` holds them as `key=value` for the label query. */
  labels: z.record(z.string(), z.string()).default({}),
  /**
   * A `debounce` kind's task: when the first of the creates it absorbed was made (its due time
   * is never moved past this plus `maxDelayMs`). Null for other kinds.
   */
  debounceFirstAt: timestamp.nullable().default(null),
});

/** A decoded stored task. Timestamps are Dates; `data` is still as stored. */
export type StoredTask = z.output<typeof storedTaskSchema>;

/** Result of decoding a document: the task, or why it is malformed. */
export type DecodeResult = { ok: true; task: StoredTask } | { ok: false; reason: string };

/** Checks a raw document's fields against the stored shape. */
export function decodeStoredTask(raw: unknown): DecodeResult {
  const parsed = storedTaskSchema.safeParse(raw);
  if (parsed.success) return { ok: true, task: parsed.data };
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? `field "${issue.path.map(String).join('.')}"` : 'document';
  return { ok: false, reason: `${where}: ${issue?.message ?? 'invalid'}` };
}

/** The public view of a stored task (drops the fencing token). */
export function toTaskInfo<T = unknown>(task: StoredTask): TaskInfo<T> {
  return {
    id: task.id,
    kind: task.kind,
    env: task.env,
    status: task.status,
    data: fromFirestoreValue(task.data) as T,
    resourceKey: task.resourceKey,
    waitUntil: task.waitUntil,
    createdAt: task.createdAt,
    updatedAt: task.updatedAt,
    attempts: task.attempts,
    cancelRequested: task.cancelRequested,
    cancelAttempts: task.cancelAttempts,
    errorCount: task.errorCount,
    errors: task.errors,
    result: fromFirestoreValue(task.result ?? null),
    doneAt: task.doneAt,
    expireAt: task.expireAt,
    lease: task.lease ? { workerId: task.lease.workerId, expiresAt: task.lease.expiresAt } : null,
    recurrence: task.recurrence,
    occurrence: task.generatorId !== null && task.slot !== null ? { generatorId: task.generatorId, slot: task.slot } : null,
    priority: task.priority,
    dueAt: task.notBefore ?? task.waitUntil,
    progress: task.progress === null ? null : (fromFirestoreValue(task.progress) as TaskProgress),
    startedAt: task.startedAt,
    durationMs: task.durationMs,
    labels: task.labels,
  };
}

/** Field that marks a generator (`true`; absent on other tasks), indexed for `listSchedules`. */
export const GENERATOR_MARKER = 'generator';

/** What a new task document is made of. */
export interface NewTask {
  id: string;
  kind: string;
  env: string;
  /** The payload, already encoded for Firestore. */
  data: unknown;
  resourceKey: string | null;
  waitUntil: Date;
  recurrence?: { recurrence: StoredRecurrence; series: SeriesCursor };
  occurrence?: TaskOccurrence;
  /** Creation time (the manager's clock). Default: now. */
  now?: Date;
  /** Trace context of the create's `send` span, if tracing is on. */
  traceContext?: Record<string, string> | null;
  /** Priority (0-1000, default 0). */
  priority?: number;
  /** Labels, already validated. */
  labels?: Record<string, string>;
}

/** The fields of a new pending task. */
export function newTaskFields(t: NewTask): Record<string, unknown> {
  const now = t.now ?? new Date();
  const priority = t.priority ?? 0;
  // A generator sits in the queue at its slot: its priority is for its occurrences, which inherit it.
  const position = t.recurrence ? { waitUntil: t.waitUntil, notBefore: null } : queuePosition(t.waitUntil, priority, now.getTime());
  const fields: Omit<z.input<typeof storedTaskSchema>, 'waitUntil' | 'createdAt' | 'updatedAt'> & Record<string, unknown> = {
    id: t.id,
    kind: t.kind,
    env: t.env,
    status: 'pending',
    data: t.data,
    resourceKey: t.resourceKey,
    waitUntil: position.waitUntil,
    notBefore: position.notBefore,
    priority,
    createdAt: now,
    updatedAt: now,
    seq: nextSeq(),
    attempts: 0,
    cancelRequested: false,
    cancelAttempts: 0,
    errorCount: 0,
    errors: [],
    result: null,
    doneAt: null,
    expireAt: null,
    lease: null,
    recurrence: t.recurrence?.recurrence ?? null,
    series: t.recurrence?.series ?? null,
    generatorId: t.occurrence?.generatorId ?? null,
    slot: t.occurrence?.slot ?? null,
    traceContext: t.traceContext ?? null,
    progress: null,
    startedAt: null,
    durationMs: null,
    labels: t.labels ?? {},
    labelPairs: labelPairs(t.labels ?? {}),
    // Indexed marker of generators, for listSchedules (a spawn adds it to generators written before it existed).
    ...(t.recurrence ? { [GENERATOR_MARKER]: true } : {}),
  };
  return fields;
}

/** Appends a failure, keeping the last {@link MAX_RECORDED_ERRORS}. */
export function appendError(errors: readonly TaskErrorRecord[], record: TaskErrorRecord): TaskErrorRecord[] {
  return [...errors, record].slice(-MAX_RECORDED_ERRORS);
}

let lastSeq = 0;

/**
 * A creation sequence number: microseconds since the epoch, strictly increasing within the
 * process, so tasks created in one call (same `waitUntil`) keep their order.
 */
export function nextSeq(): number {
  lastSeq = Math.max(lastSeq + 1, Date.now() * 1000);
  return lastSeq;
}
