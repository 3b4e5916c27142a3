import { InvalidOptionsError } from '../errors.js';
import type { SeriesCursor, StoredRecurrence } from './recurrence.js';
import { byInstant, DST_REACH_MS, Series, walk, type Slot } from './series.js';
import { formatWallTime, fromFloating, parseWallTime, toFloating } from './timezone.js';

/**
 * The spawn planner: what a due generator spawns now, and where its cursor moves. It works on
 * the generator's {@link Series} of wall-time slots and decides on their instants.
 */

/** What a due generator does now. */
export interface SpawnPlan {
  /** Slot instants to create occurrences for, oldest first. */
  spawn: Date[];
  /** Where the generator moves, with the instant it comes due; null when the series has ended. */
  next: { cursor: SeriesCursor; at: Date } | null;
}

/** Most occurrences one spawn creates under `catchUp: "all"`. */
export const MAX_CATCH_UP = 100;

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
