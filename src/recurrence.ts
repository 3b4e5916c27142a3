import { assertKnownOptions, optionNames } from './known-options.js';
import rrulePkg from 'rrule';
import type { Options as RRuleOptions, RRule as RRuleType } from 'rrule';
import { InvalidOptionsError } from './errors.js';
import { formatWallTime, fromFloating, isValidTimeZone, parseWallTime, toFloating } from './timezone.js';
import { cronToRRule, normalizeCron } from './schedule/cron.js';
import { everySeconds, everyToRRule } from './schedule/every.js';

/**
 * RFC 5545 recurrence: which slots a generator spawns, and when. Slots are computed on
 * wall-clock ("floating") times in the generator's time zone, so 09:00 stays 09:00 local across
 * DST, and converted to UTC instants at the edges. The series is re-anchored at the current
 * slot on every step, so finding the next slot never enumerates the years before it.
 */

// rrule ships CommonJS for Node; its default export carries the classes.
const { RRule } = rrulePkg as unknown as { RRule: typeof RRuleType };

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

/** What a due generator does now. */
export interface SpawnPlan {
  /** Slot instants to create occurrences for, oldest first. */
  spawn: Date[];
  /** Where the generator moves, with the instant it comes due; null when the series has ended. */
  next: { cursor: SeriesCursor; at: Date } | null;
}

/** Most occurrences one spawn creates under `catchUp: "all"`. */
export const MAX_CATCH_UP = 100;

const CATCH_UP: readonly CatchUp[] = ['latest', 'all', 'none'];
const OVERLAP: readonly Overlap[] = ['allow', 'skip'];

function invalid(message: string): never {
  throw new InvalidOptionsError(`recurrence: ${message}`);
}

const RANGES: [keyof RRuleOptions, number, number][] = [
  ['byhour', 0, 23],
  ['byminute', 0, 59],
  ['bysecond', 0, 59],
  ['bymonth', 1, 12],
  ['bymonthday', -31, 31],
  ['byyearday', -366, 366],
  ['byweekno', -53, 53],
  ['bysetpos', -366, 366],
];

/** Parses and checks an RRULE string; the result is in floating time (UNTIL converted to `tzid`). */
function parseRule(text: string, tzid: string): Partial<RRuleOptions> {
  const body = text.trim().replace(/^RRULE:/i, '');
  if (/DTSTART|TZID|[\r\n]/i.test(body)) invalid('pass DTSTART and TZID as the dtstart and tzid options, not inside rrule');
  let options: Partial<RRuleOptions>;
  try {
    options = RRule.parseString(body);
  } catch (err) {
    return invalid(`invalid rrule "${text}": ${(err as Error).message}`);
  }
  if (typeof options.freq !== 'number' || options.freq < 0 || options.freq > 6) invalid(`rrule "${text}" needs a valid FREQ`);
  if (options.interval !== undefined && (!Number.isInteger(options.interval) || options.interval < 1)) invalid('INTERVAL must be >= 1');
  if (options.count !== undefined && options.count !== null && (!Number.isInteger(options.count) || options.count < 1)) invalid('COUNT must be >= 1');
  for (const [field, min, max] of RANGES) {
    const raw = options[field];
    const values = raw === undefined || raw === null ? [] : Array.isArray(raw) ? raw : [raw];
    for (const v of values) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max || (min < 0 && v === 0)) {
        invalid(`${String(field).toUpperCase()} value ${String(v)} is out of range in "${text}"`);
      }
    }
  }
  if (options.until) {
    // UNTIL with Z is an instant; without, a wall time already.
    if (Number.isNaN(options.until.getTime())) invalid(`invalid UNTIL in "${text}"`);
    if (/UNTIL=[0-9T]+Z/i.test(body)) options.until = toFloating(options.until, tzid);
  }
  return options;
}

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

/** The rule re-anchored at a slot of its series, with what remains of COUNT. */
function ruleFrom(rec: StoredRecurrence, anchor: Date, index: number): RRuleType {
  const options = parseRule(rec.rrule, rec.tzid);
  const count = options.count ?? null;
  return new RRule({ ...options, dtstart: anchor, count: count === null ? null : count - index });
}

/** Walks the series forward from a cursor, skipping EXDATEs but counting them for COUNT. */
class Series {
  private readonly rule: RRuleType;
  private readonly anchor: Date;
  private readonly exdates: Set<string>;
  private readonly counted: boolean;

  constructor(
    rec: StoredRecurrence,
    private readonly cursor: { wall: Date; index: number },
  ) {
    this.anchor = cursor.wall;
    this.rule = ruleFrom(rec, cursor.wall, cursor.index);
    this.counted = this.rule.options.count !== null;
    this.exdates = new Set(rec.exdates);
  }

