import * as rruleModule from 'rrule';
import type { Options as RRuleOptions, RRule as RRuleType } from 'rrule';
import { InvalidOptionsError } from '../errors.js';
import { toFloating } from './timezone.js';

/**
 * RRULE text as the `rrule` package reads it, checked: the rule of a recurrence is parsed
 * here (when a schedule is created, and again each time its series is walked), and every field
 * the package would accept out of range is refused with the field named.
 */

// rrule ships CommonJS for Node: imported from ESM its classes sit on the default export, required
// (the CommonJS build) on the module itself.
const rrule = rruleModule as unknown as { RRule?: typeof RRuleType; default?: { RRule: typeof RRuleType } };
export const RRule: typeof RRuleType = rrule.RRule ?? rrule.default!.RRule;

/** Throws the {@link InvalidOptionsError} of a recurrence that cannot be used. */
export function invalidRecurrence(message: string): never {
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
export function parseRule(text: string, tzid: string): Partial<RRuleOptions> {
  const body = text.trim().replace(/^RRULE:/i, '');
  if (/DTSTART|TZID|[\r\n]/i.test(body)) invalidRecurrence('pass DTSTART and TZID as the dtstart and tzid options, not inside rrule');
  let options: Partial<RRuleOptions>;
  try {
    options = RRule.parseString(body);
  } catch (err) {
    return invalidRecurrence(`invalid rrule "${text}": ${(err as Error).message}`);
  }
  if (typeof options.freq !== 'number' || options.freq < 0 || options.freq > 6) invalidRecurrence(`rrule "${text}" needs a valid FREQ`);
  if (options.interval !== undefined && (!Number.isInteger(options.interval) || options.interval < 1)) invalidRecurrence('INTERVAL must be >= 1');
  if (options.count !== undefined && options.count !== null && (!Number.isInteger(options.count) || options.count < 1)) invalidRecurrence('COUNT must be >= 1');
  for (const [field, min, max] of RANGES) {
    const raw = options[field];
    const values = raw === undefined || raw === null ? [] : Array.isArray(raw) ? raw : [raw];
    for (const v of values) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max || (min < 0 && v === 0)) {
        invalidRecurrence(`${String(field).toUpperCase()} value ${String(v)} is out of range in "${text}"`);
      }
    }
  }
  if (options.until) {
    // UNTIL with Z is an instant; without, a wall time already.
    if (Number.isNaN(options.until.getTime())) invalidRecurrence(`invalid UNTIL in "${text}"`);
    if (/UNTIL=[0-9T]+Z/i.test(body)) options.until = toFloating(options.until, tzid);
  }
  return options;
}
