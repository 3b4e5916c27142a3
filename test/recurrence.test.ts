import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '../src/errors.js';
import { prepareRecurrence, type RecurrenceOptions, type SeriesCursor } from '../src/schedule/recurrence.js';
import { MAX_CATCH_UP, planSpawn } from '../src/schedule/spawn-plan.js';
import { fromFloating, parseWallTime, toFloating } from '../src/schedule/timezone.js';

/** The first `n` slots (UTC ISO) of a rule, stepping the generator as a worker would. */
function slots(options: RecurrenceOptions, n: number): string[] {
  const { recurrence, cursor, at } = prepareRecurrence(options);
  const out: string[] = [];
  let state: { cursor: SeriesCursor; at: Date } | null = { cursor, at };
  while (state && out.length < n) {
    const plan = planSpawn(recurrence, state.cursor, state.at); // exactly on time
    out.push(...plan.spawn.map((d) => d.toISOString()));
    state = plan.next;
  }
  return out;
}

const iso = (s: string) => new Date(s).toISOString();

describe('slot computation', () => {
  it('daily at 09:00 Berlin stays 09:00 local across both DST changes', () => {
    const spring = slots({ rrule: 'FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0', dtstart: '2026-03-28T00:00', tzid: 'Europe/Berlin' }, 3);
    expect(spring).toEqual([iso('2026-03-28T08:00Z'), iso('2026-03-29T07:00Z'), iso('2026-03-30T07:00Z')]);
    const autumn = slots({ rrule: 'FREQ=DAILY', dtstart: '2026-10-24T09:00', tzid: 'Europe/Berlin' }, 3);
    expect(autumn).toEqual([iso('2026-10-24T07:00Z'), iso('2026-10-25T08:00Z'), iso('2026-10-26T08:00Z')]);
  });

  it('weekly on Mondays at 09:00 Berlin', () => {
    expect(slots({ rrule: 'FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0', dtstart: '2026-03-18T12:00', tzid: 'Europe/Berlin' }, 3)).toEqual([
      iso('2026-03-23T08:00Z'),
      iso('2026-03-30T07:00Z'), // after the switch to CEST
      iso('2026-04-06T07:00Z'),
    ]);
  });

  it('monthly on the 15th and the 31st (months without a 31st are skipped)', () => {
    expect(slots({ rrule: 'RRULE:FREQ=MONTHLY;BYMONTHDAY=15', dtstart: new Date('2026-01-20T10:00:00Z') }, 3)).toEqual([
      iso('2026-02-15T10:00Z'),
      iso('2026-03-15T10:00Z'),
      iso('2026-04-15T10:00Z'),
    ]);
    expect(slots({ rrule: 'FREQ=MONTHLY;BYMONTHDAY=31', dtstart: '2026-01-31T06:00' }, 3)).toEqual([
      iso('2026-01-31T06:00Z'),
      iso('2026-03-31T06:00Z'),
      iso('2026-05-31T06:00Z'),
    ]);
  });

  it('ends after COUNT slots and at UNTIL', () => {
    expect(slots({ rrule: 'FREQ=DAILY;COUNT=3', dtstart: '2026-01-01T08:00' }, 10)).toEqual([
      iso('2026-01-01T08:00Z'),
      iso('2026-01-02T08:00Z'),
      iso('2026-01-03T08:00Z'),
    ]);
    expect(slots({ rrule: 'FREQ=DAILY;UNTIL=20260102T235959Z', dtstart: '2026-01-01T08:00' }, 10)).toHaveLength(2);
  });

  it('skips EXDATEs, which still count for COUNT', () => {
    expect(slots({ rrule: 'FREQ=DAILY;COUNT=4', dtstart: '2026-01-01T08:00', exdates: ['2026-01-02T08:00', new Date('2026-01-03T08:00:00Z')] }, 10)).toEqual([
      iso('2026-01-01T08:00Z'),
      iso('2026-01-04T08:00Z'),
    ]);
  });

  it('reads a local time in the spring-forward gap with the offset before it, and a repeated one as its first occurrence', () => {
    // New York, 2026-03-08: 02:00 -> 03:00. 2026-11-01: 02:00 -> 01:00.
    expect(slots({ rrule: 'FREQ=DAILY', dtstart: '2026-03-07T02:30', tzid: 'America/New_York' }, 3)).toEqual([
      iso('2026-03-07T07:30Z'),
      iso('2026-03-08T07:30Z'), // 02:30 does not exist: EST offset, i.e. 03:30 EDT
      iso('2026-03-09T06:30Z'),
    ]);
    expect(slots({ rrule: 'FREQ=DAILY', dtstart: '2026-10-31T01:30', tzid: 'America/New_York' }, 3)).toEqual([
      iso('2026-10-31T05:30Z'),
      iso('2026-11-01T05:30Z'), // 01:30 happens twice: the first (EDT)
      iso('2026-11-02T06:30Z'),
    ]);
  });

  it('handles zones with non-hour offsets', () => {
    expect(slots({ rrule: 'FREQ=DAILY', dtstart: '2026-06-01T09:00', tzid: 'Asia/Kolkata' }, 2)).toEqual([iso('2026-06-01T03:30Z'), iso('2026-06-02T03:30Z')]);
    expect(slots({ rrule: 'FREQ=DAILY', dtstart: '2026-06-01T09:00', tzid: 'Asia/Kathmandu' }, 1)).toEqual([iso('2026-06-01T03:15Z')]);
    expect(slots({ rrule: 'FREQ=WEEKLY', dtstart: '2026-03-28T09:00', tzid: 'Australia/Lord_Howe' }, 3)).toEqual([
      iso('2026-03-27T22:00Z'), // +11:00
      iso('2026-04-03T22:00Z'),
      iso('2026-04-10T22:30Z'), // +10:30 after the half-hour DST change on 2026-04-05
    ]);
  });

  it('finds the next slot of a SECONDLY rule without enumerating the past', () => {
    const { recurrence } = prepareRecurrence({ rrule: 'FREQ=SECONDLY;INTERVAL=5', dtstart: '2020-01-01T00:00' });
    const t0 = performance.now();
    const plan = planSpawn(recurrence, { wall: '2026-06-01T12:00:00', index: 0 }, new Date('2026-06-01T12:00:00Z'));
    expect(plan.next!.at.toISOString()).toBe(iso('2026-06-01T12:00:05Z'));
    expect(performance.now() - t0).toBeLessThan(50);
  });
});

