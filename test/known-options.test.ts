import { describe, expect, it } from 'vitest';
import { exponentialBackoff, fixedDelay, InvalidOptionsError, OnceTaskManager, type OnceTaskManagerOptions } from '../src/index.js';
import { uniqueEnv, useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager } from './support.js';

const db = useFirestore();

/** Runs `fn` and returns the InvalidOptionsError it throws (failing the test otherwise). */
async function refusal(fn: () => unknown): Promise<InvalidOptionsError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect((err as InvalidOptionsError).code).toBe('INVALID_OPTIONS');
    return err as InvalidOptionsError;
  }
  throw new Error('expected an InvalidOptionsError');
}

describe('unknown option names are refused, naming the closest known one', () => {
  it('on the manager, before anything is set up', async () => {
    const typo = { firestore: db, env: uniqueEnv(), pollIntervalMS: 50 } as unknown as OnceTaskManagerOptions;
    const err = await refusal(() => new OnceTaskManager(typo));
    expect(err.message).toBe('OnceTaskManager: unknown option "pollIntervalMS" (did you mean "pollIntervalMs"?)');
    // Nothing near it: the known names are listed instead.
    const far = await refusal(() => new OnceTaskManager({ firestore: db, region: 'eu' } as unknown as OnceTaskManagerOptions));
    expect(far.message).toMatch(/unknown option "region" \(known options: firestore, backend, env, collection/);
  });

  it('on handle() and handleGroup(): a typo such as "concurency" no longer falls back to the default', async () => {
    const m = makeManager(db);
    const err = await refusal(() => m.handle(jobTask, () => undefined, { concurency: 4 } as never));
    expect(err.message).toBe('handle(job): unknown option "concurency" (did you mean "concurrency"?)');
    // maxBatchSize belongs to grouped handlers only.
    await refusal(() => m.handle(jobTask, () => undefined, { maxBatchSize: 10 } as never));
    m.handleGroup(jobTask, () => undefined, { maxBatchSize: 10, concurrency: 2 });
  });

  it('on create, createMany, list, stop and the retry and recurrence helpers, and nothing is written', async () => {
    const m = makeManager(db);
    await refusal(() => m.create(jobTask, { n: 1 }, { waitUtil: new Date() } as never));
    await refusal(() => m.createMany(jobTask, [{ n: 2 }], { delay: 5 } as never));
    await refusal(() => m.create(jobTask, { n: 3 }, { recurrence: { rrule: 'FREQ=DAILY', dtstart: '2026-01-01T09:00', tz: 'Europe/Paris' } } as never));
    expect(await m.getMany(['job-1', 'job-2', 'job-3'])).toEqual([null, null, null]);
    await refusal(() => m.list({ limit: 10, kinds: 'job' } as never));
    await refusal(() => m.listByResourceKey(jobTask, 'k', { max: 5 } as never));
    await refusal(() => m.stop({ grace: 10 } as never));
    expect((await refusal(() => exponentialBackoff({ maxAttempt: 3 } as never))).message).toBe('exponentialBackoff: unknown option "maxAttempt" (did you mean "maxAttempts"?)');
    await refusal(() => fixedDelay({ delay: 100 } as never));
    // Known options still work, and an unrelated typo-free manager runs tasks.
    m.handle(jobTask, () => undefined, { concurrency: 2, retry: fixedDelay({ maxAttempts: 2, delayMs: 10 }) });
    m.start();
    await m.create(jobTask, { n: 4 });
    await waitFor(async () => (await m.get('job-4'))?.status === 'succeeded');
  });
});
