/**
 * Cron and interval schedules, pure (no emulator): the conversion to RRULEs, the slots a
 * generator spawns across DST changes (hand-computed instants, stepped through
 * prepareRecurrence/planSpawn as a worker would), and the refusals.
 */
import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '../../src/errors.js';
import { prepareRecurrence, type RecurrenceOptions, type SeriesCursor } from '../../src/schedule/recurrence.js';
import { planSpawn } from '../../src/schedule/spawn-plan.js';
import { cronToRRule } from '../../src/schedule/cron.js';
import { everySeconds, everyToRRule } from '../../src/schedule/every.js';

/** The first `n` slots (UTC ISO) of a schedule created at `now`, stepping the generator exactly on time. */
function slots(options: RecurrenceOptions, now: string, n: number): string[] {
  const { recurrence, cursor, at } = prepareRecurrence(options, { now: new Date(now) });
  const out: string[] = [];
  let state: { cursor: SeriesCursor; at: Date } | null = { cursor, at };
  while (state && out.length < n) {
    const plan = planSpawn(recurrence, state.cursor, state.at);
    out.push(...plan.spawn.map((d) => d.toISOString()));
    state = plan.next;
  }
  return out.slice(0, n);
}

const z = (...times: string[]) => times.map((t) => new Date(t).toISOString());

// America/New_York 2026: 03-08 02:00 EST -> 03:00 EDT (gap 02:00-03:00); 11-01 02:00 EDT -> 01:00 EST (fold 01:00-02:00).
// Europe/Berlin 2026: 03-29 02:00 CET -> 03:00 CEST (gap 02:00-03:00); 10-25 03:00 CEST -> 02:00 CET (fold 02:00-03:00).
// A wall time in a gap is read with the offset before it; one in a fold means its first occurrence (RFC 5545 3.3.5).
const NY = 'America/New_York';
const BERLIN = 'Europe/Berlin';

const table: [name: string, cron: string, tzid: string, createdAt: string, expected: string[]][] = [
  ['02:30 daily, New York spring forward (02:30 does not exist: 03:30 EDT)', '30 2 * * *', NY, '2026-03-06T12:00:00Z', z('2026-03-07T07:30Z', '2026-03-08T07:30Z', '2026-03-09T06:30Z')],
  ['01:30 daily, New York fall back (01:30 twice: the first, EDT)', '30 1 * * *', NY, '2026-10-30T12:00:00Z', z('2026-10-31T05:30Z', '2026-11-01T05:30Z', '2026-11-02T06:30Z')],
  ['02:30 daily, Berlin spring forward (02:30 does not exist: 03:30 CEST)', '30 2 * * *', BERLIN, '2026-03-27T12:00:00Z', z('2026-03-28T01:30Z', '2026-03-29T01:30Z', '2026-03-30T00:30Z')],
  ['02:30 daily, Berlin fall back (02:30 twice: the first, CEST)', '30 2 * * *', BERLIN, '2026-10-23T12:00:00Z', z('2026-10-24T00:30Z', '2026-10-25T00:30Z', '2026-10-26T01:30Z')],
  ['02:30:15 daily with seconds, New York spring forward', '15 30 2 * * *', NY, '2026-03-06T12:00:00Z', z('2026-03-07T07:30:15Z', '2026-03-08T07:30:15Z', '2026-03-09T06:30:15Z')],
  ['09:00 on weekdays, Berlin, over the spring-forward weekend', '0 9 * * MON-FRI', BERLIN, '2026-03-26T12:00:00Z', z('2026-03-27T08:00Z', '2026-03-30T07:00Z', '2026-03-31T07:00Z')],
  ['09:00 on weekdays (1-5), New York, over the fall-back weekend', '0 9 * * 1-5', NY, '2026-10-29T20:00:00Z', z('2026-10-30T13:00Z', '2026-11-02T14:00Z', '2026-11-03T14:00Z')],
  [
    'every 15 minutes, New York spring forward (in-gap 02:xx are the instants of 03:xx: once each)',
    '*/15 * * * *',
    NY,
    '2026-03-08T06:20:00Z',
    z('2026-03-08T06:30Z', '2026-03-08T06:45Z', '2026-03-08T07:00Z', '2026-03-08T07:15Z', '2026-03-08T07:30Z', '2026-03-08T07:45Z', '2026-03-08T08:00Z'),
  ],
  [
    'every 15 minutes, New York fall back (the repeated hour has slots in its first pass only)',
    '*/15 * * * *',
    NY,
    '2026-11-01T04:50:00Z',
    z('2026-11-01T05:00Z', '2026-11-01T05:15Z', '2026-11-01T05:30Z', '2026-11-01T05:45Z', '2026-11-01T07:00Z', '2026-11-01T07:15Z'),
  ],
  ['every 15 minutes, Berlin spring forward', '*/15 * * * *', BERLIN, '2026-03-29T00:20:00Z', z('2026-03-29T00:30Z', '2026-03-29T00:45Z', '2026-03-29T01:00Z', '2026-03-29T01:15Z', '2026-03-29T01:30Z')],
  ['every 15 minutes, Berlin fall back', '*/15 * * * *', BERLIN, '2026-10-25T00:20:00Z', z('2026-10-25T00:30Z', '2026-10-25T00:45Z', '2026-10-25T02:00Z', '2026-10-25T02:15Z')],
  ['Sunday 04:05 (day-of-week 7), Berlin', '5 4 * * 7', BERLIN, '2026-03-20T00:00:00Z', z('2026-03-22T03:05Z', '2026-03-29T02:05Z', '2026-04-05T02:05Z')],
  ['midnight on Jan 1 (names), New York', '0 0 1 jan *', NY, '2026-06-01T00:00:00Z', z('2027-01-01T05:00Z', '2028-01-01T05:00Z')],
];

