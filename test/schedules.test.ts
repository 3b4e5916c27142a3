/**
 * Schedules on the emulator: cron and interval generators, upsertSchedule, runScheduleNow,
 * pause/resume with each catchUp, overlap "skip" and listSchedules. Most tests drive spawns by
 * hand with a fake clock (a Spawner as a worker has one), so they are exact and fast; two run
 * real workers (one of them in two child processes).
 */
import { FieldValue } from '@google-cloud/firestore';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, InvalidOptionsError, InvalidStateError, TaskNotFoundError, type OnceTaskManager } from '../src/index.js';
import { defaultLogger } from '../src/logger.js';
import { PAUSED_UNTIL, Spawner } from '../src/schedule/spawner.js';
import { TaskStore } from '../src/store/task-store.js';
import { CLAIMABLE_STATUSES } from '../src/task-document.js';
import { useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager, sleep, startWorkerProcess, TEST_COLLECTION } from './support.js';

const db = useFirestore();

const report = defineTask({ kind: 'report', schema: z.object({ account: z.string(), note: z.string().optional() }), id: (d) => `report:${d.account}` });
const ranked = defineTask({
  kind: 'ranked',
  schema: z.object({ account: z.string() }),
  id: (d) => `ranked:${d.account}`,
  labels: (d) => ({ tenant: d.account }),
  priority: () => 7,
});

const MIN = 60_000;
/** 2026-01-01T00:00:00Z: a whole minute, so `every: '1m'` slots fall on minutes. */
const T0 = Date.UTC(2026, 0, 1);
const iso = (ms: number) => new Date(ms).toISOString();

/** A manager on a fake clock, and a spawner on the same clock standing for a worker of `kinds`. */
function fakeTime(start = T0) {
  const clock = { t: start };
  const m = makeManager(db, { clock: () => clock.t });
  const store = new TaskStore(db, TEST_COLLECTION, m.env);
  const spawner = new Spawner(store, 1e9, defaultLogger(), () => clock.t);
  return {
    m,
    clock,
    store,
    /** Spawns what the generators of `kind` due at the fake now owe, as a worker would. Returns how many generators were due. */
    async tick(kind = 'report'): Promise<number> {
      const { tasks } = await store.findClaimable(kind, CLAIMABLE_STATUSES, new Date(clock.t), 20);
      const due = tasks.filter((t) => t.task.recurrence !== null);
      for (const candidate of due) await spawner.spawn(candidate);
      return due.length;
    },
    /** Spawns a generator read now, due or not (as a worker would after `retryNow`). */
    async spawnRead(id: string) {
      const read = await store.readDoc(store.docId(id));
      if (!read?.decoded.ok) throw new Error(`cannot read ${id}`);
      return spawner.spawn({ docId: read.docId, task: read.decoded.task, updateTime: read.updateTime });
    },
    raw: async (id: string) => (await db.collection(TEST_COLLECTION).doc(store.docId(id)).get()).data()!,
    setRaw: (id: string, fields: Record<string, unknown>) => db.collection(TEST_COLLECTION).doc(store.docId(id)).update(fields),
  };
}

const slotsOf = async (m: OnceTaskManager, id: string) => (await m.listOccurrences(id)).map((o) => iso(o.occurrence!.slot.getTime()));

