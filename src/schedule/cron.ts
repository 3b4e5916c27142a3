import { InvalidOptionsError } from '../errors.js';

/**
 * Cron expressions as RRULEs, so cron schedules run on the same series code (wall-clock slots
 * in a time zone, DST edges as RFC 5545 has them) as every other generator.
 *
 * A cron expression has five fields, `minute hour day-of-month month day-of-week`, or six with
 * seconds first. It becomes `FREQ=DAILY` with BYHOUR/BYMINUTE/BYSECOND (which expand a day into
 * its times) and BYMONTH/BYMONTHDAY/BYDAY (which limit the days). Each field takes `*`, lists
 * (`1,15`), ranges (`1-5`), steps (`*\/15`, `1-5/2`, `10/5` = `10-59/5`), month names JAN-DEC and
 * day names SUN-SAT (any case); day-of-week 0 and 7 are Sunday. The macros `@yearly`
 * (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly` are accepted.
 *
 * Day-of-month and day-of-week: in cron (Vixie cron, cronie, most others) a day matches when
 * EITHER field matches if both are restricted, but an RRULE's BYMONTHDAY and BYDAY must BOTH
 * match. Such an expression is refused with a message to split it into two schedules. A field
 * counts as restricted unless it starts with `*` — as in Vixie cron, where `*\/2` in one of them
 * makes the two AND, which is what the RRULE does too.
 */

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  /** Names for the values from `min` on (JAN = 1, SUN = 0). */
  names?: readonly string[];
}

const SECOND: FieldSpec = { name: 'second', min: 0, max: 59 };
const MINUTE: FieldSpec = { name: 'minute', min: 0, max: 59 };
const HOUR: FieldSpec = { name: 'hour', min: 0, max: 23 };
const DAY_OF_MONTH: FieldSpec = { name: 'day-of-month', min: 1, max: 31 };
const MONTH: FieldSpec = { name: 'month', min: 1, max: 12, names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'] };
const DAY_OF_WEEK: FieldSpec = { name: 'day-of-week', min: 0, max: 7, names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] };

/** RFC 5545 day codes by cron day number (0 = Sunday). */
const BYDAY = ['SU', 'MO', 'TU', 'WE', 'TH', 'FR', 'SA'] as const;
/** Longest month length by month number (February: 29, in leap years). */
const MONTH_DAYS = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/** A parsed field: its values in order, and whether it was written starting with `*` (unrestricted, for the day rule). */
interface Field {
  values: number[];
  star: boolean;
}

function fail(expression: string, message: string): never {
  throw new InvalidOptionsError(`recurrence: cron "${expression}": ${message}`);
}

function parseValue(expression: string, text: string, spec: FieldSpec): number {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n < spec.min || n > spec.max) fail(expression, `${spec.name} value ${text} is out of range ${spec.min}-${spec.max}`);
    return n;
  }
  const index = spec.names?.indexOf(text.toUpperCase()) ?? -1;
  if (index >= 0) return index + (spec.name === 'month' ? 1 : 0);
  return fail(expression, `${spec.name} value "${text}" is not a number${spec.names ? ` or a name ${spec.names[0]}-${spec.names[spec.names.length - 1]}` : ''}`);
}

function parseField(expression: string, text: string, spec: FieldSpec): Field {
  const values = new Set<number>();
  for (const item of text.split(',')) {
    const m = /^([^/]+)(?:\/(.*))?$/.exec(item);
    if (!m) fail(expression, `${spec.name} field "${text}" has an empty item`);
    const [, base, stepText] = m as unknown as [string, string, string | undefined];
    let from: number;
    let to: number;
    if (base === '*') {
      from = spec.min;
      to = spec.max;
    } else if (base.includes('-')) {
      const [a, b, ...rest] = base.split('-');
      if (rest.length > 0 || !a || !b) fail(expression, `${spec.name} range "${base}" must be "from-to"`);
      from = parseValue(expression, a, spec);
      to = parseValue(expression, b, spec);
      if (from > to) fail(expression, `${spec.name} range "${base}" runs backwards`);
    } else {
      from = parseValue(expression, base, spec);
      to = stepText === undefined ? from : spec.max; // `10/5` means 10-max/5
    }
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) < 1) fail(expression, `${spec.name} step "${stepText}" must be a positive integer`);
      step = Number(stepText);
      if (step > spec.max - spec.min + 1) fail(expression, `${spec.name} step ${step} is larger than the field's range`);
    }
    for (let v = from; v <= to; v += step) values.add(v);
  }
  return { values: [...values].sort((a, b) => a - b), star: text.startsWith('*') };
}

/**
 * The RRULE of a cron expression (see the module comment). Throws {@link InvalidOptionsError}
 * naming the problem: wrong field count, bad or out-of-range values, both day fields restricted,
 * or days that never occur (`0 0 31 2 *`).
 */
export function cronToRRule(expression: string): string {
  if (typeof expression !== 'string') throw new InvalidOptionsError('recurrence: cron must be a string');
  const trimmed = expression.trim();
  const text = MACROS[trimmed.toLowerCase()] ?? trimmed;
  if (text.startsWith('@')) fail(expression, `unknown macro (known: ${Object.keys(MACROS).join(', ')})`);
  const parts = text.split(/\s+/);
  if (parts.length !== 5 && parts.length !== 6) {
    fail(expression, `expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), got ${text === '' ? 0 : parts.length}`);
  }
  const fields = parts.length === 6 ? parts : ['0', ...parts];
  const [second, minute, hour, dom, month, dow] = fields.map((f, i) => parseField(expression, f, [SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK][i]!)) as [Field, Field, Field, Field, Field, Field];
  if (!dom.star && !dow.star) {
    const d = parts.length - 3; // index of the day-of-month field
    const starred = (i: number) => parts.map((p, j) => (j === i ? '*' : p)).join(' ');
    fail(
      expression,
      'day-of-month and day-of-week are both restricted; cron runs on days matching EITHER of them, but a schedule here runs on days matching BOTH. ' +
        `Split it into two schedules: "${starred(d + 2)}" and "${starred(d)}"`,
    );
  }
  const days = [...new Set(dow.values.map((d) => d % 7))].sort((a, b) => a - b);
  const restrictedMonth = month.values.length < 12;
  const restrictedDom = dom.values.length < 31;
  if (restrictedDom && dom.values[0]! > Math.max(...month.values.map((m) => MONTH_DAYS[m]!))) {
    fail(expression, `day-of-month ${dom.values.join(',')} never occurs in month ${month.values.join(',')}`);
  }
  const rule = ['FREQ=DAILY'];
  if (restrictedMonth) rule.push(`BYMONTH=${month.values.join(',')}`);
  if (restrictedDom) rule.push(`BYMONTHDAY=${dom.values.join(',')}`);
  if (days.length < 7) rule.push(`BYDAY=${days.map((d) => BYDAY[d]).join(',')}`);
  rule.push(`BYHOUR=${hour.values.join(',')}`, `BYMINUTE=${minute.values.join(',')}`, `BYSECOND=${second.values.join(',')}`);
  return rule.join(';');
}

/** A cron expression as stored for display: trimmed, fields separated by one space. */
export function normalizeCron(expression: string): string {
  return expression.trim().split(/\s+/).join(' ');
}
