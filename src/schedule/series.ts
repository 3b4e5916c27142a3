import type { RRule as RRuleType } from 'rrule';
import type { StoredRecurrence } from './recurrence.js';
import { parseRule, RRule } from './rrule.js';
import { formatWallTime, fromFloating } from './timezone.js';

/**
 * A recurrence's series of slots. Slots are computed on wall-clock ("floating") times in the
 * generator's time zone, so 09:00 stays 09:00 local across DST, and converted to UTC instants
 * at the edges. The series is re-anchored at the current slot on every step, so finding the
 * next slot never enumerates the years before it.
 */

/** The rule re-anchored at a slot of its series, with what remains of COUNT. */
function ruleFrom(rec: StoredRecurrence, anchor: Date, index: number): RRuleType {
  const options = parseRule(rec.rrule, rec.tzid);
  const count = options.count ?? null;
  return new RRule({ ...options, dtstart: anchor, count: count === null ? null : count - index });
}

/** Walks the series forward from a cursor, skipping EXDATEs but counting them for COUNT. */
export class Series {
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

/** A slot of the series: its wall time and the instant it means. */
export interface Slot {
  wall: Date;
  at: Date;
}

/**
 * No zone moves its clock by more than this at once (the largest real shifts are 1 h; a few
 * zones changed by up to 2 h). A slot due by an instant lies at most this far after the
 * instant's wall time, and instants are in wall order except within this reach of a shift.
 */
export const DST_REACH_MS = 3 * 3600_000;

/**
 * The instants of wall times in `tzid`. Far from a clock change the offset is the same at both
 * ends of the list, and then for every wall time in it: one conversion per end, not per slot.
 */
export function toSlots(walls: readonly Date[], tzid: string): Slot[] {
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
export function walk(series: Series, tzid: string, from: Date, to: Date, more?: (wall: Date) => boolean): { slots: Slot[]; lastWall: Date | null } {
  const walls = series.between(from, to, more);
  return { slots: toSlots(walls, tzid), lastWall: walls[walls.length - 1] ?? null };
}

/**
 * Slots as instants: sorted, and de-duplicated — two wall times can mean one instant (in a
 * spring-forward gap a wall time is read with the offset before the gap, so 02:30 is 03:30
 * summer time, a slot the series also has), and RFC 5545 counts such an instance once.
 */
export function byInstant(slots: readonly Slot[]): Slot[] {
  const sorted = [...slots].sort((x, y) => x.at.getTime() - y.at.getTime() || x.wall.getTime() - y.wall.getTime());
  return sorted.filter((slot, i) => i === 0 || slot.at.getTime() !== sorted[i - 1]!.at.getTime());
}