describe('cron and interval generators', () => {
  it('create takes cron and every, stores what was given and starts at the right slot', async () => {
    const { m } = fakeTime(Date.parse('2026-03-26T12:00:00.500Z')); // a Thursday, 13:00 in Berlin
    await m.create(report, { account: 'cron' }, { recurrence: { cron: '0 9 * * MON-FRI', tzid: 'Europe/Berlin' } });
    const cron = (await m.get('report:cron'))!;
    expect(cron.waitUntil.toISOString()).toBe('2026-03-27T08:00:00.000Z'); // Friday 09:00 CET
    expect(cron.recurrence).toEqual({
      rrule: 'FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0;BYSECOND=0',
      dtstart: '2026-03-26T13:00:00',
      tzid: 'Europe/Berlin',
      exdates: [],
      catchUp: 'latest',
      cron: '0 9 * * MON-FRI',
      every: null,
      overlap: 'allow',
    });
    await m.create(report, { account: 'every' }, { recurrence: { every: '15m', overlap: 'skip' } });
    const every = (await m.get('report:every'))!;
    expect(every.waitUntil.toISOString()).toBe('2026-03-26T12:15:00.000Z');
    expect(every.recurrence).toMatchObject({ rrule: 'FREQ=MINUTELY;INTERVAL=15', tzid: 'UTC', every: '15m', cron: null, overlap: 'skip' });
    await expect(m.create(report, { account: 'bad' }, { recurrence: { cron: '0 9 1 * MON' } })).rejects.toThrow(/Split it into two schedules/);
    await expect(m.create(report, { account: 'bad' }, { recurrence: { every: '15 min' } })).rejects.toBeInstanceOf(InvalidOptionsError);
    expect(await m.get('report:bad')).toBeNull();
  });

  it('decodes generators stored before cron, every, overlap, lastSpawn and the marker existed; their next spawn marks them', async () => {
    const { m, clock, tick, setRaw, raw } = fakeTime();
    await m.create(report, { account: 'old' }, { recurrence: { rrule: 'FREQ=MINUTELY', dtstart: new Date(T0 + MIN) } });
    const del = FieldValue.delete();
    await setRaw('report:old', { generator: del, 'recurrence.cron': del, 'recurrence.every': del, 'recurrence.overlap': del, lastSpawn: del, paused: del });
    expect(Object.keys((await raw('report:old')).recurrence as object).sort()).toEqual(['catchUp', 'dtstart', 'exdates', 'rrule', 'tzid']);
    expect((await m.get('report:old'))!.recurrence).toMatchObject({ rrule: 'FREQ=MINUTELY', cron: null, every: null, overlap: 'allow' });
    expect(await m.listSchedules()).toEqual([]);
    clock.t = T0 + MIN;
    expect(await tick()).toBe(1);
    const [listed] = await m.listSchedules();
    expect(listed).toMatchObject({ id: 'report:old', lastSpawn: { slot: new Date(T0 + MIN), at: new Date(T0 + MIN), occurrenceId: `report:old_occ_${iso(T0 + MIN)}` } });
  });

  it('occurrences inherit the generator\'s priority and labels (spawned and run-now ones)', async () => {
    const { m, clock, tick } = fakeTime();
    await m.upsertSchedule(ranked, { account: 'acme' }, { every: '1m' });
    const generator = (await m.get('ranked:acme'))!;
    expect(generator).toMatchObject({ priority: 7, labels: { tenant: 'acme' } });
    expect(generator.waitUntil.toISOString()).toBe(iso(T0 + MIN)); // a generator's own queue position is its slot
    clock.t = T0 + MIN;
    await tick('ranked');
    const [occurrence] = await m.listOccurrences('ranked:acme');
    expect(occurrence).toMatchObject({ priority: 7, labels: { tenant: 'acme' }, waitUntil: new Date(T0 + MIN - 7000) }); // its queue position, 7 priority steps ahead
    const { id } = await m.runScheduleNow('ranked:acme');
    expect(await m.get(id)).toMatchObject({ priority: 7, labels: { tenant: 'acme' } });
    // create() with a priority option: the generator is still due at its slot.
    await m.create(report, { account: 'p' }, { recurrence: { every: '1m' }, priority: 50 });
    expect((await m.get('report:p'))!).toMatchObject({ priority: 50, waitUntil: new Date(T0 + 2 * MIN) });
  });
});

