import { describe, expect, it } from 'vitest';
import { fixedDelay, InvalidOptionsError, InvalidStateError } from '../src/index.js';
import { useFirestore } from './fixture.js';
import { makeManager } from './support.js';
import { jobTask, keyedTask } from './tasks.js';

const db = useFirestore();

describe('drain (serverless mode)', () => {
  it('runs every due task, leaves future ones, stops by itself and says what ran', async () => {
    const m = makeManager(db, { listen: false });
    const ran: string[] = [];
    m.handle(jobTask, (task, ctx) => {
      ran.push(task.id);
      if (task.data.failTimes >= ctx.attempt) throw new Error('flaky');
    }, { concurrency: 4, retry: fixedDelay({ maxAttempts: 2, delayMs: 60_000 }) });
    await m.createMany(jobTask, [1, 2, 3, 4, 5].map((n) => ({ n })));
    await m.create(jobTask, { n: 6, failTimes: 1 }); // fails once; its retry is due in a minute
    await m.create(jobTask, { n: 7 }, { waitUntil: new Date(Date.now() + 3600_000) });
    const result = await m.drain({ maxMs: 20_000 });
    expect(result.emptied).toBe(true);
    expect(result.ran).toBe(6);
    expect(result.outcomes).toMatchObject({ succeeded: 5, retrying: 1, failed: 0, released: 0 });
    expect(ran.sort()).toEqual(['job-1', 'job-2', 'job-3', 'job-4', 'job-5', 'job-6']);
    expect((await m.get('job-7'))!.status).toBe('pending');
    expect((await m.get('job-6'))!.status).toBe('pending'); // its retry waits for the next drain
    // Stopped: a task created now is not run.
    await m.create(jobTask, { n: 8 });
    await new Promise((r) => setTimeout(r, 300));
    expect((await m.get('job-8'))!.status).toBe('pending');
    // And it can drain again.
    expect((await m.drain({ maxMs: 20_000 })).outcomes.succeeded).toBe(1);
  }, 60_000);

  it('hands back what is still running when maxMs runs out', async () => {
    const m = makeManager(db, { listen: false });
    m.handle(jobTask, async (_task, ctx) => {
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
    }, { concurrency: 2 });
    await m.createMany(jobTask, [1, 2, 3].map((n) => ({ n })));
    const t0 = Date.now();
    const result = await m.drain({ maxMs: 500, graceMs: 100 });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(result.emptied).toBe(false);
    expect(result.ran).toBe(0);
    expect(result.outcomes.released).toBe(2);
    const tasks = await m.getMany(['job-1', 'job-2', 'job-3']);
    expect(tasks.map((t) => t!.status)).toEqual(['pending', 'pending', 'pending']);
    expect(tasks.map((t) => t!.attempts)).toEqual([0, 0, 0]); // handed back without using up an attempt
  });

  it('drains only the kinds it is given', async () => {
    const m = makeManager(db, { listen: false });
    m.handle(jobTask, () => undefined);
    m.handle(keyedTask, () => undefined);
    await m.create(jobTask, { n: 1 });
    await m.create(keyedTask, { n: 1, key: 'a' });
    const result = await m.drain({ kinds: [keyedTask], maxMs: 20_000 });
    expect(result).toMatchObject({ ran: 1, emptied: true });
    expect((await m.get('job-1'))!.status).toBe('pending');
    expect((await m.get('keyed-1'))!.status).toBe('succeeded');
  });

  it('refuses a started manager, unknown kinds and bad options', async () => {
    const m = makeManager(db, { listen: false });
    await expect(m.drain()).rejects.toThrow(InvalidOptionsError); // no handler
    m.handle(jobTask, () => undefined);
    await expect(m.drain({ kinds: ['nope'] })).rejects.toThrow(/no handler is registered for kind "nope"/);
    await expect(m.drain({ maxMs: -1 })).rejects.toThrow(InvalidOptionsError);
    await expect(m.drain({ maxMS: 10 } as never)).rejects.toThrow(/did you mean "maxMs"/);
    m.start();
    await expect(m.drain()).rejects.toThrow(InvalidStateError);
  });
});
