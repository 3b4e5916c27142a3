import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, InvalidOptionsError } from '../src/index.js';
import { Spawner } from '../src/schedule/spawner.js';
import { TaskStore } from '../src/store/task-store.js';
import { CLAIMABLE_STATUSES } from '../src/task-document.js';
import { defaultLogger } from '../src/logger.js';
import { useFirestore, waitFor } from './fixture.js';
import { makeManager, sleep, TEST_COLLECTION } from './support.js';

const db = useFirestore();

const report = defineTask({
  kind: 'report',
  schema: z.object({ account: z.string() }),
  id: (d) => `report:${d.account}`,
});

/** A wall time (UTC) `ms` from now, whole seconds. */
const wallIn = (ms: number) => new Date(Math.floor((Date.now() + ms) / 1000) * 1000);

describe('recurring tasks', () => {
  it('spawn occurrences with deterministic IDs, run by the kind handler with ctx.occurrence', async () => {
    const m = makeManager(db);
    const recurrence = { rrule: 'FREQ=SECONDLY;COUNT=3', dtstart: wallIn(1000), catchUp: 'all' as const };
    const { id, created } = await m.create(report, { account: 'a1' }, { recurrence });
    expect({ id, created }).toEqual({ id: 'report:a1', created: true });
    const gen = (await m.get(id))!;
    expect(gen.recurrence).toMatchObject({ rrule: 'FREQ=SECONDLY;COUNT=3', tzid: 'UTC', catchUp: 'all' });
    const seen: { id: string; slot: string; generatorId: string; data: unknown }[] = [];
    m.handle(report, (task, ctx) => {
      seen.push({ id: task.id, slot: ctx.occurrence!.slot.toISOString(), generatorId: ctx.occurrence!.generatorId, data: task.data });
    });
    m.start();
    await waitFor(async () => (await m.get(id))?.status === 'succeeded', { timeoutMs: 8000, message: 'generator ended after COUNT' });
    await waitFor(() => seen.length === 3);
    for (const s of seen) {
      expect(s.id).toBe(`report:a1_occ_${s.slot}`);
      expect(s.generatorId).toBe('report:a1');
      expect(s.data).toEqual({ account: 'a1' });
    }
    const occurrences = await waitFor(async () => {
      const list = await m.listOccurrences(id);
      return list.every((o) => o.status === 'succeeded') ? list : undefined;
    });
    expect(occurrences.map((o) => o.id)).toEqual(seen.map((s) => s.id).sort());
    expect(occurrences.every((o) => o.occurrence?.generatorId === id)).toBe(true);
  });

  it('refuses an invalid recurrence, or one with waitUntil, and writes nothing', async () => {
    const m = makeManager(db);
    await expect(m.create(report, { account: 'x' }, { recurrence: { rrule: 'FREQ=DAILY;BYHOUR=99', dtstart: new Date() } })).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(m.create(report, { account: 'x' }, { recurrence: { rrule: 'FREQ=DAILY', dtstart: new Date(), tzid: 'Nowhere/Land' } })).rejects.toThrow(/time zone/);
    await expect(
      m.create(report, { account: 'x' }, { recurrence: { rrule: 'FREQ=DAILY', dtstart: new Date() }, waitUntil: new Date() }),
    ).rejects.toThrow(/not both/);
    const longId = defineTask({ kind: 'report', schema: z.object({ n: z.number() }), id: () => 'x'.repeat(480) });
    await expect(m.create(longId, { n: 1 }, { recurrence: { rrule: 'FREQ=DAILY', dtstart: new Date() } })).rejects.toThrow(/at most 470 bytes/);
    expect(await m.get('report:x')).toBeNull();
  });

  it('stores slot times as UTC Timestamps computed in the time zone', async () => {
    const m = makeManager(db);
    await m.create(report, { account: 'b' }, { recurrence: { rrule: 'FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0', dtstart: '2030-03-20T00:00', tzid: 'Europe/Berlin' } });
    const gen = (await m.get('report:b'))!;
    expect(gen.waitUntil.toISOString()).toBe('2030-03-25T08:00:00.000Z'); // Monday 09:00 CET
    const [raw] = (await db.collection(TEST_COLLECTION).where('env', '==', m.env).get()).docs;
    expect(raw!.get('waitUntil').constructor.name).toBe('Timestamp');
  });

  it('gives one occurrence per slot when two workers spawn the same slot', async () => {
    const m = makeManager(db);
    await m.create(report, { account: 'c' }, { recurrence: { rrule: 'FREQ=HOURLY', dtstart: wallIn(-1000) } });
    const store = new TaskStore(db, TEST_COLLECTION, m.env);
    const [candidate] = (await store.findClaimable('report', CLAIMABLE_STATUSES, new Date(), 5)).tasks;
    const log = defaultLogger();
    const [a, b] = await Promise.all([new Spawner(store, 1e9, log).spawn(candidate!), new Spawner(store, 1e9, log).spawn(candidate!)]);
    expect([a, b].sort()).toEqual(['conflict', 'moved']);
    // A repeated spawn from the same (now stale) read creates nothing either.
    expect(await new Spawner(store, 1e9, log).spawn(candidate!)).toBe('conflict');
    expect(await m.listOccurrences('report:c')).toHaveLength(1);
    expect((await m.get('report:c'))!.waitUntil.getTime()).toBeGreaterThan(Date.now() + 3000_000);
  });

  it('moves on without an error when the occurrence exists already', async () => {
    const m = makeManager(db);
    const dtstart = wallIn(-1000);
    await m.create(report, { account: 'd' }, { recurrence: { rrule: 'FREQ=HOURLY', dtstart } });
    const store = new TaskStore(db, TEST_COLLECTION, m.env);
    const [candidate] = (await store.findClaimable('report', CLAIMABLE_STATUSES, new Date(), 5)).tasks;
    // Someone created the slot's occurrence by hand (or a spawn landed without us seeing it).
    const occId = `report:d_occ_${dtstart.toISOString()}`;
    await m.create(defineTask({ kind: 'report', schema: z.object({ n: z.number() }), id: () => occId }), { n: 1 });
    expect(await new Spawner(store, 1e9, defaultLogger()).spawn(candidate!)).toBe('moved');
    expect((await m.get(occId))!.data).toEqual({ n: 1 }); // left as it was
    expect((await m.get('report:d'))!.waitUntil.getTime()).toBeGreaterThan(Date.now());
  });

  it.each([
    ['latest', 1],
    ['all', 6],
    ['none', 0],
  ] as const)('catches up missed slots with catchUp "%s" after an outage', async (catchUp, expected) => {
    const m = makeManager(db);
    // Hourly since 5 h 10 min ago: 6 slots are due when the first worker starts.
    const dtstart = wallIn(-(5 * 3600_000 + 600_000));
    await m.create(report, { account: 'e' }, { recurrence: { rrule: 'FREQ=HOURLY', dtstart, catchUp } });
    m.handle(report, () => undefined);
    m.start();
    await waitFor(async () => (await m.get('report:e'))!.waitUntil.getTime() > Date.now(), { message: 'generator moved to a future slot' });
    await sleep(300);
    const occurrences = await m.listOccurrences('report:e');
    expect(occurrences).toHaveLength(expected);
    if (catchUp === 'latest') expect(occurrences[0]!.occurrence!.slot.getTime()).toBe(dtstart.getTime() + 5 * 3600_000);
    expect((await m.get('report:e'))!.waitUntil.getTime()).toBe(dtstart.getTime() + 6 * 3600_000);
  });

  it('stops spawning when the generator is cancelled; spawned occurrences go on and can be cancelled', async () => {
    const m = makeManager(db);
    await m.create(report, { account: 'f' }, { recurrence: { rrule: 'FREQ=SECONDLY', dtstart: wallIn(0) } });
    const ran: string[] = [];
    m.handle(report, async (task) => {
      ran.push(task.id);
      await sleep(task.id.endsWith('Z') && ran.length === 1 ? 1500 : 0);
    }, { concurrency: 2 });
    m.start();
    await waitFor(async () => (await m.listOccurrences('report:f')).length >= 2, { timeoutMs: 8000 });
    expect(await m.cancel('report:f')).toBe(1);
    expect((await m.get('report:f'))!.status).toBe('cancelled');
    const spawned = (await m.listOccurrences('report:f')).length;
    await sleep(2500);
    const after = await m.listOccurrences('report:f');
    expect(after.length).toBe(spawned); // no new slots
    await waitFor(async () => (await m.listOccurrences('report:f')).every((o) => o.status === 'succeeded'), { timeoutMs: 8000 });
    const one = after[after.length - 1]!;
    expect(await m.cancel(one.id)).toBe(0); // already finished: nothing to cancel
  });

  it('spawns each slot once with several workers', async () => {
    const first = makeManager(db);
    const workers = [first, makeManager(db, { env: first.env }), makeManager(db, { env: first.env })];
    await first.create(report, { account: 'g' }, { recurrence: { rrule: 'FREQ=SECONDLY;COUNT=4', dtstart: wallIn(0) } });
    const runs = new Map<string, number>();
    for (const w of workers) {
      w.handle(report, (task) => void runs.set(task.id, (runs.get(task.id) ?? 0) + 1), { concurrency: 2 });
      w.start();
    }
    await waitFor(async () => (await first.get('report:g'))?.status === 'succeeded', { timeoutMs: 10_000 });
    await waitFor(async () => (await first.listOccurrences('report:g')).filter((o) => o.status === 'succeeded').length === 4);
    expect([...runs.values()]).toEqual([1, 1, 1, 1]);
  });
});