describe('upsertSchedule', () => {
  it('creates, leaves an unchanged generator unwritten, changes one in place after its last spawn, and replaces an ended one', async () => {
    const { m, clock, tick } = fakeTime();
    expect(await m.upsertSchedule(report, { account: 'u' }, { every: '1m' })).toEqual({ id: 'report:u', outcome: 'created' });
    expect((await m.get('report:u'))!.waitUntil.toISOString()).toBe(iso(T0 + MIN));
    clock.t = T0 + 20_000;
    const writes = m.stats().writes;
    expect(await m.upsertSchedule(report, { account: 'u' }, { every: 60_000 })).toEqual({ id: 'report:u', outcome: 'unchanged' }); // the same interval, and "from now" is no change
    expect(m.stats().writes).toBe(writes);

    clock.t = T0 + MIN;
    await tick();
    expect(await slotsOf(m, 'report:u')).toEqual([iso(T0 + MIN)]);
    // Only the payload changes: the generator stays at its slot, the next occurrence gets it.
    clock.t = T0 + MIN + 5000;
    expect((await m.upsertSchedule(report, { account: 'u', note: 'v2' }, { every: '1m' })).outcome).toBe('updated');
    expect((await m.get('report:u'))!).toMatchObject({ waitUntil: new Date(T0 + 2 * MIN), data: { account: 'u', note: 'v2' } });
    // The rule changes: planned from now, strictly after the last spawned slot.
    clock.t = T0 + MIN + 10_000;
    expect((await m.upsertSchedule(report, { account: 'u', note: 'v2' }, { cron: '*/5 * * * *' })).outcome).toBe('updated');
    expect((await m.get('report:u'))!.waitUntil.toISOString()).toBe(iso(T0 + 5 * MIN));
    expect((await m.get('report:u'))!.recurrence).toMatchObject({ cron: '*/5 * * * *', every: null });
    // A rule whose series holds the last spawned slot (and earlier ones) goes on after it, from now.
    expect((await m.upsertSchedule(report, { account: 'u', note: 'v2' }, { rrule: 'FREQ=MINUTELY', dtstart: new Date(T0 + MIN) })).outcome).toBe('updated');
    expect((await m.get('report:u'))!.waitUntil.toISOString()).toBe(iso(T0 + 2 * MIN));
    clock.t = T0 + 2 * MIN;
    await tick();
    const occurrences = await m.listOccurrences('report:u');
    expect(occurrences.map((o) => [iso(o.occurrence!.slot.getTime()), o.data])).toEqual([
      [iso(T0 + MIN), { account: 'u' }], // spawned before the change: untouched
      [iso(T0 + 2 * MIN), { account: 'u', note: 'v2' }],
    ]);

    // Ended: replaced by a fresh generator, first slot after the old one's last spawn.
    expect(await m.cancel('report:u')).toBe(1);
    clock.t = T0 + 2 * MIN + 1000;
    expect(await m.upsertSchedule(report, { account: 'u' }, { rrule: 'FREQ=MINUTELY', dtstart: new Date(T0) })).toEqual({ id: 'report:u', outcome: 'created' });
    const fresh = (await m.get('report:u'))!;
    expect(fresh).toMatchObject({ status: 'pending', cancelRequested: false, attempts: 0, waitUntil: new Date(T0 + 3 * MIN), data: { account: 'u' } });
    expect(await m.listSchedules()).toMatchObject([{ id: 'report:u', lastSpawn: { slot: new Date(T0 + 2 * MIN) }, nextSlot: new Date(T0 + 3 * MIN) }]);
  });

  it('refuses a task that is not a generator, another kind\'s task, and a bad recurrence, writing nothing', async () => {
    const { m } = fakeTime();
    await m.create(report, { account: 'plain' });
    await expect(m.upsertSchedule(report, { account: 'plain' }, { every: '1m' })).rejects.toThrow(/is not a recurring generator/);
    const clash = defineTask({ kind: 'other', schema: z.object({ account: z.string() }), id: (d) => `report:${d.account}` });
    await expect(m.upsertSchedule(clash, { account: 'plain' }, { every: '1m' })).rejects.toBeInstanceOf(InvalidStateError);
    await expect(m.upsertSchedule(report, { account: 'x' }, { every: '1m', tzid: 'UTC' } as never)).rejects.toThrow(/unknown option "tzid"/);
    await expect(m.upsertSchedule(report, { account: 'x' }, undefined as never)).rejects.toBeInstanceOf(InvalidOptionsError);
    expect(await m.get('report:x')).toBeNull();
    expect((await m.get('report:plain'))!.recurrence).toBeNull();
  });

  it('changes a running schedule without a duplicate occurrence, with workers in two processes and two managers upserting at once', async () => {
    const m = makeManager(db);
    const other = makeManager(db, { env: m.env });
    const ledger = `ledger-${m.env}`;
    await Promise.all([startWorkerProcess(m.env, ledger, { POLL_MS: '50' }), startWorkerProcess(m.env, ledger, { POLL_MS: '50' })]);
    expect((await m.upsertSchedule(jobTask, { n: 1 }, { every: '1s' })).outcome).toBe('created');
    await waitFor(async () => (await m.listOccurrences('job-1')).length >= 3, { timeoutMs: 15_000, message: 'three occurrences every second' });
    const changedAt = Date.now();
    const outcomes = await Promise.all([m, other].map((x) => x.upsertSchedule(jobTask, { n: 1, sleepMs: 5 }, { every: '2s' })));
    expect(outcomes.map((o) => o.outcome).sort()).toEqual(['unchanged', 'updated']);
    const lastBefore = (await m.listSchedules())[0]!.lastSpawn!.slot.getTime();
    await waitFor(async () => (await m.listOccurrences('job-1')).filter((o) => o.occurrence!.slot.getTime() > changedAt).length >= 3, { timeoutMs: 15_000, message: 'three occurrences of the new rule' });
    await m.pauseSchedule('job-1'); // nothing more from here
    await waitFor(async () => (await m.listOccurrences('job-1')).every((o) => o.status === 'succeeded'), { timeoutMs: 10_000, message: 'all occurrences ran' });

    const occurrences = await m.listOccurrences('job-1');
    const slots = occurrences.map((o) => o.occurrence!.slot.getTime());
    for (let i = 1; i < slots.length; i++) expect(slots[i]! - slots[i - 1]!, `slots ${i - 1} and ${i}`).toBeGreaterThanOrEqual(1000);
    const newer = occurrences.filter((o) => o.occurrence!.slot.getTime() > lastBefore);
    expect(newer[0]!.occurrence!.slot.getTime()).toBeGreaterThanOrEqual(changedAt); // from the change on, after the last old slot
    // Every 2 s from then on (a multiple of 2 s if a busy machine made the workers miss one: catchUp "latest").
    for (let i = 1; i < newer.length; i++) expect((newer[i]!.occurrence!.slot.getTime() - newer[i - 1]!.occurrence!.slot.getTime()) % 2000).toBe(0);
    expect(newer[1]!.occurrence!.slot.getTime() - newer[0]!.occurrence!.slot.getTime()).toBeGreaterThanOrEqual(2000);
    for (const o of newer) expect(o.data).toEqual({ n: 1, sleepMs: 5 });
    for (const o of occurrences.filter((o) => o.occurrence!.slot.getTime() <= lastBefore)) expect(o.data).toEqual({ n: 1 });
    // Each occurrence ran once, in one of the two processes.
    const runs = (await db.collection(ledger).get()).docs.map((d) => d.get('taskId') as string);
    expect(runs.sort()).toEqual(occurrences.map((o) => o.id).sort());
  }, 60_000);
});

