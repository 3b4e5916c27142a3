import { describe, expect, it } from 'vitest';
import { fixedDelay, InvalidOptionsError } from '../src/index.js';
import { useFirestore, waitFor } from './fixture.js';
import { makeManager } from './support.js';
import { jobTask, keyedTask } from './tasks.js';

const db = useFirestore();

describe('reading the queue without scanning it', () => {
  it('countByStatus, queueDepth and failedKinds count with aggregations and a head query, at about one read each', async () => {
    const m = makeManager(db);
    const later = new Date(Date.now() + 3600_000);
    await m.createMany(jobTask, [1, 2, 3, 4].map((n) => ({ n, failTimes: n === 4 ? 9 : 0 })), { waitUntil: new Date(Date.now() - 5000) });
    await m.createMany(jobTask, [5, 6].map((n) => ({ n })), { waitUntil: later });
    await m.create(keyedTask, { n: 1, key: 'a' });
    // Nothing ran yet: 5 of 7 due, the oldest since 5 s ago.
    const before = m.stats().reads;
    const depth = await m.queueDepth(jobTask);
    expect(depth).toMatchObject({ dueNow: 4, scheduled: 2, running: 0, cancelling: 0 });
    expect(Date.now() - depth.oldestDueAt!.getTime()).toBeGreaterThanOrEqual(4000);
    expect(m.stats().reads - before).toBe(5); // 4 counts and the head, whatever the queue's size
    // Run the due ones: three succeed, one fails for good.
    m.handle(jobTask, (task) => {
      if (task.data.failTimes > 0) throw new Error('broken');
    }, { retry: fixedDelay({ maxAttempts: 1 }), concurrency: 4 });
    m.start();
    await waitFor(async () => (await m.countByStatus(jobTask)).pending === 2 && (await m.countByStatus(jobTask)).running === 0);
    expect(await m.countByStatus(jobTask)).toEqual({ pending: 2, running: 0, cancelling: 0, succeeded: 3, failed: 1, cancelled: 0 });
    expect(await m.countByStatus()).toEqual({ pending: 3, running: 0, cancelling: 0, succeeded: 3, failed: 1, cancelled: 0 });
    expect(await m.queueDepth('job')).toEqual({ dueNow: 0, scheduled: 2, running: 0, cancelling: 0, oldestDueAt: null });
    expect(await m.failedKinds()).toEqual([{ kind: 'job', failed: 1 }]); // the kinds it has handlers for
    expect(await m.failedKinds([keyedTask, jobTask])).toEqual([{ kind: 'job', failed: 1 }]);
    await expect(makeManager(db).failedKinds()).rejects.toThrow(InvalidOptionsError);
  });

  it('counts a sharded queue across its shards', async () => {
    const m = makeManager(db, { shards: 4 });
    await m.createMany(jobTask, Array.from({ length: 12 }, (_, i) => ({ n: i })));
    expect((await m.countByStatus(jobTask)).pending).toBe(12);
    expect(await m.queueDepth(jobTask)).toMatchObject({ dueNow: 12, scheduled: 0 });
  });
});
