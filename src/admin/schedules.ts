import { isDeepStrictEqual } from 'node:util';
import type { Clock } from '../clock.js';
import { InvalidOptionsError, InvalidStateError, MalformedTaskError } from '../errors.js';
import { assertKnownOptions, optionNames } from '../known-options.js';
import { prepareRecurrence, type CatchUp, type EveryRecurrenceOptions, type Overlap, type RecurrenceOptions, type StoredRecurrence } from '../schedule/recurrence.js';
import { everySeconds } from '../schedule/every.js';
import { PAUSED_UNTIL } from '../schedule/spawner.js';
import type { TaskFields, TaskStore } from '../store/task-store.js';
import { kindOf, type TaskDefinition } from '../task-definition.js';
import { GENERATOR_MARKER, newTaskFields, OPEN_STATUSES, type StoredTask, type TaskStatus } from '../task-document.js';
import { fromFirestoreValue } from '../values.js';

/**
 * Schedules as things to manage: upsert a generator in place, run it once now, pause and
 * resume it, and list generators. Each change is an optimistic read-decide-write of the
 * generator document ({@link TaskStore.mutate}), so it never races a spawn into a duplicate:
 * a spawn and a change of one generator are both conditional on the version they read, and
 * the loser reads again.
 */

/** The newest occurrence a generator spawned, written by the spawn commit itself. */
export interface LastSpawn {
  /** The slot (UTC instant) it was spawned for. */
  slot: Date;
  /** When the spawn committed (the worker's clock). */
  at: Date;
  /** The occurrence's task ID. */
  occurrenceId: string;
}

/** A recurring generator as {@link OnceTaskManager.listSchedules} shows it. */
export interface ScheduleInfo {
  /** The generator's task ID. */
  id: string;
  /** Its kind, whose workers spawn it and run its occurrences. */
  kind: string;
  /** `pending` while it runs on; `succeeded` once COUNT or UNTIL ended it, `cancelled`, or `failed` (unreadable schedule). */
  status: TaskStatus;
  /** The RRULE its slots come from (for a `cron` or `every` schedule, the converted one). */
  rule: string;
  /** The cron expression it was given, or null. */
  cron: string | null;
  /** The interval it was given (`"15m"` or ms), or null. */
  every: string | number | null;
  /** IANA time zone the rule is read in (`UTC` for `every`). */
  tzid: string;
  /** The slot it spawns next (while paused: the one it stands at); null once it ended or is being cancelled. */
  nextSlot: Date | null;
  /** Its newest spawned occurrence; null before its first spawn (or spawned before this was recorded). */
  lastSpawn: LastSpawn | null;
  /** Whether it is paused (see `pauseSchedule`). */
  paused: boolean;
  /** When it was paused, or null. */
  pausedAt: Date | null;
  /** Whether a slot is spawned while the previous occurrence is open (`allow`) or skipped (`skip`). */
  overlap: Overlap;
  /** What it does about slots missed while no worker ran (or while paused). */
  catchUp: CatchUp;
}

/** Options of {@link OnceTaskManager.listSchedules}. */
export interface ListSchedulesOptions {
  /** Only this kind (a definition or its name). */
  kind?: TaskDefinition | string;
  /** Most generators returned, 1-1000. Default 100. */
  limit?: number;
}

/** What {@link OnceTaskManager.upsertSchedule} did. */
export type UpsertScheduleOutcome = 'created' | 'updated' | 'unchanged';

/** Result of {@link OnceTaskManager.upsertSchedule}. */
export interface UpsertScheduleResult {
  /** The generator's task ID. */
  id: string;
  /**
   * `created`: a new generator was written (or an ended one replaced); `updated`: an open
   * generator's rule, payload, key, labels or priority changed in place; `unchanged`: it was
   * as given already.
   */
  outcome: UpsertScheduleOutcome;
}

/** Result of {@link OnceTaskManager.runScheduleNow}. */
export interface RunScheduleNowResult {
  /** The extra occurrence's task ID: `{generatorId}_now_{ISO instant}`. */
  id: string;
}

const LIST_SCHEDULES_OPTIONS = optionNames<ListSchedulesOptions>()(['kind', 'limit']);

/** What the schedule administration needs of the manager. */
export interface ScheduleHost {
  /** Wakes this process's workers of a kind (a task of it became due). */
  wake(kind: string): void;
  /** Throws the right error for an ID that does not exist here (not found, or in another environment). */
  missing(id: string): Promise<never>;
}

export class ScheduleAdmin {
  constructor(
    private readonly store: TaskStore,
    private readonly clock: Clock,
    private readonly host: ScheduleHost,
  ) {}

