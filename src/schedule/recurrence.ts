import { assertKnownOptions, optionNames } from '../known-options.js';
import { formatWallTime, fromFloating, isValidTimeZone, parseWallTime, toFloating } from './timezone.js';
import { cronToRRule, normalizeCron } from './cron.js';
import { everySeconds, everyToRRule } from './every.js';
import { invalidRecurrence as invalid, parseRule } from './rrule.js';
import { byInstant, DST_REACH_MS, Series, toSlots, type Slot } from './series.js';

/**
 * RFC 5545 recurrence: the options a recurring task or schedule takes, what is stored of them,
 * and their validation with the first slot. The slots themselves come from the rule's
 * {@link Series} (`series.ts`); what a due generator spawns, from {@link planSpawn}
 * (`spawn-plan.ts`).
 */

/** How a generator treats slots missed while no worker ran. */
export type CatchUp = 'latest' | 'all' | 'none';

/**
 * Whether a slot is spawned while the previous occurrence of the generator is still open
 * (pending, running or cancelling): `allow` (default) spawns it anyway, `skip` does not (the
 * generator still moves past the slot).
 */
export type Overlap = 'allow' | 'skip';

/** Options every form of {@link RecurrenceOptions} takes. */
export interface CommonRecurrenceOptions {
  /**
   * Missed slots after downtime: `latest` (default) spawns the newest missed slot only, `all`
   * spawns every missed slot (at most 100 per spawn; the rest follow at once), `none` skips them.
   */
  catchUp?: CatchUp;
  /** `skip`: no slot is spawned while the previous occurrence is still open. Default `allow`. Not with `catchUp: "all"`. */
  overlap?: Overlap;
}

/** A schedule given as an RFC 5545 RRULE. */
export interface RRuleRecurrenceOptions extends CommonRecurrenceOptions {
  /** An RFC 5545 RRULE, e.g. `FREQ=WEEKLY;BYDAY=MO;BYHOUR=9` (without DTSTART/TZID; an `RRULE:` prefix is fine). */
  rrule: string;
  /** First slot candidate: an instant, or a wall time `YYYY-MM-DDTHH:mm[:ss]` in `tzid`. It also gives the
   *  default hour, minute and second of the slots. */
  dtstart: Date | string;
  /** IANA time zone the rule is read in. Default `UTC`. */
  tzid?: string;
  /** Slots to skip: instants or wall times in `tzid`. */
  exdates?: readonly (Date | string)[];
}

/**
 * A schedule given as a cron expression, e.g. `0 9 * * MON-FRI` (five fields, or six with
 * seconds first), read in `tzid`; see `src/schedule/cron.ts`. Its first slot is the first at or
 * after the create (to the second). Day-of-month and day-of-week may not both be restricted.
 */
export interface CronRecurrenceOptions extends CommonRecurrenceOptions {
  /** The cron expression. */
  cron: string;
  /** IANA time zone the expression is read in. Default `UTC`. */
  tzid?: string;
  /** Slots to skip: instants or wall times in `tzid`. */
  exdates?: readonly (Date | string)[];
}

/** A schedule given as a fixed interval of elapsed time (no DST: slots are read in UTC). */
export interface EveryRecurrenceOptions extends CommonRecurrenceOptions {
  /** The interval: `"30s"`, `"15m"`, `"2h"`, `"1d"`, or ms (a positive multiple of 1000). */
  every: string | number;
  /** First slot: an instant, or a wall time in UTC. Default: the create time (to the second) plus the interval. */
  dtstart?: Date | string;
}

/** What `create(..., { recurrence })` and `upsertSchedule` take: exactly one of `rrule`, `cron` or `every`. */
export type RecurrenceOptions = RRuleRecurrenceOptions | CronRecurrenceOptions | EveryRecurrenceOptions;