describe('cron schedules across DST', () => {
  it.each(table)('%s', (_name, cron, tzid, createdAt, expected) => {
    expect(slots({ cron, tzid }, createdAt, expected.length)).toEqual(expected);
  });

  it('a slot at the create time itself (to the second) is the first', () => {
    expect(slots({ cron: '0 9 * * *', tzid: BERLIN }, '2026-06-01T07:00:00.400Z', 2)).toEqual(z('2026-06-01T07:00Z', '2026-06-02T07:00Z'));
  });

  it('stores the expression for display, with the RRULE it became', () => {
    const { recurrence, at } = prepareRecurrence({ cron: '  0 9  * * MON-FRI ', tzid: BERLIN, catchUp: 'none', overlap: 'skip' }, { now: new Date('2026-03-26T12:00:00.750Z') });
    expect(recurrence).toEqual({
      rrule: 'FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0;BYSECOND=0',
      dtstart: '2026-03-26T13:00:00',
      tzid: BERLIN,
      exdates: [],
      catchUp: 'none',
      cron: '0 9 * * MON-FRI',
      every: null,
      overlap: 'skip',
    });
    expect(at.toISOString()).toBe('2026-03-27T08:00:00.000Z');
  });

  it('skips EXDATEs given as wall times in tzid', () => {
    expect(slots({ cron: '0 9 * * MON-FRI', tzid: BERLIN, exdates: ['2026-03-30T09:00'] }, '2026-03-26T12:00:00Z', 2)).toEqual(z('2026-03-27T08:00Z', '2026-03-31T07:00Z'));
  });
});

