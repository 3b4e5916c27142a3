/** Contract: retries — backoff timing, NonRetryableError, final failure, the recorded errors. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, exponentialBackoff, fixedDelay, MAX_RECORDED_ERRORS, NonRetryableError, type RetryPolicy } from '../../src/index.js';
import { BACKENDS, useKits } from './backends.js';

const job = defineTask({ kind: 'job', schema: z.object({ n: z.number().int() }), id: (d) => `job-${d.n}` });

describe.each(BACKENDS)('%s backend', (backend) => {
  const newKit = useKits(backend);

  it('exponential backoff: attempts at +0, +1 s, +3 s, +7 s, then failed for good', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const t0 = kit.now().getTime();
    tasks.handle(job, () => {
      throw Object.assign(new Error('mail API answered 503'), { code: 'SMTP_DOWN' });
    }, { retry: exponentialBackoff({ maxAttempts: 4, baseMs: 1000, jitter: false }) });
    await tasks.create(job, { n: 1 });

    const runs = await kit.advance('1h');

    expect(runs.map((r) => [r.outcome, r.attempt, r.at.getTime() - t0])).toEqual([
      ['retrying', 1, 0],
      ['retrying', 2, 1000],
      ['retrying', 3, 3000],
      ['failed', 4, 7000],
    ]);
    expect(runs.every((r) => r.error?.message === 'mail API answered 503')).toBe(true);
    const task = (await tasks.get('job-1'))!;
    expect([task.status, task.attempts, task.errorCount]).toEqual(['failed', 4, 4]);
    expect(task.errors.map((e) => [e.attempt, e.code, e.message, e.at.getTime() - t0])).toEqual([
      [1, 'SMTP_DOWN', 'mail API answered 503', 0],
      [2, 'SMTP_DOWN', 'mail API answered 503', 1000],
      [3, 'SMTP_DOWN', 'mail API answered 503', 3000],
      [4, 'SMTP_DOWN', 'mail API answered 503', 7000],
    ]);
    expect(task.errors[0]!.stack).toContain('mail API answered 503');
    expect(task.doneAt).toEqual(new Date(t0 + 7000));
  });

  it('a retry waits for its delay (pending, due later) and a success after retries keeps the earlier errors', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const t0 = kit.now().getTime();
    tasks.handle(job, (_task, ctx) => {
      if (ctx.attempt < 3) throw new Error(`attempt ${ctx.attempt} failed`);
      return 'third time lucky';
    }, { retry: fixedDelay({ delayMs: 60_000, maxAttempts: 5 }) });
    await tasks.create(job, { n: 1 });

    await kit.drain();
    expect(await tasks.get('job-1')).toMatchObject({ status: 'pending', attempts: 1, waitUntil: new Date(t0 + 60_000), errorCount: 1 });
    expect(await tasks.queueDepth(job)).toMatchObject({ dueNow: 0, scheduled: 1 });
    await kit.advance('59s');
    expect((await tasks.get('job-1'))!.attempts).toBe(1);
    await kit.advance('2m');

    const task = (await tasks.get('job-1'))!;
    expect([task.status, task.attempts, task.result, task.errors.map((e) => e.message)]).toEqual(['succeeded', 3, 'third time lucky', ['attempt 1 failed', 'attempt 2 failed']]);
    expect(kit.runs.map((r) => [r.outcome, r.at.getTime() - t0])).toEqual([['retrying', 0], ['retrying', 60_000], ['succeeded', 120_000]]);
  });

  it('a NonRetryableError fails the task at once, whatever the policy allows', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    tasks.handle(job, () => {
      throw new NonRetryableError('address rejected');
    }, { retry: fixedDelay({ delayMs: 1000, maxAttempts: 10 }) });
    await tasks.create(job, { n: 1 });

    const runs = await kit.advance('1m');

    expect(runs.map((r) => [r.outcome, r.attempt])).toEqual([['failed', 1]]);
    expect(runs[0]!.error).toBeInstanceOf(NonRetryableError);
    const task = (await tasks.get('job-1'))!;
    expect([task.status, task.attempts, task.errors.map((e) => [e.code, e.message])]).toEqual(['failed', 1, [['NON_RETRYABLE', 'address rejected']]]);
  });

  it('a custom policy decides per error, and a policy that throws means no retry', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const onlyTimeouts: RetryPolicy = {
      shouldRetry: (attempt, err) => attempt < 5 && (err as { code?: string }).code === 'TIMEOUT',
      nextDelayMs: () => 500,
    };
    const throwing: RetryPolicy = {
      shouldRetry: () => {
        throw new Error('policy bug');
      },
      nextDelayMs: () => 0,
    };
    const other = defineTask({ kind: 'other', schema: z.object({ n: z.number().int() }), id: (d) => `other-${d.n}` });
    tasks.handle(job, (task, ctx) => {
      throw Object.assign(new Error('x'), { code: task.data.n === 1 && ctx.attempt < 3 ? 'TIMEOUT' : 'BAD_INPUT' });
    }, { retry: onlyTimeouts });
    tasks.handle(other, () => {
      throw new Error('boom');
    }, { retry: throwing });
    await tasks.createMany(job, [{ n: 1 }, { n: 2 }]);
    await tasks.create(other, { n: 1 });

    await kit.advance('10s');

    const [one, two, three] = await tasks.getMany(['job-1', 'job-2', 'other-1']);
    expect([one!.status, one!.attempts, one!.errors.map((e) => e.code)]).toEqual(['failed', 3, ['TIMEOUT', 'TIMEOUT', 'BAD_INPUT']]);
    expect([two!.status, two!.attempts]).toEqual(['failed', 1]);
    expect([three!.status, three!.attempts]).toEqual(['failed', 1]);
  });

  it(`keeps the last ${MAX_RECORDED_ERRORS} errors and counts them all`, async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    tasks.handle(job, (_task, ctx) => {
      throw new Error(`failure ${ctx.attempt}`);
    }, { retry: fixedDelay({ delayMs: 1000, maxAttempts: 24 }) });
    await tasks.create(job, { n: 1 });

    await kit.advance('1m');

    const task = (await tasks.get('job-1'))!;
    expect([task.status, task.attempts, task.errorCount, task.errors.length]).toEqual(['failed', 24, 24, MAX_RECORDED_ERRORS]);
    expect(task.errors[0]!.message).toBe('failure 5');
    expect(task.errors.at(-1)!.message).toBe('failure 24');
  });

  it('a handler past timeoutMs is aborted and the attempt fails with HANDLER_TIMEOUT', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    let reason: unknown;
    tasks.handle(job, async (_task, ctx) => {
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      reason = ctx.signal.reason;
      throw reason;
    }, { timeoutMs: 20, retry: fixedDelay({ delayMs: 1000, maxAttempts: 2 }) });
    await tasks.create(job, { n: 1 });

    await kit.advance('5s');

    expect((reason as { code?: string }).code).toBe('HANDLER_TIMEOUT');
    const task = (await tasks.get('job-1'))!;
    expect([task.status, task.attempts, task.errors.map((e) => e.code)]).toEqual(['failed', 2, ['HANDLER_TIMEOUT', 'HANDLER_TIMEOUT']]);
  });
});
