/**
 * How to test your own task kinds with the testing kit: no emulator, no Java, and time under the
 * test's control. In your project, import from 'oncetask' and 'oncetask/testing'.
 * Run: `npx vitest run examples/testing` (also part of `npm test`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, exponentialBackoff } from '../../src/index.js';
import { createTestKit, type TestKit } from '../../src/testing/index.js';

const weeklyReport = defineTask({
  kind: 'weekly-report',
  schema: z.object({ account: z.string() }),
  id: (d) => `weekly-report:${d.account}`,
});

const sendInvoice = defineTask({
  kind: 'send-invoice',
  schema: z.object({ invoice: z.string() }),
  id: (d) => `send-invoice:${d.invoice}`,
});

let kit: TestKit;
afterEach(() => kit.teardown());

describe('a weekly report', () => {
  it('runs every Monday at 09:00 Berlin time, also after the change to summer time', async () => {
    kit = await createTestKit({ start: new Date('2026-03-20T12:00:00Z') }); // a Friday; clocks go forward on Sunday 29 March
    const tasks = kit.manager();
    const ranFor: string[] = [];
    tasks.handle(weeklyReport, (_task, ctx) => void ranFor.push(ctx.occurrence!.slot.toISOString()));
    await tasks.create(weeklyReport, { account: 'acme' }, { recurrence: { cron: '0 9 * * MON', tzid: 'Europe/Berlin' } });

    await kit.advance('18d'); // to Wednesday 8 April

    // 09:00 CET is 08:00Z; 09:00 CEST is 07:00Z.
    expect(ranFor).toEqual(['2026-03-23T08:00:00.000Z', '2026-03-30T07:00:00.000Z', '2026-04-06T07:00:00.000Z']);
  });
});

describe('sending an invoice', () => {
  it('is retried with backoff until the mail server answers', async () => {
    kit = await createTestKit({ start: new Date('2026-12-01T10:00:00Z') });
    const tasks = kit.manager();
    let serverDownUntil = new Date('2026-12-01T10:00:05Z').getTime();
    tasks.handle(
      sendInvoice,
      () => {
        if (kit.now().getTime() < serverDownUntil) throw Object.assign(new Error('connection refused'), { code: 'SMTP_DOWN' });
        return 'sent';
      },
      { retry: exponentialBackoff({ maxAttempts: 5, baseMs: 1000, jitter: false }) }, // 1 s, 2 s, 4 s, ...
    );
    await tasks.create(sendInvoice, { invoice: 'INV-7' });

    const runs = await kit.advance('1m');

    expect(runs.map((r) => `${r.outcome}@${r.at.toISOString().slice(11, 19)}`)).toEqual([
      'retrying@10:00:00',
      'retrying@10:00:01',
      'retrying@10:00:03',
      'succeeded@10:00:07',
    ]);
    expect(await tasks.get('send-invoice:INV-7')).toMatchObject({ status: 'succeeded', attempts: 4, result: 'sent' });
    serverDownUntil = 0;
  });
});