  isExcluded(wall: Date): boolean {
    return this.exdates.has(formatWallTime(wall));
  }

  /** Index of a slot of this series (only counted when the rule has COUNT; it matters for nothing else). */
  indexOf(wall: Date): number {
    if (!this.counted || wall.getTime() === this.anchor.getTime()) return this.cursor.index;
    return this.cursor.index + this.rule.between(this.anchor, wall, true).length - 1;
  }

  /** First non-excluded slot strictly after `wall` (or at it, with `inclusive`). */
  after(wall: Date, inclusive = false): Date | null {
    let slot = this.rule.after(wall, inclusive);
    while (slot && this.isExcluded(slot)) slot = this.rule.after(slot, false);
    return slot;
  }

  /**
   * Non-excluded slots with wall times in [from, to], in order, in one pass of the rule (its
   * `after` re-walks the series from the anchor on every call); `more(wall)` may end it early.
   */
  between(from: Date, to: Date, more: (wall: Date) => boolean = () => true): Date[] {
    const walls: Date[] = [];
    if (to.getTime() < from.getTime()) return walls;
    this.rule.between(from, to, true, (wall) => {
      if (!this.isExcluded(wall)) walls.push(wall);
      return more(wall);
    });
    return walls;
  }

  /** Newest non-excluded slot at or before `wall`, not before the anchor. */
  latestUpTo(wall: Date): Date | null {
    let slot = this.rule.before(wall, true);
    while (slot && this.isExcluded(slot)) slot = this.rule.before(slot, false);
    return slot && slot.getTime() >= this.anchor.getTime() ? slot : null;
  }
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

/** A slot of the series: its wall time and the instant it means. */
interface Slot {
  wall: Date;
  at: Date;
}

/**
 * No zone moves its clock by more than this at once (the largest real shifts are 1 h; a few
 * zones changed by up to 2 h). A slot due by an instant lies at most this far after the
 * instant's wall time, and instants are in wall order except within this reach of a shift.
 */
const DST_REACH_MS = 3 * 3600_000;

/**
 * The instants of wall times in `tzid`. Far from a clock change the offset is the same at both
 * ends of the list, and then for every wall time in it: one conversion per end, not per slot.
 */
function toSlots(walls: readonly Date[], tzid: string): Slot[] {
  if (walls.length === 0) return [];
  const offset = (wall: Date): number => wall.getTime() - fromFloating(wall, tzid).getTime();
  const first = offset(walls[0]!);
  const span = walls[walls.length - 1]!.getTime() - walls[0]!.getTime();
  if (span <= 2 * DST_REACH_MS && offset(walls[walls.length - 1]!) === first) {
    return walls.map((wall) => ({ wall, at: new Date(wall.getTime() - first) }));
  }
  return walls.map((wall) => ({ wall, at: fromFloating(wall, tzid) }));
}

/**
 * The series' slots with wall times from `from` (inclusive) to `to`, in wall order; `more` may
 * end the walk early. Excluded slots are skipped.
 */
function walk(series: Series, tzid: string, from: Date, to: Date, more?: (wall: Date) => boolean): { slots: Slot[]; lastWall: Date | null } {
  const walls = series.between(from, to, more);
  return { slots: toSlots(walls, tzid), lastWall: walls[walls.length - 1] ?? null };
}

/**
 * Slots as instants: sorted, and de-duplicated — two wall times can mean one instant (in a
 * spring-forward gap a wall time is read with the offset before the gap, so 02:30 is 03:30
 * summer time, a slot the series also has), and RFC 5545 counts such an instance once.
 */
function byInstant(slots: readonly Slot[]): Slot[] {
  const sorted = [...slots].sort((x, y) => x.at.getTime() - y.at.getTime() || x.wall.getTime() - y.wall.getTime());
  return sorted.filter((slot, i) => i === 0 || slot.at.getTime() !== sorted[i - 1]!.at.getTime());
}

/**
 * What a generator due for `cursor` does at `now`: which slots to spawn (per `catchUp`) and
 * where it moves next. Planned on instants: every slot instant before the cursor's was dealt
 * with (spawned or skipped) by an earlier plan, so a plan looks at instants from the cursor's
 * to `now`, spawns per `catchUp` (each instant at most once, oldest first), and moves the
 * cursor to the slot with the smallest instant after the newest one it dealt with.
 *
 * In a fall-back fold a wall time means its first occurrence, so a sub-hourly rule's slots of
 * the repeated hour (01:00, 01:15, ... New York time) occur once each, in the first pass of the
 * hour; the second pass has no slots. In a spring-forward gap, in-gap slots mean the instants
 * one gap-length later, which the slots after the gap also have: they are one slot each.
 */
export function planSpawn(rec: StoredRecurrence, cursor: SeriesCursor, now: Date, dueAt?: Date): SpawnPlan {
  const current = parseWallTime(cursor.wall);
  if (!current) throw new InvalidOptionsError(`recurrence: stored slot "${cursor.wall}" is not a wall time`);
  const { tzid } = rec;
  const series = new Series(rec, { wall: current, index: cursor.index });
  // Every slot instant before `from` was dealt with; the cursor's wall is the earliest wall of a
  // slot not dealt with yet (the series is walked from there), whose instant can be later.
  const from = dueAt ?? fromFloating(current, tzid);
  if (from > now) return { spawn: [], next: { cursor, at: from } }; // woken early: not due yet
  const nowWall = toFloating(now, tzid);
  // Near a clock change, slots due by now can have wall times up to the change's size after
  // now's wall time, and instants out of wall order. Elsewhere, wall order is instant order.
  const offset = (wall: Date): number => wall.getTime() - fromFloating(wall, tzid).getTime();
  const shifting = offset(new Date(nowWall.getTime() - DST_REACH_MS)) !== offset(new Date(nowWall.getTime() + DST_REACH_MS));
  const horizon = shifting ? new Date(nowWall.getTime() + DST_REACH_MS) : nowWall;
  const isDue = (slot: Slot): boolean => slot.at.getTime() >= from.getTime() && slot.at.getTime() <= now.getTime();

  let walked: { slots: Slot[]; lastWall: Date | null };
  let dealtUpTo: Date; // the newest instant dealt with
  const spawn: Date[] = [];
  if (rec.catchUp === 'all') {
    // Stop once MAX_CATCH_UP due slots are found and the walk is past their reach.
    // Every wall time up to `horizon` may be due; stop once MAX_CATCH_UP slots are walked and
    // the walk is past their reach (later slots cannot come before them).
    let seen = 0;
    let enough: number | null = null;
    walked = walk(series, tzid, current, horizon, (wall) => {
      if (enough === null && ++seen >= MAX_CATCH_UP) enough = wall.getTime() + DST_REACH_MS;
      return enough === null || wall.getTime() <= enough;
    });
    const due = byInstant(walked.slots.filter(isDue)).slice(0, MAX_CATCH_UP);
    spawn.push(...due.map((slot) => slot.at));
    dealtUpTo = due[due.length - 1]?.at ?? from;
  } else {
    // Far behind: only the last reach before now can hold the newest due slot; any slot before
    // it (after the cursor) is due as well.
    const windowStart = shifting ? new Date(Math.max(current.getTime(), nowWall.getTime() - DST_REACH_MS)) : (series.latestUpTo(nowWall) ?? current);
    walked = walk(series, tzid, new Date(Math.max(windowStart.getTime(), current.getTime())), horizon);
    const due = byInstant(walked.slots.filter(isDue));
    const latest = due[due.length - 1]?.at ?? from;
    const firstAfterCursor = series.after(current);
    const behind =
      latest.getTime() !== from.getTime() ||
      (windowStart.getTime() > current.getTime() && firstAfterCursor !== null && firstAfterCursor.getTime() < windowStart.getTime());
    if (rec.catchUp === 'latest') spawn.push(latest);
    else if (!behind) spawn.push(from); // `none`: only a slot that is merely late, with no later slot due
    dealtUpTo = latest;
  }
  // What is left: slots with instants after the newest dealt with, among the walked slots and
  // the first slot past the walk (its wall is beyond the reach, so its instant is later still).
  // The generator comes due at the smallest such instant; its cursor is the earliest such wall.
  const beyond = walked.lastWall ? series.after(walked.lastWall) : series.after(current);
  const pool = [...walked.slots, ...(beyond ? [{ wall: beyond, at: fromFloating(beyond, tzid) }] : [])];
  const left = pool.filter((slot) => slot.at.getTime() > dealtUpTo.getTime() && slot.wall.getTime() >= current.getTime());
  const next = byInstant(left)[0] ?? null;
  const anchor = left.reduce<Slot | null>((min, slot) => (min === null || slot.wall < min.wall ? slot : min), null);
  return {
    spawn,
    next: next && anchor ? { cursor: { wall: formatWallTime(anchor.wall), index: series.indexOf(anchor.wall) }, at: next.at } : null,
  };
}