describe('runScheduleNow', () => {
  it('spawns one extra occurrence now with its own ID, without moving the generator; a worker runs it', async () => {
    const m = makeManager(db);
    await m.upsertSchedule(report, { account: 'now' }, { every: '1h' });
    const before = (await m.get('report:now'))!;
    const ran: { id: string; generatorId: string }[] = [];
    m.handle(report, (task, ctx) => void ran.push({ id: task.id, generatorId: ctx.occurrence!.generatorId }));
    m.start();
    const t = Date.now();
    const { id } = await m.runScheduleNow('report:now');
    expect(id).toMatch(/^report:now_now_\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const slot = Date.parse(id.slice('report:now_now_'.length));
    expect(slot).toBeGreaterThanOrEqual(t - 5);
    // (The handler has run once its outcome is written; `ran` fills a moment before.)
    const done = await waitFor(async () => {
      const t = await m.get(id);
      return t?.status === 'succeeded' ? t : undefined;
    });
    expect(ran).toEqual([{ id, generatorId: 'report:now' }]);
    expect(done).toMatchObject({ data: { account: 'now' }, occurrence: { generatorId: 'report:now', slot: new Date(slot) } });
    const after = (await m.get('report:now'))!;
    expect(after.waitUntil).toEqual(before.waitUntil);
    expect((await m.listSchedules())[0]!.lastSpawn).toBeNull();
    expect((await m.listOccurrences('report:now')).map((o) => o.id)).toEqual([id]);
  });

  it('refuses a missing task, a task that is not a generator and an ended generator', async () => {
    const m = makeManager(db);
    await expect(m.runScheduleNow('report:none')).rejects.toBeInstanceOf(TaskNotFoundError);
    await m.create(report, { account: 'plain' });
    await expect(m.runScheduleNow('report:plain')).rejects.toThrow(/is not a recurring generator/);
    await m.upsertSchedule(report, { account: 'gone' }, { every: '1h' });
    await m.cancel('report:gone');
    await expect(m.runScheduleNow('report:gone')).rejects.toThrow(/has ended/);
    await expect(m.pauseSchedule('report:gone')).rejects.toBeInstanceOf(InvalidStateError);
    await expect(m.pauseSchedule('report:none')).rejects.toBeInstanceOf(TaskNotFoundError);
  });
});

describe('pauseSchedule and resumeSchedule', () => {
  it.each([
    ['latest', [1, 5]],
    ['all', [1, 2, 3, 4, 5]],
    ['none', [1]],
  ] as const)('a paused generator spawns nothing; on resume catchUp "%s" decides about the missed slots', async (catchUp, minutes) => {
    const { m, clock, tick, spawnRead } = fakeTime();
    await m.upsertSchedule(report, { account: 'p' }, { every: '1m', catchUp });
    clock.t = T0 + MIN;
    await tick();
    expect(await slotsOf(m, 'report:p')).toEqual([iso(T0 + MIN)]);
    clock.t = T0 + MIN + 10_000;
    expect(await m.pauseSchedule('report:p')).toBe(true);
    expect(await m.pauseSchedule('report:p')).toBe(false);
    expect((await m.listSchedules())[0]).toMatchObject({ paused: true, pausedAt: new Date(T0 + MIN + 10_000), nextSlot: new Date(T0 + 2 * MIN) });
    expect((await m.get('report:p'))!.waitUntil).toEqual(PAUSED_UNTIL);

    clock.t = T0 + 5 * MIN + 30_000; // slots 2, 3, 4 and 5 pass while paused
    expect(await tick()).toBe(0); // not due for any worker
    await m.retryNow('report:p'); // made due by hand: a worker parks it again, spawning nothing
    expect(await tick()).toBe(1);
    expect(await spawnRead('report:p')).toBe('moved');
    expect(await slotsOf(m, 'report:p')).toEqual([iso(T0 + MIN)]);
    expect((await m.get('report:p'))!.waitUntil).toEqual(PAUSED_UNTIL);

    expect(await m.resumeSchedule('report:p')).toBe(true);
    expect(await m.resumeSchedule('report:p')).toBe(false);
    expect((await m.get('report:p'))!.waitUntil.toISOString()).toBe(iso(T0 + 2 * MIN));
    expect(await tick()).toBe(1);
    expect(await slotsOf(m, 'report:p')).toEqual(minutes.map((n) => iso(T0 + n * MIN)));
    expect((await m.listSchedules())[0]).toMatchObject({ paused: false, pausedAt: null, nextSlot: new Date(T0 + 6 * MIN) });
  });
});

describe('overlap "skip"', () => {
  it('spawns no slot while the previous occurrence is open, and moves past it', async () => {
    const { m, clock, tick, setRaw } = fakeTime();
    await m.upsertSchedule(report, { account: 'skip' }, { every: '1m', overlap: 'skip' });
    await m.upsertSchedule(report, { account: 'allow' }, { every: '1m' });
    clock.t = T0 + MIN;
    await tick();
    clock.t = T0 + 2 * MIN; // the first occurrences are still pending
    await tick();
    expect(await slotsOf(m, 'report:skip')).toEqual([iso(T0 + MIN)]);
    expect(await slotsOf(m, 'report:allow')).toEqual([iso(T0 + MIN), iso(T0 + 2 * MIN)]);
    const skip = (await m.listSchedules({ kind: report })).find((s) => s.id === 'report:skip');
    expect(skip).toMatchObject({ id: 'report:skip', nextSlot: new Date(T0 + 3 * MIN), lastSpawn: { slot: new Date(T0 + MIN) } });
    await setRaw(`report:skip_occ_${iso(T0 + MIN)}`, { status: 'succeeded' });
    clock.t = T0 + 3 * MIN;
    await tick();
    expect(await slotsOf(m, 'report:skip')).toEqual([iso(T0 + MIN), iso(T0 + 3 * MIN)]);
  });

  it('never runs two occurrences at once with a real worker', async () => {
    const m = makeManager(db);
    const runs: [number, number][] = [];
    m.handle(report, async () => {
      const start = Date.now();
      await sleep(1300);
      runs.push([start, Date.now()]);
    }, { concurrency: 4 });
    m.start();
    await m.upsertSchedule(report, { account: 'slow' }, { every: '1s', overlap: 'skip' });
    await waitFor(() => runs.length >= 2, { timeoutMs: 10_000 });
    await m.pauseSchedule('report:slow');
    for (let i = 1; i < runs.length; i++) expect(runs[i]![0]).toBeGreaterThanOrEqual(runs[i - 1]![1]);
    // Slots were skipped: fewer occurrences than seconds passed.
    const occurrences = await m.listOccurrences('report:slow');
    const span = occurrences[occurrences.length - 1]!.occurrence!.slot.getTime() - occurrences[0]!.occurrence!.slot.getTime();
    expect(occurrences.length).toBeLessThan(span / 1000 + 1);
  }, 20_000);
});

describe('listSchedules', () => {
  it('lists generators by next slot with what they were given, by kind, with a limit', async () => {
    const start = Date.parse('2026-06-01T12:00:00Z'); // a Monday
    const { m, clock } = fakeTime(start);
    const other = defineTask({ kind: 'other', schema: z.object({}), id: () => 'other:hourly' });
    await m.create(report, { account: 'cron' }, { recurrence: { cron: '0 9 * * MON-FRI', tzid: 'Europe/Berlin', catchUp: 'none' } });
    await m.upsertSchedule(report, { account: 'every' }, { every: '15m', overlap: 'skip' });
    await m.create(other, {}, { recurrence: { rrule: 'FREQ=HOURLY', dtstart: '2026-06-01T13:00' } });
    await m.upsertSchedule(report, { account: 'paused' }, { every: '1m' });
    await m.pauseSchedule('report:paused');
    await m.create(report, { account: 'plain' });
    await m.upsertSchedule(report, { account: 'ended' }, { every: '1h' });
    clock.t = start + 1000;
    await m.cancel('report:ended'); // no worker here: cancelling, due now

    const all = await m.listSchedules();
    expect(all.map((s) => s.id)).toEqual(['report:ended', 'report:every', 'other:hourly', 'report:cron', 'report:paused']);
    expect(all[3]).toEqual({
      id: 'report:cron',
      kind: 'report',
      status: 'pending',
      rule: 'FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0;BYSECOND=0',
      cron: '0 9 * * MON-FRI',
      every: null,
      tzid: 'Europe/Berlin',
      nextSlot: new Date('2026-06-02T07:00:00Z'), // Tuesday 09:00 CEST
      lastSpawn: null,
      paused: false,
      pausedAt: null,
      overlap: 'allow',
      catchUp: 'none',
    });
    expect(all[1]).toMatchObject({ every: '15m', cron: null, rule: 'FREQ=MINUTELY;INTERVAL=15', tzid: 'UTC', overlap: 'skip', nextSlot: new Date(start + 15 * MIN) });
    expect(all[4]).toMatchObject({ paused: true, pausedAt: new Date(start), nextSlot: new Date(start + MIN) });
    expect(all[0]).toMatchObject({ status: 'cancelling', nextSlot: null, paused: false });
    expect((await m.listSchedules({ kind: 'other' })).map((s) => s.id)).toEqual(['other:hourly']);
    expect((await m.listSchedules({ kind: report, limit: 2 })).map((s) => s.id)).toEqual(['report:ended', 'report:every']);
    await expect(m.listSchedules({ limt: 2 } as never)).rejects.toThrow(/unknown option "limt" \(did you mean "limit"\?\)/);
    await expect(m.listSchedules({ limit: 0 })).rejects.toBeInstanceOf(InvalidOptionsError);
  });
});