/** The stored, normalized recurrence of a generator. */
export interface StoredRecurrence {
  /** The RRULE the slots come from (for `cron` and `every`, the one they were converted to). */
  rrule: string;
  /** Wall time of DTSTART in `tzid`. */
  dtstart: string;
  /** IANA time zone the rule is read in. */
  tzid: string;
  /** Wall times in `tzid`. */
  exdates: string[];
  /** What happens to missed slots. */
  catchUp: CatchUp;
  /** The cron expression as given (whitespace normalized), or null. */
  cron: string | null;
  /** The interval as given (`"15m"` or ms), or null. */
  every: string | number | null;
  /** Whether a slot is spawned while the previous occurrence is open. */
  overlap: Overlap;
}

/** A generator's position in its series: the slot it is due for next. */
export interface SeriesCursor {
  /** Wall time of the slot in `tzid`. */
  wall: string;
  /** 0-based index of the slot in the rule's series (COUNT counts EXDATEd slots too). */
  index: number;
}

const CATCH_UP: readonly CatchUp[] = ['latest', 'all', 'none'];
const OVERLAP: readonly Overlap[] = ['allow', 'skip'];

function toWall(value: Date | string, tzid: string, what: string): Date {
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) invalid(`${what} is an invalid Date`);
    return toFloating(value, tzid);
  }
  if (typeof value === 'string') {
    const wall = parseWallTime(value);
    if (wall) return wall;
  }
  return invalid(`${what} must be a Date or a wall time "YYYY-MM-DDTHH:mm[:ss]" (got ${JSON.stringify(value)})`);
}

const RRULE_OPTIONS = optionNames<RRuleRecurrenceOptions>()(['rrule', 'dtstart', 'tzid', 'exdates', 'catchUp', 'overlap']);
const CRON_OPTIONS = optionNames<CronRecurrenceOptions>()(['cron', 'tzid', 'exdates', 'catchUp', 'overlap']);
const EVERY_OPTIONS = optionNames<EveryRecurrenceOptions>()(['every', 'dtstart', 'catchUp', 'overlap']);
const FORMS = { rrule: RRULE_OPTIONS, cron: CRON_OPTIONS, every: EVERY_OPTIONS } as const;

/** Where {@link prepareRecurrence} puts the first slot. */
export interface FirstSlotOptions {
  /** The create time: a cron schedule starts at it (to the second), an interval one interval after it. Default: now. */
  now?: Date;
  /** The first slot is at or after this instant (an update of a schedule: from now on). */
  notBefore?: Date;
  /** The first slot is strictly after this instant (an update: after the last slot spawned). */
  after?: Date | null;
}

function zoneOf(tzid: unknown): string {
  const tz = tzid ?? 'UTC';
  if (typeof tz !== 'string' || !isValidTimeZone(tz)) invalid(`unknown time zone ${JSON.stringify(tzid)}`);
  return tz;
}

/**
 * Validates recurrence options (throws {@link InvalidOptionsError} naming the problem) and
 * finds the first slot. Nothing is written by the caller if this throws. A `cron` or `every`
 * schedule is converted to its RRULE here (and keeps what was given, for display).
 */