describe('cron to RRULE', () => {
  it.each([
    ['0 9 * * MON-FRI', 'FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0;BYSECOND=0'],
    ['*/15 9-17 * * *', 'FREQ=DAILY;BYHOUR=9,10,11,12,13,14,15,16,17;BYMINUTE=0,15,30,45;BYSECOND=0'],
    ['1-5/2 0 1,15 * *', 'FREQ=DAILY;BYMONTHDAY=1,15;BYHOUR=0;BYMINUTE=1,3,5;BYSECOND=0'],
    ['10/20 3 * * *', 'FREQ=DAILY;BYHOUR=3;BYMINUTE=10,30,50;BYSECOND=0'],
    ['0 12 * JAN,jul-Sep *', 'FREQ=DAILY;BYMONTH=1,7,8,9;BYHOUR=12;BYMINUTE=0;BYSECOND=0'],
    ['0 0 * * 0,7', 'FREQ=DAILY;BYDAY=SU;BYHOUR=0;BYMINUTE=0;BYSECOND=0'],
    ['0 0 * * 5-7', 'FREQ=DAILY;BYDAY=SU,FR,SA;BYHOUR=0;BYMINUTE=0;BYSECOND=0'],
    ['0 0 * * sun-sat', 'FREQ=DAILY;BYHOUR=0;BYMINUTE=0;BYSECOND=0'],
    ['*/30 0 0 * * *', 'FREQ=DAILY;BYHOUR=0;BYMINUTE=0;BYSECOND=0,30'],
    ['@weekly', 'FREQ=DAILY;BYDAY=SU;BYHOUR=0;BYMINUTE=0;BYSECOND=0'],
    ['@monthly', 'FREQ=DAILY;BYMONTHDAY=1;BYHOUR=0;BYMINUTE=0;BYSECOND=0'],
    // A day field starting with "*" is unrestricted for cron's OR rule (Vixie cron ANDs then, as an RRULE does).
    ['0 9 */2 * MON', 'FREQ=DAILY;BYMONTHDAY=1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0'],
  ])('%s', (cron, rrule) => {
    expect(cronToRRule(cron)).toBe(rrule);
  });
});

