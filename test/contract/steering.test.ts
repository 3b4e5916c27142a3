/** Contract: steering jobs — progress seen from another process, priority order of due tasks, pausing kinds. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, fixedDelay, InvalidOptionsError, PRIORITY_STEP_MS } from '../../src/index.js';
import { BACKENDS, deferred, useKits } from './backends.js';

const job = defineTask({ kind: 'job', schema: z.object({ n: z.number().int() }), id: (d) => `job-${d.n}` });
const other = defineTask({ kind: 'other', schema: z.object({ n: z.number().int() }), id: (d) => `other-${d.n}` });

describe.each(BACKENDS)('%s backend', (backend) => {
  const newKit = useKits(backend);

  it('ctx.setProgress with flush is visible to get() from another manager while the task runs; the last report stays', async () => {
    const kit = await newKit();
    const worker = kit.manager();
    const reported = deferred();
    const finish = deferred();
    worker.handle(job, async (_task, ctx) => {
      await ctx.setProgress({ done: 1, of: 3 }, { flush: true });
      reported.resolve();
      await finish.promise;
      await ctx.setProgress({ done: 3, of: 3 }); // rides on the outcome
      return 'imported';
    });
    const t0 = kit.now().getTime();
    await worker.create(job, { n: 1 });
    worker.start();
    await reported.promise;

    const observer = kit.manager();
    expect(await observer.get('job-1')).toMatchObject({ status: 'running', progress: { done: 1, of: 3 }, startedAt: new Date(t0), durationMs: null });
    kit.clock!.set(t0 + 5000);
    finish.resolve();

    const done = await kit.waitFor('job-1', 'succeeded');
    expect(done).toMatchObject({ progress: { done: 3, of: 3 }, result: 'imported', startedAt: new Date(t0), durationMs: 5000 });
  });

  it('a new attempt starts with progress null; a bad progress value is refused', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    let refusal: unknown;
    tasks.handle(job, async (_task, ctx) => {
      if (ctx.attempt === 1) {
        await ctx.setProgress(0.5, { flush: true });
        throw new Error('first attempt fails after reporting');
      }
      refusal = await ctx.setProgress(1.5).catch((err: unknown) => err);
    }, { retry: fixedDelay({ delayMs: 1000, maxAttempts: 2 }) });
    await tasks.create(job, { n: 1 });

    await kit.drain();
    expect(await tasks.get('job-1')).toMatchObject({ status: 'pending', attempts: 1, progress: 0.5 });
    await kit.advance('2s');

    expect(refusal).toBeInstanceOf(InvalidOptionsError);
    expect(await tasks.get('job-1')).toMatchObject({ status: 'succeeded', attempts: 2, progress: null });
  });

  it('priorities: among due tasks a task of priority p is ordered as if it came due p seconds earlier', async () => {
    const kit = await newKit();
    const producer = kit.manager();
    const t0 = kit.now().getTime();
    await producer.create(job, { n: 1 }); // due t0
    kit.clock!.set(t0 + 20_000);
    await producer.create(job, { n: 2 }, { priority: 30 }); // due t0+20s, ordered as t0-10s: before job-1
    await producer.create(job, { n: 3 }, { priority: 10 }); // ordered as t0+10s: after job-1
    await producer.create(job, { n: 4 }); // t0+20s
    await producer.create(job, { n: 5 }, { priority: 1000, waitUntil: new Date(t0 + 60_000) }); // first in the queue, but not due yet
    const two = (await producer.get('job-2'))!;
    expect([two.priority, two.dueAt.getTime(), two.waitUntil.getTime()]).toEqual([30, t0 + 20_000, t0 + 20_000 - 30 * PRIORITY_STEP_MS]);
    const order: string[] = [];
    kit.manager().handle(job, (task) => void order.push(`${task.id}@${kit.now().getTime() - t0}`), { concurrency: 1 });

    await kit.advance('2m');

    expect(order).toEqual(['job-2@20000', 'job-1@20000', 'job-3@20000', 'job-4@20000', 'job-5@60000']);
  });

  it('pause stops claims of a kind in every process (others run on) until resume', async () => {
    const kit = await newKit();
    const admin = kit.manager();
    await admin.pause({ kind: job });
    expect(await admin.paused()).toEqual([{ kind: 'job', since: kit.now(), until: null }]);
    const ran: string[] = [];
    const worker = kit.manager();
    worker.handle(job, (task) => void ran.push(task.id));
    worker.handle(other, (task) => void ran.push(task.id));
    await admin.createMany(job, [{ n: 1 }, { n: 2 }]);
    await admin.create(other, { n: 1 });

    await kit.advance('1h'); // the worker starts during the pause: it claims nothing of the kind

    expect(ran).toEqual(['other-1']);
    expect((await admin.queueDepth(job)).dueNow).toBe(2);
    await admin.resume({ kind: job });
    await kit.waitFor('job-2', 'succeeded');
    await kit.waitFor('job-1', 'succeeded');
    expect(await admin.paused()).toEqual([]);
  });

  it('a pause in the worker\'s own process takes effect at once; a pause with until ends by itself then', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const t0 = kit.now().getTime();
    const ran: string[] = [];
    tasks.handle(job, (task) => void ran.push(`${task.id}@${kit.now().getTime() - t0}`));
    await tasks.create(job, { n: 1 });
    await kit.drain();
    expect(ran).toEqual(['job-1@0']);

    await tasks.pause({ kind: job, until: new Date(t0 + 3_600_000) });
    await tasks.create(job, { n: 2 });
    await kit.advance('59m');
    expect(ran).toEqual(['job-1@0']);
    await kit.advance('2m');
    expect(ran).toEqual(['job-1@0', 'job-2@3600000']);
    expect(await tasks.paused()).toEqual([]);
  });

  it('a pause of every kind holds a kind whose own pause was lifted, until every pause is lifted', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const ran: string[] = [];
    tasks.handle(job, (task) => void ran.push(task.id));
    await tasks.pause();
    await tasks.pause({ kind: job });
    await tasks.resume({ kind: job });
    expect(await tasks.paused()).toEqual([{ kind: null, since: kit.now(), until: null }]);
    await tasks.create(job, { n: 1 });
    await kit.advance('10m');
    expect(ran).toEqual([]);

    await tasks.resume();
    await kit.drain();
    expect(ran).toEqual(['job-1']);
  });
});