export function prepareRecurrence(options: RecurrenceOptions, first: FirstSlotOptions = {}): { recurrence: StoredRecurrence; cursor: SeriesCursor; at: Date } {
  if (typeof options !== 'object' || options === null) invalid('expected an object');
  const given = (['rrule', 'cron', 'every'] as const).filter((form) => (options as unknown as Record<string, unknown>)[form] !== undefined);
  if (given.length !== 1) invalid(given.length === 0 ? 'pass one of rrule, cron or every' : `pass one of rrule, cron or every, not ${given.join(' and ')}`);
  const form = given[0]!;
  assertKnownOptions(options, FORMS[form], 'recurrence');
  const opts = options as Partial<RRuleRecurrenceOptions & CronRecurrenceOptions & EveryRecurrenceOptions>;
  const catchUp = opts.catchUp ?? 'latest';
  if (!CATCH_UP.includes(catchUp)) invalid(`catchUp must be one of ${CATCH_UP.join(', ')}`);
  const overlap = opts.overlap ?? 'allow';
  if (!OVERLAP.includes(overlap)) invalid(`overlap must be one of ${OVERLAP.join(', ')}`);
  if (overlap === 'skip' && catchUp === 'all') {
    invalid('overlap "skip" leaves at most one occurrence open, but catchUp "all" spawns every missed slot at once: use catchUp "latest" or "none" with it');
  }
  const now = first.now ?? new Date();
  if (Number.isNaN(now.getTime())) invalid('the create time is an invalid Date');
  const nowWhole = new Date(Math.floor(now.getTime() / 1000) * 1000);
  let rrule: string;
  let tzid: string;
  let dtstart: Date;
  let cron: string | null = null;
  let every: string | number | null = null;
  if (form === 'rrule') {
    tzid = zoneOf(opts.tzid);
    if (typeof opts.rrule !== 'string') invalid('rrule must be a string');
    rrule = opts.rrule.trim();
    parseRule(rrule, tzid);
    dtstart = toWall(opts.dtstart as Date | string, tzid, 'dtstart');
  } else if (form === 'cron') {
    tzid = zoneOf(opts.tzid);
    rrule = cronToRRule(opts.cron as string);
    cron = normalizeCron(opts.cron as string);
    dtstart = toFloating(nowWhole, tzid);
  } else {
    tzid = 'UTC';
    const seconds = everySeconds(opts.every);
    rrule = everyToRRule(seconds);
    every = opts.every as string | number;
    dtstart = opts.dtstart === undefined ? toFloating(new Date(nowWhole.getTime() + seconds * 1000), tzid) : toWall(opts.dtstart, tzid, 'dtstart');
  }
  if (opts.exdates !== undefined && !Array.isArray(opts.exdates)) invalid('exdates must be an array');
  const exdates = (opts.exdates ?? []).map((d, i) => formatWallTime(toWall(d, tzid, `exdates[${i}]`)));
  const recurrence: StoredRecurrence = { rrule, dtstart: formatWallTime(dtstart), tzid, exdates, catchUp, cron, every, overlap };
  const series = new Series(recurrence, { wall: dtstart, index: 0 });
  const found = first.notBefore === undefined && !first.after ? firstAtOrAfter(series, dtstart, tzid) : firstFrom(series, dtstart, tzid, first);
  if (!found) invalid(`${form} "${String(opts[form])}" has no slot ${first.notBefore === undefined && !first.after ? 'at or after dtstart' : 'from now on'}`);
  return { recurrence, cursor: { wall: formatWallTime(found.wall), index: series.indexOf(found.wall) }, at: found.at };
}

/** The series' first slot at or after `dtstart` (a wall time). */
function firstAtOrAfter(series: Series, dtstart: Date, tzid: string): Slot | null {
  const wall = series.after(dtstart, true);
  return wall ? { wall, at: fromFloating(wall, tzid) } : null;
}

/**
 * The series' first slot whose instant is at or after `notBefore` and strictly after `after`.
 * Near the bound, walls and instants can be out of order by up to a clock change, so the slots
 * with wall times within a DST reach either side of the bound's wall time are looked at in one
 * pass: the cursor is the earliest wall time among them whose instant is in bounds, the due
 * time the smallest such instant. Without one there, the first slot past the window is it.
 */
function firstFrom(series: Series, dtstart: Date, tzid: string, first: FirstSlotOptions): Slot | null {
  const lower = Math.max(first.notBefore?.getTime() ?? -Infinity, first.after ? first.after.getTime() + 1 : -Infinity);
  const lowerWall = toFloating(new Date(Math.floor(lower / 1000) * 1000), tzid).getTime();
  const start = new Date(Math.max(dtstart.getTime(), lowerWall - DST_REACH_MS));
  const end = new Date(lowerWall + DST_REACH_MS);
  const inBounds = toSlots(series.between(start, end), tzid).filter((slot) => slot.at.getTime() >= lower);
  if (inBounds.length > 0) return { wall: inBounds[0]!.wall, at: byInstant(inBounds)[0]!.at };
  const wall = series.after(end.getTime() < start.getTime() ? new Date(start.getTime() - 1000) : end);
  return wall ? { wall, at: fromFloating(wall, tzid) } : null;
}
