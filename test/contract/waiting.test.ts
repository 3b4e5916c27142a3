/** Contract: waiting on the manager — waitFor and watch, from the creating process or another one. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, noRetry, TaskNotFoundError, WaitTimeoutError, type TaskInfo } from '../../src/index.js';
import { BACKENDS, deferred, useKits } from './backends.js';

const job = defineTask({ kind: 'job', schema: z.object({ n: z.number().int(), fail: z.boolean().default(false) }), id: (d) => `job-${d.n}` });

const tick = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(BACKENDS)('%s backend', (backend) => {
  const newKit = useKits(backend);

  it('waitFor resolves once the task is terminal, in whichever process it ran, and at once if it already is', async () => {
    const kit = await newKit();
    const producer = kit.manager();
    const worker = kit.manager();
    worker.handle(job, (task) => {
      if (task.data.fail) throw new Error('broken');
      return { n: task.data.n };
    }, { retry: noRetry() });
    await producer.createMany(job, [{ n: 1 }, { n: 2, fail: true }]);

    const waiting = Promise.all([producer.waitFor('job-1'), producer.waitFor('job-2', { timeoutMs: 10_000 })]);
    await kit.drain();
    const [one, two] = await waiting;

    expect([one.status, one.result]).toEqual(['succeeded', { n: 1 }]);
    expect([two.status, two.errors[0]!.message]).toEqual(['failed', 'broken']);
    expect(await worker.waitFor('job-1')).toEqual(await producer.get('job-1'));
  });

  it('waitFor rejects: WaitTimeoutError after timeoutMs, the signal\'s reason on abort, TaskNotFoundError for a missing or deleted task', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    await tasks.create(job, { n: 1 });

    const timedOut = await tasks.waitFor('job-1', { timeoutMs: 30 }).catch((err: unknown) => err);
    expect(timedOut).toBeInstanceOf(WaitTimeoutError);
    expect(timedOut).toMatchObject({ code: 'WAIT_TIMEOUT', taskId: 'job-1', timeoutMs: 30 });

    const controller = new AbortController();
    const aborted = tasks.waitFor('job-1', { signal: controller.signal }).catch((err: unknown) => err);
    controller.abort(new Error('caller gave up'));
    expect(await aborted).toMatchObject({ message: 'caller gave up' });

    await expect(tasks.waitFor('missing')).rejects.toBeInstanceOf(TaskNotFoundError);
    const deleted = tasks.waitFor('job-1').catch((err: unknown) => err);
    await tick(20);
    await tasks.delete('job-1');
    expect(await deleted).toBeInstanceOf(TaskNotFoundError);
  });

  it('watch reports null before the task exists, then each change, until unsubscribed', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    tasks.handle(job, () => 'done');
    const seen: (string | null)[] = [];
    const first = deferred();
    const done = deferred();
    const unsubscribe = kit.manager().watch('job-1', (task: TaskInfo | null) => {
      if (seen.length === 0 || seen.at(-1) !== (task?.status ?? null)) seen.push(task?.status ?? null);
      first.resolve();
      if (task?.status === 'succeeded') done.resolve();
    });
    await first.promise;
    await tasks.create(job, { n: 1 });
    await kit.drain();
    await done.promise;
    unsubscribe();
    unsubscribe(); // idempotent

    expect(seen[0]).toBeNull();
    expect(seen.at(-1)).toBe('succeeded');
    expect(seen.filter((s) => s !== 'running')).toEqual([null, 'pending', 'succeeded']);
  });

  it('the kit\'s waitFor finds a task by predicate', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    tasks.handle(job, (task) => task.data.n * 10);
    await tasks.createMany(job, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    await kit.drain();
    const found = await kit.waitFor((t) => t.result === 20, 'succeeded');
    expect(found.id).toBe('job-2');
  });
});
