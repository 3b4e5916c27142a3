import { InvalidOptionsError } from '../errors.js';

/**
 * Fixed intervals (`every: '15m'`) as RRULEs: elapsed time, read in UTC (no DST), so a
 * 1-hour interval is 3600 s between any two slots. The rule uses the coarsest unit that divides
 * the interval (FREQ=DAILY/HOURLY/MINUTELY/SECONDLY with INTERVAL=n); without BY parts the
 * slots keep the time of day of their first slot.
 */

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };
const FREQS: [number, string][] = [
  [86_400, 'DAILY'],
  [3600, 'HOURLY'],
  [60, 'MINUTELY'],
  [1, 'SECONDLY'],
];

/**
 * The interval in whole seconds: a string `<n>s|m|h|d` (`30s`, `15m`, `2h`, `1d`) or a number of
 * ms, a positive multiple of 1000. Throws {@link InvalidOptionsError} for anything else.
 */
export function everySeconds(every: unknown): number {
  if (typeof every === 'string') {
    const m = /^\s*([1-9]\d*)\s*([smhd])\s*$/.exec(every);
    if (m) {
      const seconds = Number(m[1]) * UNITS[m[2]!]!;
      if (Number.isSafeInteger(seconds)) return seconds;
    }
    throw new InvalidOptionsError(`recurrence: every "${every}" must be a positive whole number of s, m, h or d, e.g. "30s", "15m", "2h", "1d"`);
  }
  if (typeof every === 'number' && Number.isSafeInteger(every) && every > 0 && every % 1000 === 0) return every / 1000;
  throw new InvalidOptionsError(`recurrence: every must be a string like "15m" or a number of ms that is a positive multiple of 1000 (got ${JSON.stringify(every)})`);
}

/** The RRULE of an interval of `seconds`, e.g. 900 → `FREQ=MINUTELY;INTERVAL=15`. */
export function everyToRRule(seconds: number): string {
  const [unit, freq] = FREQS.find(([unit]) => seconds % unit === 0)!;
  return `FREQ=${freq};INTERVAL=${seconds / unit}`;
}