  /**
   * Creates the generator `prepared` describes, or brings an existing one to it. `prepared` is a
   * generator's new-task fields as `create` makes them (payload validated, first slot found);
   * `recurrence` its options, re-planned here from now when an open generator's rule changes.
   */
  async upsert(prepared: { id: string; fields: TaskFields }, recurrence: RecurrenceOptions): Promise<UpsertScheduleResult> {
    const { id, fields } = prepared;
    const kind = fields.kind as string;
    for (let attempt = 0; attempt < 10; attempt++) {
      let outcome: UpsertScheduleOutcome = 'updated';
      const r = await this.store.mutate(id, (task) => {
        const decided = this.decide(id, task, fields, recurrence);
        if (decided === null) return null;
        outcome = decided.outcome;
        return decided.fields;
      });
      if (r.outcome === 'missing') {
        // A new generator, written as `create` would; someone else's create in between: update that one.
        if (await this.store.create(id, fields)) {
          this.host.wake(kind);
          return { id, outcome: 'created' };
        }
        continue;
      }
      if (r.outcome === 'unchanged') return { id, outcome: 'unchanged' };
      this.host.wake(kind);
      return { id, outcome };
    }
    throw new Error(`upsertSchedule: generator "${id}" kept appearing and disappearing while being written`);
  }

  /** What an upsert writes over an existing task: a fresh generator, an update in place, or nothing. */
  private decide(id: string, task: StoredTask, fields: TaskFields, recurrence: RecurrenceOptions): { outcome: UpsertScheduleOutcome; fields: TaskFields } | null {
    if (task.kind !== fields.kind) throw new InvalidStateError(`upsertSchedule: task "${id}" is of kind "${task.kind}", not "${String(fields.kind)}"`);
    if (task.recurrence === null) throw new InvalidStateError(`upsertSchedule: task "${id}" exists and is not a recurring generator`);
    const now = new Date(this.clock());
    const after = task.lastSpawn?.slot ?? null;
    const shard = this.store.shards.forTask(this.store.docId(id), (fields.resourceKey as string | null) ?? null);
    if (!isOpen(task)) {
      // Ended (or being cancelled): a fresh generator in its place, after what the old one spawned.
      const schedule = prepareRecurrence(recurrence, { now, after });
      return {
        outcome: 'created',
        fields: { ...fields, createdAt: now, updatedAt: now, waitUntil: schedule.at, notBefore: null, recurrence: schedule.recurrence, series: schedule.cursor, paused: null, shard },
      };
    }
    const given = prepareRecurrence(recurrence, { now });
    const sameRule = sameSchedule(task.recurrence, given.recurrence, recurrence);
    const sameData =
      isDeepStrictEqual(fromFirestoreValue(task.data), fromFirestoreValue(fields.data)) &&
      task.resourceKey === fields.resourceKey &&
      task.priority === fields.priority &&
      isDeepStrictEqual(task.labels, fields.labels);
    if (sameRule && sameData && task.generator === true) return null;
    const update: TaskFields = {
      data: fields.data,
      resourceKey: fields.resourceKey,
      shard,
      priority: fields.priority,
      labels: fields.labels,
      labelPairs: fields.labelPairs,
      [GENERATOR_MARKER]: true,
      updatedAt: now,
    };
    if (!sameRule) {
      // The new rule from now on, strictly after the last spawned slot: no slot twice.
      const next = prepareRecurrence(recurrence, { now, notBefore: now, after });
      Object.assign(update, { recurrence: next.recurrence, series: next.cursor });
      if (task.paused !== null) update.paused = { at: task.paused.at, dueAt: next.at };
      else Object.assign(update, { waitUntil: next.at, notBefore: null });
    }
    return { outcome: sameRule && sameData ? 'unchanged' : 'updated', fields: update };
  }

  /** Creates one extra occurrence of an open generator, due now; the generator does not move. */
  async runNow(generatorId: string): Promise<RunScheduleNowResult> {
    const [found] = await this.store.getMany([generatorId]);
    if (!found) return this.host.missing(generatorId);
    if (!found.ok) throw new MalformedTaskError(this.store.docId(generatorId), found.reason);
    const generator = found.task;
    assertOpenGenerator(generator, 'runScheduleNow');
    const now = new Date(this.clock());
    const id = `${generatorId}_now_${now.toISOString()}`;
    const fields = newTaskFields({
      id,
      kind: generator.kind,
      env: generator.env,
      data: generator.data,
      resourceKey: generator.resourceKey,
      waitUntil: now,
      now,
      occurrence: { generatorId, slot: now },
      priority: generator.priority,
      labels: generator.labels,
    });
    if (await this.store.create(id, fields)) this.host.wake(generator.kind);
    return { id };
  }

