/**
 * Wall-clock time in an IANA time zone, with the RFC 5545 rules for the two DST edges:
 * a local time that does not exist (spring forward) is read with the offset before the gap,
 * and one that occurs twice (fall back) means its first occurrence.
 *
 * "Floating" dates carry a wall-clock time in their UTC fields: that is how the recurrence
 * engine reasons about 09:00 local without any zone, and converts at the edges.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(tz, f);
  }
  return f;
}

/** Whether `tz` is an IANA time zone name this runtime knows. */
export function isValidTimeZone(tz: string): boolean {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

/** The wall-clock time of an instant in `tz`, as a floating date (whole seconds). */
export function toFloating(instant: Date, tz: string): Date {
  const parts: Record<string, number> = {};
  for (const p of formatter(tz).formatToParts(instant)) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  return new Date(Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!));
}

/** UTC offset of `tz` at an instant, in ms (local minus UTC). */
function offsetAt(instantMs: number, tz: string): number {
  const whole = Math.floor(instantMs / 1000) * 1000;
  return toFloating(new Date(whole), tz).getTime() - whole;
}

const DAY_MS = 86_400_000;

/**
 * The instant a floating wall-clock time means in `tz`. Assumes at most one offset change
 * within a day either side, which holds for every real zone.
 */
export function fromFloating(floating: Date, tz: string): Date {
  const wall = floating.getTime();
  const before = wall - offsetAt(wall - DAY_MS, tz);
  const after = wall - offsetAt(wall + DAY_MS, tz);
  const beforeOk = toFloating(new Date(before), tz).getTime() === wall;
  const afterOk = toFloating(new Date(after), tz).getTime() === wall;
  if (beforeOk && afterOk) return new Date(Math.min(before, after)); // fold: the first occurrence
  if (beforeOk) return new Date(before);
  if (afterOk) return new Date(after);
  return new Date(before); // gap: the offset before the transition
}

/** Parses `YYYY-MM-DDTHH:mm[:ss]` (no offset) as a floating date; null if it is not one. */
export function parseWallTime(text: string): Date | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1).map((v) => Number(v ?? 0)) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  // Reject impossible fields (Feb 30, 25:00) instead of letting Date roll them over.
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day || date.getUTCHours() !== hour || date.getUTCMinutes() !== minute) return null;
  return date;
}

/** A floating date as `YYYY-MM-DDTHH:mm:ss`. */
export function formatWallTime(floating: Date): string {
  return floating.toISOString().slice(0, 19);
}