describe('refusals', () => {
  const refuse = (options: unknown, message: RegExp) => {
    const err = (() => {
      try {
        prepareRecurrence(options as RecurrenceOptions, { now: new Date('2026-01-01T00:00:00Z') });
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect((err as Error).message).toMatch(message);
  };

  it.each(['0 9 1 * MON', '0 9 1-7 * 1-5', '0 0 9 15 * FRI', '0 9 1,15 * MON'])('refuses "%s": both day-of-month and day-of-week restricted, with how to split it', (cron) => {
    refuse({ cron }, /both restricted.*EITHER.*Split it into two schedules/);
  });

  it('names the two schedules to split into', () => {
    expect(() => cronToRRule('30 8 1 * MON-FRI')).toThrow('Split it into two schedules: "30 8 1 * *" and "30 8 * * MON-FRI"');
    expect(() => cronToRRule('0 30 8 1 * 1')).toThrow('"0 30 8 1 * *" and "0 30 8 * * 1"');
  });

  it.each([
    ['', /expected 5 fields.*got 0/],
    ['0 9 * *', /expected 5 fields.*got 4/],
    ['0 0 9 * * * 2026', /got 7/],
    ['a * * * *', /minute value "a" is not a number/],
    ['0 9 * * MONDAY', /day-of-week value "MONDAY" is not a number or a name SUN-SAT/],
    ['0 9 * FOO *', /month value "FOO"/],
    ['JAN * * * *', /minute value "JAN" is not a number/],
    ['*/0 * * * *', /step "0" must be a positive integer/],
    ['*/x * * * *', /step "x"/],
    ['*/61 * * * *', /step 61 is larger/],
    ['5-1 * * * *', /runs backwards/],
    ['1-2-3 * * * *', /must be "from-to"/],
    ['1,,2 * * * *', /empty item/],
    ['-1 * * * *', /must be "from-to"/],
    ['? * * * *', /not a number/],
    ['@reboot', /unknown macro/],
  ])('refuses the bad field(s) "%s"', (cron, message) => {
    refuse({ cron }, message);
  });

  it.each([
    ['60 * * * *', /minute value 60 is out of range 0-59/],
    ['0 24 * * *', /hour value 24 is out of range 0-23/],
    ['0 0 0 * *', /day-of-month value 0 is out of range 1-31/],
    ['0 0 32 * *', /day-of-month value 32/],
    ['0 0 * 0 *', /month value 0 is out of range 1-12/],
    ['0 0 * 13 *', /month value 13/],
    ['0 0 * * 8', /day-of-week value 8 is out of range 0-7/],
    ['60 0 0 * * *', /second value 60 is out of range 0-59/],
    ['0 0 30 2 *', /never occurs in month 2/],
    ['0 0 31 4,6,9,11 *', /never occurs/],
  ])('refuses the out-of-range "%s"', (cron, message) => {
    refuse({ cron }, message);
  });

  it.each([
    ['15', /every "15" must be a positive whole number of s, m, h or d/],
    ['0m', /every "0m"/],
    ['-5m', /every "-5m"/],
    ['1.5h', /every "1.5h"/],
    ['15 minutes', /every "15 minutes"/],
    ['', /every ""/],
    [1500, /positive multiple of 1000 \(got 1500\)/],
    [0, /got 0/],
    [-1000, /got -1000/],
    [Number.NaN, /got null/],
    [{}, /got \{\}/],
  ])('refuses every: %j', (every, message) => {
    refuse({ every }, message);
  });

  it('refuses mixed or incomplete forms, unknown options, a bad overlap and skip with catchUp "all"', () => {
    refuse({ cron: '0 9 * * *', rrule: 'FREQ=DAILY', dtstart: '2026-01-01T00:00' }, /pass one of rrule, cron or every, not rrule and cron/);
    refuse({ tzid: 'UTC' }, /pass one of rrule, cron or every/);
    refuse({ cron: '0 9 * * *', dtstart: '2026-01-01T00:00' }, /unknown option "dtstart"/);
    refuse({ every: '15m', tzid: 'Europe/Berlin' }, /unknown option "tzid"/);
    refuse({ every: '15m', exdates: [] }, /unknown option "exdates"/);
    refuse({ cron: '0 9 * * *', tzid: 'Mars/Olympus' }, /unknown time zone/);
    refuse({ cron: 42 }, /cron must be a string/);
    refuse({ every: '1m', overlap: 'sometimes' }, /overlap must be one of allow, skip/);
    refuse({ every: '1m', overlap: 'skip', catchUp: 'all' }, /overlap "skip".*catchUp "all"/);
    refuse({ rrule: 'FREQ=DAILY', dtstart: '2026-01-01T00:00', overlap: 'skip', catchUp: 'all' }, /use catchUp "latest" or "none"/);
  });
});

describe('every', () => {
  it.each([
    ['30s', 'FREQ=SECONDLY;INTERVAL=30'],
    ['90s', 'FREQ=SECONDLY;INTERVAL=90'],
    ['120s', 'FREQ=MINUTELY;INTERVAL=2'],
    ['15m', 'FREQ=MINUTELY;INTERVAL=15'],
    ['90m', 'FREQ=MINUTELY;INTERVAL=90'],
    ['2h', 'FREQ=HOURLY;INTERVAL=2'],
    ['48h', 'FREQ=DAILY;INTERVAL=2'],
    ['1d', 'FREQ=DAILY;INTERVAL=1'],
    [45_000, 'FREQ=SECONDLY;INTERVAL=45'],
    [3_600_000, 'FREQ=HOURLY;INTERVAL=1'],
  ] as const)('%j is %s', (every, rrule) => {
    expect(everyToRRule(everySeconds(every))).toBe(rrule);
    expect(prepareRecurrence({ every }, { now: new Date('2026-01-01T00:00:00Z') }).recurrence).toMatchObject({ rrule, tzid: 'UTC', every, cron: null });
  });

  it('starts one interval after the create time (to the second) and keeps elapsed time across DST', () => {
    expect(slots({ every: '30s' }, '2026-01-01T12:00:00.700Z', 3)).toEqual(z('2026-01-01T12:00:30Z', '2026-01-01T12:01:00Z', '2026-01-01T12:01:30Z'));
    // 24 h apart in UTC whatever New York or Berlin do on 03-08 and 03-29.
    expect(slots({ every: '1d' }, '2026-03-07T12:00:00Z', 3)).toEqual(z('2026-03-08T12:00Z', '2026-03-09T12:00Z', '2026-03-10T12:00Z'));
    expect(slots({ every: 5_400_000 }, '2026-03-29T00:00:00Z', 3)).toEqual(z('2026-03-29T01:30Z', '2026-03-29T03:00Z', '2026-03-29T04:30Z'));
  });

  it('starts at dtstart when given (an instant, or a UTC wall time)', () => {
    expect(slots({ every: '15m', dtstart: '2026-01-01T00:00' }, '2026-06-01T00:00:00Z', 2)).toEqual(z('2026-01-01T00:00Z', '2026-01-01T00:15Z'));
    expect(slots({ every: '2h', dtstart: new Date('2026-01-01T00:10:00Z') }, '2025-01-01T00:00:00Z', 2)).toEqual(z('2026-01-01T00:10Z', '2026-01-01T02:10Z'));
  });

  it('catches up like any schedule: "latest" spawns the newest missed slot', () => {
    const { recurrence, cursor } = prepareRecurrence({ every: '1m' }, { now: new Date('2026-01-01T00:00:00Z') });
    const plan = planSpawn(recurrence, cursor, new Date('2026-01-01T00:10:30Z'));
    expect(plan.spawn.map((d) => d.toISOString())).toEqual(z('2026-01-01T00:10Z'));
    expect(plan.next!.at.toISOString()).toBe('2026-01-01T00:11:00.000Z');
  });
});

describe('planning a changed schedule from now (upsertSchedule)', () => {
  it('puts the first slot at or after now and strictly after the last spawned slot', () => {
    const now = new Date('2026-01-01T10:07:00Z');
    const at = (after: string | null) => prepareRecurrence({ cron: '*/15 * * * *' }, { now, notBefore: now, after: after === null ? null : new Date(after) }).at.toISOString();
    expect(at(null)).toBe('2026-01-01T10:15:00.000Z');
    expect(at('2026-01-01T10:00:00Z')).toBe('2026-01-01T10:15:00.000Z');
    expect(at('2026-01-01T10:15:00Z')).toBe('2026-01-01T10:30:00.000Z'); // spawned early (clock skew): not again
    const exact = new Date('2026-01-01T10:15:00Z');
    expect(prepareRecurrence({ cron: '*/15 * * * *' }, { now: exact, notBefore: exact }).at.toISOString()).toBe('2026-01-01T10:15:00.000Z');
  });

  it('finds a spring-forward slot whose wall time is before now but whose instant is not', () => {
    // 02:30 New York on 03-08 is 07:30Z (03:30 EDT); at 07:10Z (03:10 EDT) it is still ahead.
    const now = new Date('2026-03-08T07:10:00Z');
    const next = prepareRecurrence({ rrule: 'FREQ=DAILY;BYHOUR=2;BYMINUTE=30;BYSECOND=0', dtstart: '2026-03-01T00:00', tzid: NY }, { now, notBefore: now });
    expect(next.at.toISOString()).toBe('2026-03-08T07:30:00.000Z');
    expect(next.cursor.wall).toBe('2026-03-08T02:30:00');
  });

  it('counts COUNT from dtstart', () => {
    const now = new Date('2026-01-01T00:02:30Z');
    const next = prepareRecurrence({ rrule: 'FREQ=MINUTELY;COUNT=5', dtstart: '2026-01-01T00:00' }, { now, notBefore: now });
    expect(next.cursor).toEqual({ wall: '2026-01-01T00:03:00', index: 3 });
    expect(() => prepareRecurrence({ rrule: 'FREQ=MINUTELY;COUNT=2', dtstart: '2026-01-01T00:00' }, { now, notBefore: now })).toThrow(/no slot from now on/);
  });
});
