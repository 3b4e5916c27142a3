/**
 * Recurrence at clock changes, property-style: for several zones and rules, a generator driven
 * through each 2026 DST transition by workers that come by at various intervals must spawn what
 * an independent computation of the wall-clock slots says — each instant once, in order, per
 * `catchUp` — and move to the right next slot. (Hardening issue, failure 6.)
 */
import { describe, expect, it } from 'vitest';
import { prepareRecurrence, type CatchUp, type SeriesCursor } from '../src/schedule/recurrence.js';
import { planSpawn } from '../src/schedule/spawn-plan.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

// ---- the oracle: its own wall-clock arithmetic with Intl, nothing from src/schedule/timezone.ts ----------

const formatters = new Map<string, Intl.DateTimeFormat>();
function wallOf(instant: number, tz: string): number {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    formatters.set(tz, f);
  }
  const p = Object.fromEntries(f.formatToParts(new Date(instant)).filter((x) => x.type !== 'literal').map((x) => [x.type, Number(x.value)]));
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!);
}

interface ZoneTable {
  /** Offset (wall minus UTC, ms) in effect before the first change. */
  initial: number;
  /** Offset changes: the instant and the offsets before and after it. */
  changes: { at: number; before: number; after: number }[];
}

const tables = new Map<string, ZoneTable>();
/** The zone's 2026 offset changes, found by sampling Intl every quarter hour (real changes fall on quarter hours). */
function zoneTable(tz: string): ZoneTable {
  let table = tables.get(tz);
  if (table) return table;
  const from = Date.UTC(2025, 11, 20);
  const initial = wallOf(from, tz) - from;
  const changes: ZoneTable['changes'] = [];
  let prev = initial;
  for (let t = from; t < Date.UTC(2027, 0, 10); t += 15 * MIN) {
    const off = wallOf(t, tz) - t;
    if (off !== prev) changes.push({ at: t, before: prev, after: off });
    prev = off;
  }
  table = { initial, changes };
  tables.set(tz, table);
  return table;
}

function offsetAt(instant: number, tz: string): number {
  const { initial, changes } = zoneTable(tz);
  let off = initial;
  for (const c of changes) if (c.at <= instant) off = c.after;
  return off;
}

/** RFC 5545: a wall time's instant; in a fold the first, in a gap the offset before the gap. */
function instantOf(wall: number, tz: string): number {
  const { initial, changes } = zoneTable(tz);
  const offsets = [...new Set([initial, ...changes.map((c) => c.after)])];
  const matches = offsets.map((o) => wall - o).filter((t) => offsetAt(t, tz) === wall - t).sort((a, b) => a - b);
  if (matches.length > 0) return matches[0]!;
  // A gap: the change whose skipped wall times hold this one; read it with the offset before.
  const gap = changes.find((c) => c.after > c.before && wall >= c.at + c.before && wall < c.at + c.after);
  if (!gap) throw new Error(`oracle: no instant for wall ${new Date(wall).toISOString()} in ${tz}`);
  return wall - gap.before;
}

/** 2026 offset changes of a zone (instants, to the quarter hour). */
function transitions(tz: string): number[] {
  return zoneTable(tz).changes.filter((c) => c.at >= Date.UTC(2026, 0, 1) && c.at < Date.UTC(2027, 0, 1)).map((c) => c.at);
}

interface Rule {
  name: string;
  rrule: string;
  /** The rule's wall slots from a dtstart wall time, by plain arithmetic. */
  walls(dtstart: number, until: number): number[];
}

const every = (stepMs: number) => (dtstart: number, until: number) => {
  const out: number[] = [];
  for (let w = dtstart; w <= until; w += stepMs) out.push(w);
  return out;
};

const RULES: Rule[] = [
  { name: 'MINUTELY/15', rrule: 'FREQ=MINUTELY;INTERVAL=15', walls: every(15 * MIN) },
  { name: 'MINUTELY/7', rrule: 'FREQ=MINUTELY;INTERVAL=7', walls: every(7 * MIN) },
  { name: 'HOURLY', rrule: 'FREQ=HOURLY', walls: every(HOUR) },
  { name: 'DAILY', rrule: 'FREQ=DAILY', walls: every(24 * HOUR) },
];

const ZONES = ['Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kathmandu'];
const MODES: CatchUp[] = ['all', 'latest', 'none'];
/** How often a worker comes by, in minutes: on time, late, after an outage. */
const VISITS = [1, 13, 50, 170];

const fmt = (wall: number) => new Date(wall).toISOString().slice(0, 19);