describe('catch-up after downtime', () => {
  const rule = { rrule: 'FREQ=HOURLY', dtstart: '2026-01-01T00:00' };
  const missedSince: SeriesCursor = { wall: '2026-01-01T00:00:00', index: 0 };
  const now = new Date('2026-01-01T05:30:00Z'); // slots 00:00 ... 05:00 are due

  it('"latest" spawns only the newest missed slot', () => {
    const plan = planSpawn(prepareRecurrence({ ...rule, catchUp: 'latest' }).recurrence, missedSince, now);
    expect(plan.spawn.map((d) => d.toISOString())).toEqual([iso('2026-01-01T05:00Z')]);
    expect(plan.next!.at.toISOString()).toBe(iso('2026-01-01T06:00Z'));
  });

  it('"all" spawns every missed slot, at most 100 per spawn', () => {
    const plan = planSpawn(prepareRecurrence({ ...rule, catchUp: 'all' }).recurrence, missedSince, now);
    expect(plan.spawn).toHaveLength(6);
    const many = planSpawn(prepareRecurrence({ rrule: 'FREQ=MINUTELY', dtstart: '2026-01-01T00:00', catchUp: 'all' }).recurrence, missedSince, now);
    expect(many.spawn).toHaveLength(MAX_CATCH_UP);
    expect(many.next!.at.toISOString()).toBe(iso('2026-01-01T01:40Z')); // still due: the next spawn goes on
  });

  it('"none" skips missed slots but spawns one that is merely due', () => {
    const none = prepareRecurrence({ ...rule, catchUp: 'none' }).recurrence;
    expect(planSpawn(none, missedSince, now)).toMatchObject({ spawn: [] });
    expect(planSpawn(none, missedSince, now).next!.at.toISOString()).toBe(iso('2026-01-01T06:00Z'));
    expect(planSpawn(none, missedSince, new Date('2026-01-01T00:00:02Z')).spawn).toHaveLength(1);
  });

  it('does nothing for a slot that is not due yet', () => {
    const { recurrence } = prepareRecurrence({ ...rule, catchUp: 'all' });
    const plan = planSpawn(recurrence, { wall: '2026-01-01T09:00:00', index: 9 }, now);
    expect(plan.spawn).toEqual([]);
    expect(plan.next!.cursor).toEqual({ wall: '2026-01-01T09:00:00', index: 9 });
  });
});