  /** Parks an open generator: true when it was running on, false when it was paused already. */
  async pause(generatorId: string): Promise<boolean> {
    const r = await this.store.mutate(generatorId, (task) => {
      assertOpenGenerator(task, 'pauseSchedule');
      if (task.paused !== null) return null;
      const now = new Date(this.clock());
      return { paused: { at: now, dueAt: task.notBefore ?? task.waitUntil }, waitUntil: PAUSED_UNTIL, notBefore: null, [GENERATOR_MARKER]: true, updatedAt: now };
    });
    if (r.outcome === 'missing') return this.host.missing(generatorId);
    return r.outcome === 'updated';
  }

  /** Puts a paused generator back at its slot (catch-up decides about what it missed): true when it was paused. */
  async resume(generatorId: string): Promise<boolean> {
    const r = await this.store.mutate(generatorId, (task) => {
      assertOpenGenerator(task, 'resumeSchedule');
      if (task.paused === null) return null;
      return { paused: null, waitUntil: task.paused.dueAt, notBefore: null, [GENERATOR_MARKER]: true, updatedAt: new Date(this.clock()) };
    });
    if (r.outcome === 'missing') return this.host.missing(generatorId);
    if (r.outcome === 'updated') this.host.wake(r.task.kind);
    return r.outcome === 'updated';
  }

  /** Generators by queue position (next slot first, paused ones last). */
  async list(options: ListSchedulesOptions): Promise<ScheduleInfo[]> {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionsError('listSchedules: expected an options object');
    assertKnownOptions(options, LIST_SCHEDULES_OPTIONS, 'listSchedules');
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new InvalidOptionsError('listSchedules: option "limit" must be an integer from 1 to 1000');
    const kind = options.kind === undefined ? null : kindOf(options.kind, 'listSchedules');
    const { tasks } = await this.store.listing.listSchedules(kind, limit);
    return tasks.filter((t) => t.task.recurrence !== null).map((t) => toScheduleInfo(t.task));
  }
}

/** Open and not being cancelled: a generator that still spawns (or would, unpaused). */
function isOpen(task: StoredTask): boolean {
  return OPEN_STATUSES.includes(task.status) && !task.cancelRequested && task.status !== 'cancelling';
}

function assertOpenGenerator(task: StoredTask, method: string): void {
  if (task.recurrence === null) throw new InvalidStateError(`${method}: task "${task.id}" is not a recurring generator`);
  if (!isOpen(task)) throw new InvalidStateError(`${method}: generator "${task.id}" has ended (${task.cancelRequested && task.status !== 'cancelled' ? 'being cancelled' : task.status})`);
}

/**
 * Whether the stored schedule is the one given. A `cron` schedule is compared by its
 * expression, an `every` one by its interval (and its `dtstart` only when one is given: without,
 * it is "from now", which is no change), an `rrule` one by rule and `dtstart`; all by time zone,
 * EXDATEs, catch-up and overlap.
 */
function sameSchedule(old: StoredRecurrence, next: StoredRecurrence, options: RecurrenceOptions): boolean {
  if (old.tzid !== next.tzid || old.catchUp !== next.catchUp || old.overlap !== next.overlap || !isDeepStrictEqual(old.exdates, next.exdates)) return false;
  if (next.cron !== null) return old.cron === next.cron;
  if (next.every !== null) {
    if (old.every === null) return false;
    try {
      if (everySeconds(old.every) !== everySeconds(next.every)) return false;
    } catch {
      return false;
    }
    return (options as EveryRecurrenceOptions).dtstart === undefined || old.dtstart === next.dtstart;
  }
  return old.cron === null && old.every === null && old.rrule === next.rrule && old.dtstart === next.dtstart;
}

/** The public view of a generator. */
export function toScheduleInfo(task: StoredTask): ScheduleInfo {
  const rec = task.recurrence!;
  const open = isOpen(task);
  return {
    id: task.id,
    kind: task.kind,
    status: task.status,
    rule: rec.rrule,
    cron: rec.cron,
    every: rec.every,
    tzid: rec.tzid,
    nextSlot: !open ? null : task.paused !== null ? task.paused.dueAt : (task.notBefore ?? task.waitUntil),
    lastSpawn: task.lastSpawn,
    paused: open && task.paused !== null,
    pausedAt: open ? (task.paused?.at ?? null) : null,
    overlap: rec.overlap,
    catchUp: rec.catchUp,
  };
}
