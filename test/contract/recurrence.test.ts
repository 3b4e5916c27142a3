/** Contract: recurring generators — rrule, cron and every slots under advance; upsertSchedule; pause/resume; cancel. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, InvalidOptionsError } from '../../src/index.js';
import { BACKENDS, START, useKits } from './backends.js';

const report = defineTask({ kind: 'report', schema: z.object({ account: z.string(), note: z.string().optional() }), id: (d) => `report:${d.account}` });

const MIN = 60_000;
const t = (offsetMs: number): string => new Date(START.getTime() + offsetMs).toISOString();

describe.each(BACKENDS)('%s backend', (backend) => {
  const newKit = useKits(backend);

  /** A kit whose manager records each occurrence as `slot ISO` (and its payload note). */
  async function recording() {
    const kit = await newKit();
    const tasks = kit.manager();
    const slots: string[] = [];
    const notes: (string | undefined)[] = [];
    tasks.handle(report, (task, ctx) => {
      slots.push(ctx.occurrence!.slot.toISOString());
      notes.push(task.data.note);
      return task.id;
    });
    return { kit, tasks, slots, notes };
  }

  it('rrule: one occurrence per slot, in the time zone, with the slot in its ID', async () => {
    const { kit, tasks, slots } = await recording();
    // 09:00 in New York (EDT, UTC-4 in June): 13:00Z; START is 10:00Z on a Monday.
    await tasks.create(report, { account: 'acme' }, { recurrence: { rrule: 'FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0', dtstart: START, tzid: 'America/New_York' } });
    expect(await tasks.get('report:acme')).toMatchObject({ status: 'pending', waitUntil: new Date('2026-06-01T13:00:00.000Z') });

    await kit.advance('3d');

    expect(slots).toEqual(['2026-06-01T13:00:00.000Z', '2026-06-02T13:00:00.000Z', '2026-06-03T13:00:00.000Z']);
    const occurrences = await tasks.listOccurrences('report:acme');
    expect(occurrences.map((o) => [o.id, o.status, o.occurrence!.slot.toISOString()])).toEqual([
      ['report:acme_occ_2026-06-01T13:00:00.000Z', 'succeeded', '2026-06-01T13:00:00.000Z'],
      ['report:acme_occ_2026-06-02T13:00:00.000Z', 'succeeded', '2026-06-02T13:00:00.000Z'],
      ['report:acme_occ_2026-06-03T13:00:00.000Z', 'succeeded', '2026-06-03T13:00:00.000Z'],
    ]);
    expect(await tasks.get('report:acme')).toMatchObject({ status: 'pending', waitUntil: new Date('2026-06-04T13:00:00.000Z') });
  });

  it('cron: every 15 minutes from the create', async () => {
    const { kit, tasks, slots } = await recording();
    await tasks.create(report, { account: 'acme' }, { recurrence: { cron: '*/15 * * * *' } });

    await kit.advance('1h');

    expect(slots).toEqual([t(0), t(15 * MIN), t(30 * MIN), t(45 * MIN), t(60 * MIN)]);
  });

  it('every: one interval after the create, then every interval; an rrule with COUNT ends its generator succeeded', async () => {
    const { kit, tasks } = await recording();
    await tasks.create(report, { account: 'every' }, { recurrence: { every: '30m' } });
    await tasks.create(report, { account: 'thrice' }, { recurrence: { rrule: 'FREQ=HOURLY;COUNT=3', dtstart: START } });

    await kit.advance('2h');

    expect((await tasks.listOccurrences('report:every')).map((o) => o.occurrence!.slot.toISOString())).toEqual([t(30 * MIN), t(60 * MIN), t(90 * MIN), t(120 * MIN)]);
    expect((await tasks.listOccurrences('report:thrice')).map((o) => o.occurrence!.slot.toISOString())).toEqual([t(0), t(60 * MIN), t(120 * MIN)]);
    expect((await tasks.get('report:thrice'))!.status).toBe('succeeded');
    expect((await tasks.get('report:every'))!.status).toBe('pending');
  });

  it('catchUp: after an outage "latest" spawns the newest missed slot only, "all" every one', async () => {
    const kit = await newKit();
    const producer = kit.manager();
    await producer.create(report, { account: 'latest' }, { recurrence: { every: '10m' } });
    await producer.create(report, { account: 'all' }, { recurrence: { every: '10m', catchUp: 'all' } });
    await kit.advance('35m'); // no worker of the kind: slots at 10, 20, 30 come due unspawned
    expect(await producer.listOccurrences('report:latest')).toEqual([]);

    kit.manager().handle(report, () => undefined);
    await kit.drain();

    expect((await producer.listOccurrences('report:latest')).map((o) => o.occurrence!.slot.toISOString())).toEqual([t(30 * MIN)]);
    expect((await producer.listOccurrences('report:all')).map((o) => o.occurrence!.slot.toISOString())).toEqual([t(10 * MIN), t(20 * MIN), t(30 * MIN)]);
  });

  it('upsertSchedule: created, then unchanged (nothing written), then updated in place without a duplicate slot', async () => {
    const { kit, tasks, slots, notes } = await recording();
    const rule = { cron: '0 * * * *' } as const;
    expect(await tasks.upsertSchedule(report, { account: 'acme' }, rule)).toEqual({ id: 'report:acme', outcome: 'created' });
    const writes = tasks.stats().writes;
    expect(await tasks.upsertSchedule(report, { account: 'acme' }, rule)).toEqual({ id: 'report:acme', outcome: 'unchanged' });
    expect(tasks.stats().writes).toBe(writes);

    await kit.advance('90m'); // to 11:30: slots 10:00 (the create's own minute) and 11:00
    expect(await tasks.upsertSchedule(report, { account: 'acme', note: 'v2' }, rule)).toEqual({ id: 'report:acme', outcome: 'updated' });
    // A changed rule is planned from now (11:30 is due at once) and after the last spawned slot.
    expect(await tasks.upsertSchedule(report, { account: 'acme', note: 'v3' }, { cron: '0,30 * * * *' })).toEqual({ id: 'report:acme', outcome: 'updated' });
    await kit.advance('60m');

    expect(slots).toEqual([t(0), t(60 * MIN), t(90 * MIN), t(120 * MIN), t(150 * MIN)]);
    expect(notes).toEqual([undefined, undefined, 'v3', 'v3', 'v3']);
    expect((await tasks.listSchedules({ kind: report })).map((s) => [s.id, s.cron, s.nextSlot?.toISOString()])).toEqual([['report:acme', '0,30 * * * *', t(180 * MIN)]]);
    await expect(tasks.upsertSchedule(report, { account: 'acme' }, { cron: '0 9 1 * MON' })).rejects.toBeInstanceOf(InvalidOptionsError);
  });

  it('pauseSchedule spawns nothing until resumeSchedule; then catchUp "latest" spawns the newest missed slot', async () => {
    const { kit, tasks, slots } = await recording();
    await tasks.create(report, { account: 'acme' }, { recurrence: { every: '10m' } });
    await kit.advance('10m');
    expect(slots).toEqual([t(10 * MIN)]);

    expect(await tasks.pauseSchedule('report:acme')).toBe(true);
    expect(await tasks.pauseSchedule('report:acme')).toBe(false);
    const [paused] = await tasks.listSchedules();
    expect(paused).toMatchObject({ id: 'report:acme', paused: true, nextSlot: new Date(START.getTime() + 20 * MIN) });
    await kit.advance('35m'); // 20, 30, 40 come due while paused
    expect(slots).toEqual([t(10 * MIN)]);
    expect((await tasks.get('report:acme'))!.status).toBe('pending');

    expect(await tasks.resumeSchedule('report:acme')).toBe(true);
    expect(await tasks.resumeSchedule('report:acme')).toBe(false);
    await kit.drain();
    expect(slots).toEqual([t(10 * MIN), t(40 * MIN)]);
    await kit.advance('10m');
    expect(slots).toEqual([t(10 * MIN), t(40 * MIN), t(50 * MIN)]);
  });

  it('runScheduleNow adds one occurrence now without moving the generator; cancel stops further spawns', async () => {
    const { kit, tasks, slots } = await recording();
    await tasks.create(report, { account: 'acme' }, { recurrence: { every: '1h' } });
    await kit.advance('30m');

    const { id } = await tasks.runScheduleNow('report:acme');
    expect(id).toBe(`report:acme_now_${t(30 * MIN)}`);
    await kit.drain();
    expect(slots).toEqual([t(30 * MIN)]);
    expect((await tasks.get('report:acme'))!.waitUntil).toEqual(new Date(START.getTime() + 60 * MIN));

    await kit.advance('30m');
    expect(await tasks.cancel('report:acme')).toBe(1);
    await kit.advance('3h');
    expect(slots).toEqual([t(30 * MIN), t(60 * MIN)]);
    expect((await tasks.get('report:acme'))!.status).toBe('cancelled');
  });

  it('overlap "skip": no slot is spawned while the previous occurrence is still open', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const ran: string[] = [];
    tasks.handle(report, (_task, ctx) => {
      ran.push(ctx.occurrence!.slot.toISOString());
      throw new Error('keeps failing: the occurrence stays open, waiting for its retry');
    }, { retry: { shouldRetry: (attempt) => attempt < 2, nextDelayMs: () => 25 * MIN } });
    await tasks.create(report, { account: 'acme' }, { recurrence: { every: '10m', overlap: 'skip' } });

    await kit.advance('65m');

    // Slot 10 runs at 10 and retries at 35 (then fails for good); 20 and 30 are skipped while it is open.
    expect(ran).toEqual([t(10 * MIN), t(10 * MIN), t(40 * MIN), t(40 * MIN)]);
    expect((await tasks.listOccurrences('report:acme')).map((o) => o.occurrence!.slot.toISOString())).toEqual([t(10 * MIN), t(40 * MIN)]);
  });
});
