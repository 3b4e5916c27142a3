import rrulePkg from 'rrule';
import type { Options as RRuleOptions, RRule as RRuleType } from 'rrule';
import { InvalidOptionsError } from './errors.js';
import { formatWallTime, fromFloating, isValidTimeZone, parseWallTime, toFloating } from './timezone.js';

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

/** What `create(..., { recurrence })` takes. */
export interface RecurrenceOptions {
  /** An RFC 5545 RRULE, e.g. `FREQ=WEEKLY;BYDAY=MO;BYHOUR=9` (without DTSTART/TZID; an `RRULE:` prefix is fine). */
  rrule: string;
  /** First slot candidate: an instant, or a wall time `YYYY-MM-DDTHH:mm[:ss]` in `tzid`. It also gives the
   *  default hour, minute and second of the slots. */
  dtstart: Date | string;
  /** IANA time zone the rule is read in. Default `UTC`. */
  tzid?: string;
  /** Slots to skip: instants or wall times in `tzid`. */
  exdates?: readonly (Date | string)[];
  /**
   * Missed slots after downtime: `latest` (default) spawns the newest missed slot only, `all`
   * spawns every missed slot (at most 100 per spawn; the rest follow at once), `none` skips them.
   */
  catchUp?: CatchUp;
}

/** The stored, normalized recurrence of a generator. */
export interface StoredRecurrence {
  rrule: string;
  /** Wall time of DTSTART in `tzid`. */
  dtstart: string;
  tzid: string;
  /** Wall times in `tzid`. */
  exdates: string[];
  catchUp: CatchUp;
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

  /** Newest non-excluded slot at or before `wall`, not before the anchor. */
  latestUpTo(wall: Date): Date | null {
    let slot = this.rule.before(wall, true);
    while (slot && this.isExcluded(slot)) slot = this.rule.before(slot, false);
    return slot && slot.getTime() >= this.anchor.getTime() ? slot : null;
  }
}

/**
 * Validates recurrence options (throws {@link InvalidOptionsError} naming the problem) and
 * finds the first slot. Nothing is written by the caller if this throws.
 */
export function prepareRecurrence(options: RecurrenceOptions): { recurrence: StoredRecurrence; cursor: SeriesCursor; at: Date } {
  if (typeof options !== 'object' || options === null) invalid('expected an object');
  const tzid = options.tzid ?? 'UTC';
  if (typeof tzid !== 'string' || !isValidTimeZone(tzid)) invalid(`unknown time zone ${JSON.stringify(options.tzid)}`);
  if (typeof options.rrule !== 'string') invalid('rrule must be a string');
  const catchUp = options.catchUp ?? 'latest';
  if (!CATCH_UP.includes(catchUp)) invalid(`catchUp must be one of ${CATCH_UP.join(', ')}`);
  parseRule(options.rrule, tzid);
  const dtstart = toWall(options.dtstart, tzid, 'dtstart');
  if (options.exdates !== undefined && !Array.isArray(options.exdates)) invalid('exdates must be an array');
  const exdates = (options.exdates ?? []).map((d, i) => formatWallTime(toWall(d, tzid, `exdates[${i}]`)));
  const recurrence: StoredRecurrence = { rrule: options.rrule.trim(), dtstart: formatWallTime(dtstart), tzid, exdates, catchUp };
  const series = new Series(recurrence, { wall: dtstart, index: 0 });
  const first = series.after(dtstart, true);
  if (!first) invalid(`rrule "${options.rrule}" has no slot at or after dtstart`);
  const cursor = { wall: formatWallTime(first), index: series.indexOf(first) };
  return { recurrence, cursor, at: fromFloating(first, tzid) };
}

/**
 * What a generator due for `cursor` does at `now`: which slots to spawn (per `catchUp`) and
 * where it moves next.
 */
export function planSpawn(rec: StoredRecurrence, cursor: SeriesCursor, now: Date): SpawnPlan {
  const current = parseWallTime(cursor.wall);
  if (!current) throw new InvalidOptionsError(`recurrence: stored slot "${cursor.wall}" is not a wall time`);
  const series = new Series(rec, { wall: current, index: cursor.index });
  const nowWall = toFloating(now, rec.tzid);
  const instant = (wall: Date): Date => fromFloating(wall, rec.tzid);
  const spawn: Date[] = [];
  if (instant(current) > now) return { spawn, next: { cursor, at: instant(current) } }; // woken early: not due yet
  // Two wall times can be one instant (a slot in a spring-forward gap and the hour after it):
  // such a slot is one slot, spawned once.
  const add = (wall: Date): void => {
    const at = instant(wall);
    if (at.getTime() !== spawn[spawn.length - 1]?.getTime()) spawn.push(at);
  };
  let last: Date; // the newest slot dealt with
  if (rec.catchUp === 'all') {
    last = current;
    if (!series.isExcluded(current)) add(current);
    for (let slot = series.after(current); slot && instant(slot) <= now && spawn.length < MAX_CATCH_UP; slot = series.after(slot)) {
      if (!series.isExcluded(slot)) add(slot);
      last = slot;
    }
  } else {
    const latest = series.latestUpTo(nowWall) ?? current;
    last = latest.getTime() < current.getTime() ? current : latest;
    // `none` spawns only when the generator is not behind by more than this slot.
    const onTime = instant(last).getTime() === instant(current).getTime();
    if ((rec.catchUp === 'latest' || onTime) && !series.isExcluded(last) && instant(last) <= now) add(last);
  }
  let next = series.after(last);
  while (next && instant(next) <= instant(last)) next = series.after(next); // same instant as `last`
  return {
    spawn,
    next: next ? { cursor: { wall: formatWallTime(next), index: series.indexOf(next) }, at: instant(next) } : null,
  };
}