describe('recurrence across DST transitions', () => {
  for (const tz of ZONES) {
    const edges = tz === 'Asia/Kathmandu' ? [Date.UTC(2026, 5, 1, 12)] : transitions(tz);
    it(`${tz}: ${edges.length} transition(s) found`, () => expect(edges.length).toBeGreaterThan(0));
    for (const rule of RULES) {
      for (const mode of MODES) {
        it(`${tz} ${rule.name} catchUp=${mode}`, () => {
          for (const edge of edges) {
            for (const visit of VISITS) {
              // dtstart: a round wall time a few hours (a few days for DAILY) before the transition.
              const lead = rule.name === 'DAILY' ? 3 * 24 * HOUR : 4 * HOUR;
              const dtWall = Math.floor((wallOf(edge, tz) - lead) / HOUR) * HOUR + 30 * MIN;
              const endWall = dtWall + 2 * lead;
              const expected = [...new Set(rule.walls(dtWall, endWall + 3 * 24 * HOUR).map((w) => instantOf(w, tz)))].sort((a, b) => a - b);
              const { recurrence, cursor: first, at } = prepareRecurrence({ rrule: rule.rrule, dtstart: fmt(dtWall), tzid: tz, catchUp: mode });
              expect(at.getTime()).toBe(expected[0]);
              let cursor: SeriesCursor = first;
              let due = at.getTime();
              const spawned: number[] = [];
              let now = due;
              const endAt = instantOf(endWall, tz);
              while (now <= endAt) {
                const plan = planSpawn(recurrence, cursor, new Date(now), new Date(due));
                const owed = expected.filter((t) => t >= due && t <= now);
                const spawn = plan.spawn.map((d) => d.getTime());
                const where = `${tz} ${rule.name} ${mode} visit=${visit} now=${new Date(now).toISOString()}`;
                if (mode === 'all') expect(spawn, where).toEqual(owed.slice(0, 100));
                if (mode === 'latest') expect(spawn, where).toEqual(owed.length ? [owed[owed.length - 1]] : []);
                if (mode === 'none') expect(spawn, where).toEqual(owed.length === 1 ? owed : []);
                const dealt = mode === 'all' ? (owed.slice(0, 100).at(-1) ?? due - 1) : (owed.at(-1) ?? due - 1);
                const nextExpected = expected.find((t) => t > dealt);
                expect(plan.next?.at.getTime(), where).toBe(nextExpected);
                spawned.push(...spawn);
                cursor = plan.next!.cursor;
                due = plan.next!.at.getTime();
                now = Math.max(now + visit * MIN, due);
              }
              expect(new Set(spawned).size).toBe(spawned.length); // no instant twice
              expect([...spawned].sort((a, b) => a - b)).toEqual(spawned); // in order
              if (mode === 'all') expect(spawned).toEqual(expected.filter((t) => t <= spawned.at(-1)!));
            }
          }
        });
      }
    }
  }

  it('spring-forward with catchUp "all" plans each instant once (New York, MINUTELY/15)', () => {
    const { recurrence, cursor } = prepareRecurrence({ rrule: 'FREQ=MINUTELY;INTERVAL=15', dtstart: '2026-03-08T01:00', tzid: 'America/New_York', catchUp: 'all' });
    const plan = planSpawn(recurrence, cursor, new Date('2026-03-08T08:00:00Z'));
    const iso = plan.spawn.map((d) => d.toISOString().slice(11, 16));
    expect(iso).toEqual(['06:00', '06:15', '06:30', '06:45', '07:00', '07:15', '07:30', '07:45', '08:00']);
    expect(plan.next!.at.toISOString()).toBe('2026-03-08T08:15:00.000Z');
  });

  it('fall-back: "latest" spawns the newest due slot and "none" nothing (New York, MINUTELY/15)', () => {
    for (const catchUp of ['latest', 'none'] as const) {
      const { recurrence } = prepareRecurrence({ rrule: 'FREQ=MINUTELY;INTERVAL=15', dtstart: '2026-11-01T00:00', tzid: 'America/New_York', catchUp });
      // Due since 01:15 EDT (05:15Z); now is 01:10 EST (06:10Z): 01:15, 01:30, 01:45 EDT are all due.
      const plan = planSpawn(recurrence, { wall: '2026-11-01T01:15:00', index: 5 }, new Date('2026-11-01T06:10:00Z'));
      expect(plan.spawn.map((d) => d.toISOString())).toEqual(catchUp === 'latest' ? ['2026-11-01T05:45:00.000Z'] : []);
      expect(plan.next!.at.toISOString()).toBe('2026-11-01T07:00:00.000Z'); // 02:00 EST
    }
  });
});