describe('an hourly rule across the spring-forward gap', () => {
  // Berlin, 2026-03-29: 02:00 local does not exist; wall slots 02:00 and 03:00 are one instant (01:00Z).
  const rule = { rrule: 'FREQ=HOURLY', dtstart: '2026-03-29T00:00', tzid: 'Europe/Berlin' };

  it('spawns the shared instant once under "all"', () => {
    const { recurrence, cursor } = prepareRecurrence({ ...rule, catchUp: 'all' });
    const plan = planSpawn(recurrence, cursor, new Date('2026-03-29T01:30:00Z'));
    expect(plan.spawn.map((d) => d.toISOString())).toEqual([iso('2026-03-28T23:00Z'), iso('2026-03-29T00:00Z'), iso('2026-03-29T01:00Z')]);
    expect(plan.next!.at.toISOString()).toBe(iso('2026-03-29T02:00Z')); // 04:00 CEST
  });

  it('counts the gap slot and the hour after it as one slot under "none"', () => {
    const { recurrence } = prepareRecurrence({ ...rule, catchUp: 'none' });
    const plan = planSpawn(recurrence, { wall: '2026-03-29T02:00:00', index: 2 }, new Date('2026-03-29T01:00:05Z'));
    expect(plan.spawn.map((d) => d.toISOString())).toEqual([iso('2026-03-29T01:00Z')]);
    expect(plan.next!.cursor.wall).toBe('2026-03-29T04:00:00');
  });
});

describe('validation', () => {
  const bad = (options: Partial<RecurrenceOptions>) => () => prepareRecurrence({ rrule: 'FREQ=DAILY', dtstart: '2026-01-01T00:00', ...options } as RecurrenceOptions);

  it('refuses bad rules, zones, dates and modes with a clear error', () => {
    expect(bad({ rrule: 'FREQ=SOMETIMES' })).toThrow(/valid FREQ/);
    expect(bad({ rrule: 'GARBAGE' })).toThrow(InvalidOptionsError);
    expect(bad({ rrule: 'FREQ=DAILY;BYHOUR=25' })).toThrow(/BYHOUR value 25/);
    expect(bad({ rrule: 'DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY' })).toThrow(/DTSTART/);
    expect(bad({ tzid: 'Mars/Olympus_Mons' })).toThrow(/unknown time zone/);
    expect(bad({ dtstart: '2026-02-30T09:00' })).toThrow(/dtstart/);
    expect(bad({ catchUp: 'some' as never })).toThrow(/catchUp/);
    expect(bad({ rrule: 'FREQ=DAILY;UNTIL=20250101T000000Z' })).toThrow(/no slot/);
  });
});

describe('time zone conversion', () => {
  it('round-trips wall times and instants', () => {
    const wall = parseWallTime('2026-07-01T09:15:00')!;
    const instant = fromFloating(wall, 'Europe/Berlin');
    expect(instant.toISOString()).toBe(iso('2026-07-01T07:15Z'));
    expect(toFloating(instant, 'Europe/Berlin').getTime()).toBe(wall.getTime());
  });
});
