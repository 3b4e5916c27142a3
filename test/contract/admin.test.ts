/** Contract: reading and administering — reset, retryNow, delete, list (cursor, labels, filters), counts. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, fixedDelay, InvalidStateError, noRetry, TaskNotFoundError, type OnceTaskManager } from '../../src/index.js';
import { BACKENDS, deferred, useKits } from './backends.js';

const job = defineTask({ kind: 'job', schema: z.object({ n: z.number().int(), fail: z.boolean().default(false) }), id: (d) => `job-${d.n}` });
const report = defineTask({
  kind: 'report',
  schema: z.object({ n: z.number().int(), tenant: z.string() }),
  id: (d) => `report-${d.n}`,
  labels: (d) => ({ tenant: d.tenant }),
  resourceKey: (d) => d.tenant,
});

/** Every task of a listing, page by page. */
async function listAll(m: OnceTaskManager, options: Omit<Parameters<OnceTaskManager['list']>[0], 'cursor'>): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page = await m.list({ ...options, ...(cursor ? { cursor } : {}) });
    ids.push(...page.tasks.map((t) => t.id));
    cursor = page.nextCursor;
    pages++;
  } while (cursor !== null && pages < 50);
  return { ids, pages };
}

describe.each(BACKENDS)('%s backend', (backend) => {
  const newKit = useKits(backend);

  it('reset puts finished tasks back to pending, due now, with attempts, errors and result cleared', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    let failing = true;
    tasks.handle(job, (task) => {
      if (task.data.fail && failing) throw new Error('broken');
      return `ok ${task.data.n}`;
    }, { retry: noRetry() });
    await tasks.createMany(job, [{ n: 1, fail: true }, { n: 2 }]);
    await kit.drain();
    expect((await tasks.getMany(['job-1', 'job-2'])).map((t) => t!.status)).toEqual(['failed', 'succeeded']);

    await kit.advance('1h');
    await tasks.stop({ graceMs: 0 }); // no worker reacts to the reset before the assertions
    expect(await tasks.reset(['job-1', 'job-2'])).toBe(2);
    expect(await tasks.get('job-1')).toMatchObject({ status: 'pending', attempts: 0, errors: [], errorCount: 0, result: null, lease: null, waitUntil: kit.now() });
    failing = false;
    tasks.start();
    await kit.drain();
    expect((await tasks.getMany(['job-1', 'job-2'])).map((t) => [t!.status, t!.attempts, t!.result])).toEqual([['succeeded', 1, 'ok 1'], ['succeeded', 1, 'ok 2']]);
    expect(await tasks.reset(['missing'])).toBe(0);
  });

  it('retryNow: a pending retry becomes due now (attempts kept); a failed task is reset; a running one is refused', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const started = deferred();
    const release = deferred();
    tasks.handle(job, async (task, ctx) => {
      if (task.data.n === 3) {
        started.resolve();
        await release.promise;
        return 'held';
      }
      if (task.data.fail && ctx.attempt === 1) throw new Error('first attempt fails');
      if (task.data.n === 2) throw new Error('always fails');
      return 'ok';
    }, { retry: fixedDelay({ delayMs: 3_600_000, maxAttempts: 2 }) });
    await tasks.create(job, { n: 1, fail: true });
    await kit.drain();
    await tasks.stop({ graceMs: 0 });
    expect(await tasks.get('job-1')).toMatchObject({ status: 'pending', attempts: 1, waitUntil: new Date(kit.now().getTime() + 3_600_000) });

    await tasks.retryNow('job-1');
    expect(await tasks.get('job-1')).toMatchObject({ status: 'pending', attempts: 1, errorCount: 1, waitUntil: kit.now() });
    tasks.start();
    await kit.drain();
    expect(await tasks.get('job-1')).toMatchObject({ status: 'succeeded', attempts: 2, errorCount: 1 });

    await tasks.create(job, { n: 2 });
    tasks.start();
    await kit.advance('2h');
    await tasks.stop({ graceMs: 0 });
    expect(await tasks.get('job-2')).toMatchObject({ status: 'failed', attempts: 2, errorCount: 2 });
    await tasks.retryNow('job-2');
    expect(await tasks.get('job-2')).toMatchObject({ status: 'pending', attempts: 0, errorCount: 0, errors: [] });
    tasks.start();
    await kit.drain();
    expect(await tasks.get('job-2')).toMatchObject({ status: 'pending', attempts: 1, errorCount: 1 }); // failed again, retry in 1 h

    await tasks.create(job, { n: 3 });
    tasks.start();
    await started.promise;
    await expect(tasks.retryNow('job-3')).rejects.toBeInstanceOf(InvalidStateError);
    await expect(tasks.retryNow('missing')).rejects.toBeInstanceOf(TaskNotFoundError);
    release.resolve();
    await kit.waitFor('job-3', 'succeeded');
  });

  it('delete removes a task (true, then false); a running attempt of a deleted task cannot write its outcome back', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const started = deferred();
    const release = deferred();
    tasks.handle(job, async () => {
      started.resolve();
      await release.promise;
      return 'late';
    });
    await tasks.createMany(job, [{ n: 1 }, { n: 2 }, { n: 3 }], { waitUntil: new Date(kit.now().getTime() + 60_000) });
    expect(await tasks.delete('job-1')).toBe(true);
    expect(await tasks.delete('job-1')).toBe(false);
    expect(await tasks.deleteMany(['job-1', 'job-2', 'missing'])).toBe(1);
    expect(await tasks.getMany(['job-1', 'job-2', 'job-3'])).toEqual([null, null, expect.objectContaining({ id: 'job-3' })]);

    await tasks.create(job, { n: 4 });
    tasks.start();
    await started.promise;
    expect(await tasks.delete('job-4')).toBe(true);
    const refused = tasks.stats().refusedWrites;
    release.resolve();
    const deadline = Date.now() + 5000;
    while (tasks.stats().refusedWrites === refused && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await tasks.get('job-4')).toBeNull();
    expect(kit.runs).toEqual([]);
  });

  it('list pages newest first through its cursor, and filters by kind, status and labels', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    for (let n = 1; n <= 5; n++) {
      await tasks.create(report, { n, tenant: n % 2 === 0 ? 'globex' : 'acme' }, n === 5 ? { labels: { region: 'eu' } } : {});
      kit.clock!.set(kit.now().getTime() + 1000);
    }
    await tasks.create(job, { n: 1 });

    const first = await tasks.list({ limit: 2 });
    expect(first.tasks.map((t) => t.id)).toEqual(['job-1', 'report-5']);
    expect(first.nextCursor).not.toBeNull();
    expect(first.malformed).toEqual([]);
    expect(await listAll(tasks, { limit: 2 })).toEqual({ ids: ['job-1', 'report-5', 'report-4', 'report-3', 'report-2', 'report-1'], pages: 3 });
    expect((await listAll(tasks, { limit: 10, kind: report })).ids).toEqual(['report-5', 'report-4', 'report-3', 'report-2', 'report-1']);
    expect((await listAll(tasks, { limit: 1, labels: { tenant: 'acme' } })).ids).toEqual(['report-5', 'report-3', 'report-1']);
    expect((await listAll(tasks, { limit: 10, labels: { tenant: 'acme', region: 'eu' }, kind: 'report', status: 'pending' })).ids).toEqual(['report-5']);
    expect((await listAll(tasks, { limit: 10, status: 'failed' })).ids).toEqual([]);
    expect((await tasks.get('report-5'))!.labels).toEqual({ tenant: 'acme', region: 'eu' });
  });

  it('list pages through tasks created in one instant (createMany) without missing or repeating one', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const created = await tasks.createMany(job, Array.from({ length: 7 }, (_, i) => ({ n: i })));

    const { ids } = await listAll(tasks, { limit: 3 });

    expect([...ids].sort()).toEqual([...created.ids].sort());
  });

  it('countByStatus, queueDepth, countPending and failedKinds count the queue', async () => {
    const kit = await newKit();
    const worker = kit.manager();
    worker.handle(job, (task) => {
      if (task.data.fail) throw new Error('broken');
    }, { retry: noRetry() });
    const t0 = kit.now().getTime();
    await worker.createMany(job, [{ n: 1 }, { n: 2, fail: true }]);
    await kit.drain();
    await worker.stop({ graceMs: 0 }); // from here on nothing runs
    const admin = kit.manager();
    kit.clock!.set(t0 + 5000);
    await admin.createMany(job, [{ n: 3 }, { n: 4 }]);
    await admin.create(job, { n: 5 }, { waitUntil: new Date(t0 + 3_600_000) });
    await admin.create(report, { n: 1, tenant: 'acme' }, { waitUntil: new Date(t0 - 60_000) });
    await admin.create(job, { n: 6 });
    expect(await worker.cancel('job-6')).toBe(1); // a process with job's handler (no onCancel): cancelled at once
    await admin.create(job, { n: 7 });
    expect(await admin.cancel('report-1')).toBe(1); // no handler for report here: cancelling
    kit.clock!.set(t0 + 10_000);

    expect(await admin.countByStatus(job)).toEqual({ pending: 4, running: 0, cancelling: 0, succeeded: 1, failed: 1, cancelled: 1 });
    expect(await admin.countByStatus()).toEqual({ pending: 4, running: 0, cancelling: 1, succeeded: 1, failed: 1, cancelled: 1 });
    expect(await admin.countPending(job)).toBe(4);
    expect(await admin.queueDepth(job)).toEqual({ dueNow: 3, scheduled: 1, running: 0, cancelling: 0, oldestDueAt: new Date(t0 + 5000) });
    expect(await admin.queueDepth('report')).toMatchObject({ dueNow: 0, scheduled: 0, running: 0, cancelling: 1 });
    expect(await admin.failedKinds(['job', 'report'])).toEqual([{ kind: 'job', failed: 1 }]);
    expect(await worker.failedKinds()).toEqual([{ kind: 'job', failed: 1 }]);
  });

  it('listByResourceKey lists one key\'s tasks in queue order, any status', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const t0 = kit.now().getTime();
    await tasks.create(report, { n: 1, tenant: 'acme' }, { waitUntil: new Date(t0 + 2000) });
    await tasks.create(report, { n: 2, tenant: 'acme' });
    await tasks.create(report, { n: 3, tenant: 'globex' });
    await tasks.create(report, { n: 4, tenant: 'acme' }, { waitUntil: new Date(t0 + 1000) });
    kit.manager().handle(report, () => undefined);
    await kit.drain(); // report-2 runs (the others are not due)

    // Queue order is by the stored waitUntil: a finished task keeps its last lease's expiry there (10 min after its claim).
    expect((await tasks.listByResourceKey(report, 'acme')).map((t) => [t.id, t.status])).toEqual([
      ['report-4', 'pending'],
      ['report-1', 'pending'],
      ['report-2', 'succeeded'],
    ]);
    expect((await tasks.listByResourceKey(report, 'acme', { limit: 1 })).map((t) => t.id)).toEqual(['report-4']);
    expect(await tasks.listByResourceKey(report, 'nobody')).toEqual([]);
  });

  it('retentionMs: 0 deletes a task in the commit that ends it; its ID can then be created again', async () => {
    const kit = await newKit();
    const tasks = kit.manager({ retentionMs: 0, failedRetentionMs: 0 });
    tasks.handle(job, (task) => {
      if (task.data.fail) throw new Error('broken');
      return 'ok';
    }, { retry: noRetry() });
    await tasks.createMany(job, [{ n: 1 }, { n: 2, fail: true }]);
    const waiting = tasks.waitFor('job-1').catch((err: unknown) => err);

    const runs = await kit.drain();

    expect(runs.map((r) => [r.id, r.outcome]).sort()).toEqual([['job-1', 'succeeded'], ['job-2', 'failed']]);
    expect(await tasks.getMany(['job-1', 'job-2'])).toEqual([null, null]);
    expect(await waiting).toBeInstanceOf(TaskNotFoundError);
    expect((await tasks.create(job, { n: 1 })).outcome).toBe('created');
  });
});
