/** Contract: cancelling — pending tasks, running tasks (same and another process), onCancel, finished tasks. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, fixedDelay, TaskCancelledError, TaskNotFoundError, type TaskContext } from '../../src/index.js';
import { BACKENDS, deferred, useKits } from './backends.js';

const job = defineTask({ kind: 'job', schema: z.object({ n: z.number().int() }), id: (d) => `job-${d.n}` });
const keyed = defineTask({
  kind: 'keyed',
  schema: z.object({ n: z.number().int(), key: z.string() }),
  id: (d) => `keyed-${d.n}`,
  resourceKey: (d) => d.key,
});

/** A handler that runs until its signal aborts; `started` resolves when it runs, `reasons` gets the abort reason. */
function untilAborted(started: { resolve: () => void }, reasons: unknown[]) {
  return (_task: unknown, ctx: TaskContext) => new Promise<void>((_resolve, reject) => {
    started.resolve();
    ctx.signal.addEventListener('abort', () => {
      reasons.push(ctx.signal.reason);
      reject(ctx.signal.reason);
    });
  });
}

describe.each(BACKENDS)('%s backend', (backend) => {
  const newKit = useKits(backend);

  it('a pending task is cancelled at once when this process handles its kind without onCancel; a second cancel returns 0', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    let ran = false;
    tasks.handle(job, () => void (ran = true));
    await tasks.create(job, { n: 1 }, { waitUntil: new Date(kit.now().getTime() + 60_000) });

    expect(await tasks.cancel('job-1')).toBe(1);
    expect(await tasks.get('job-1')).toMatchObject({ status: 'cancelled', cancelRequested: true, attempts: 0, doneAt: kit.now() });
    expect(await tasks.cancel('job-1')).toBe(0);
    await kit.advance('2m');
    expect(ran).toBe(false);
    await expect(tasks.cancel('nope')).rejects.toBeInstanceOf(TaskNotFoundError);
  });

  it('a pending task with onCancel becomes cancelling; a worker runs onCancel once (not the handler) and ends it cancelled', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const cleaned: string[] = [];
    let ran = false;
    tasks.handle(job, () => void (ran = true), { onCancel: (task, ctx) => void cleaned.push(`${task.id}#${ctx.attempt}`) });
    await tasks.create(job, { n: 1 });

    expect(await tasks.cancel('job-1')).toBe(1);
    expect((await tasks.get('job-1'))!.status).toBe('cancelling');
    expect(await tasks.queueDepth(job)).toMatchObject({ cancelling: 1 });
    const runs = await kit.drain();

    expect(runs.map((r) => r.outcome)).toEqual(['cancelled']);
    expect(cleaned).toEqual(['job-1#1']);
    expect(ran).toBe(false);
    expect(await tasks.get('job-1')).toMatchObject({ status: 'cancelled', attempts: 0, cancelAttempts: 1 });
  });

  it('a pending task cancelled from a process without its handler waits in cancelling for a worker of its kind', async () => {
    const kit = await newKit();
    const admin = kit.manager();
    await admin.create(job, { n: 1 });
    expect(await admin.cancel('job-1')).toBe(1);
    expect((await admin.get('job-1'))!.status).toBe('cancelling');

    kit.manager().handle(job, () => 'ran');
    await kit.drain();
    expect(await admin.get('job-1')).toMatchObject({ status: 'cancelled', attempts: 0, result: null });
  });

  it('onCancel is retried under cancelRetry with its own counter', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    let calls = 0;
    tasks.handle(job, () => undefined, {
      onCancel: () => {
        if (++calls < 3) throw new Error(`cleanup failed ${calls}`);
      },
      cancelRetry: fixedDelay({ maxAttempts: 5, delayMs: 10_000 }),
    });
    await tasks.create(job, { n: 1 });
    await tasks.cancel('job-1');

    await kit.advance('1m');

    const task = (await tasks.get('job-1'))!;
    expect(task).toMatchObject({ status: 'cancelled', attempts: 0, cancelAttempts: 3, errorCount: 2 });
    expect(task.errors.map((e) => e.message)).toEqual(['cleanup failed 1', 'cleanup failed 2']);
  });

  it('a running task: its signal aborts with TaskCancelledError, then onCancel runs and it ends cancelled', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const started = deferred();
    const reasons: unknown[] = [];
    const cleaned: string[] = [];
    tasks.handle(job, untilAborted(started, reasons), { onCancel: (task) => void cleaned.push(task.id) });
    await tasks.create(job, { n: 1 });
    tasks.start();
    await started.promise;

    expect(await tasks.cancel('job-1')).toBe(1);
    const done = await kit.waitFor('job-1', 'cancelled');

    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(TaskCancelledError);
    expect(cleaned).toEqual(['job-1']);
    expect(done).toMatchObject({ attempts: 1, cancelRequested: true, lease: null });
  });

  it('a running task cancelled from another process is aborted there too', async () => {
    const kit = await newKit();
    const worker = kit.manager();
    const started = deferred();
    const reasons: unknown[] = [];
    worker.handle(job, untilAborted(started, reasons));
    await worker.create(job, { n: 1 });
    worker.start();
    await started.promise;

    expect(await kit.manager().cancel('job-1')).toBe(1);
    await kit.waitFor('job-1', 'cancelled', { timeoutMs: 5000 });

    expect(reasons[0]).toBeInstanceOf(TaskCancelledError);
  });

  it('a handler that returns after its cancel reached it is recorded cancelled; a finished task cannot be cancelled (0)', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const started = deferred();
    const finish = deferred();
    tasks.handle(job, async () => {
      started.resolve();
      await finish.promise; // ignores its signal and completes
      return 'done anyway';
    });
    await tasks.createMany(job, [{ n: 1 }]);
    tasks.start();
    await started.promise;
    expect(await tasks.cancel('job-1')).toBe(1);
    finish.resolve();
    const task = await kit.waitFor('job-1', ['succeeded', 'cancelled']);

    // In the same process the cancel aborts the signal at once; the handler then returning a value
    // does not make it succeeded.
    expect(task.status).toBe('cancelled');
    await tasks.create(job, { n: 2 });
    await kit.drain();
    expect(await tasks.cancel('job-2')).toBe(0);
    expect((await tasks.get('job-2'))!.status).toBe('succeeded');
  });

  it('cancelMany and cancelByResourceKey count what they newly cancelled', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    tasks.handle(job, () => undefined);
    tasks.handle(keyed, () => undefined);
    await tasks.createMany(job, [{ n: 1 }, { n: 2 }, { n: 3 }], { waitUntil: new Date(kit.now().getTime() + 60_000) });
    await tasks.createMany(keyed, [{ n: 1, key: 'a' }, { n: 2, key: 'a' }, { n: 3, key: 'b' }]);

    await expect(tasks.cancelMany(['job-1', 'missing'])).rejects.toBeInstanceOf(TaskNotFoundError);
    expect((await tasks.get('job-1'))!.status).toBe('pending'); // checked before changing anything
    expect(await tasks.cancelMany(['job-1', 'job-2'])).toBe(2);
    expect(await tasks.cancelMany(['job-1', 'job-2', 'job-3'])).toBe(1);
    expect(await tasks.cancelByResourceKey(keyed, 'a')).toBe(2);
    expect(await tasks.countByStatus()).toMatchObject({ cancelled: 5, pending: 1 });
  });
});
