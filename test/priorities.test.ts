import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, fixedDelay, PRIORITY_STEP_MS } from '../src/index.js';
import { queuePosition } from '../src/priority.js';
import { useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager } from './support.js';

const db = useFirestore();

/** A kind whose payload carries its priority (the definition's `priority(data)`). */
const urgentTask = defineTask({
  kind: 'urgent',
  schema: z.object({ n: z.number().int(), p: z.number().default(0) }),
  id: (d) => `u-${d.n}`,
  priority: (d) => d.p,
});

describe('queue position', () => {
  it('moves a task ahead by priority seconds and keeps its due time in notBefore', () => {
    const now = Date.parse('2026-12-01T12:00:00Z');
    expect(queuePosition(new Date(now), 0, now)).toEqual({ waitUntil: new Date(now), notBefore: null });
    expect(queuePosition(new Date(now - 5), 10, now)).toEqual({ waitUntil: new Date(now - 5 - 10 * PRIORITY_STEP_MS), notBefore: new Date(now - 5) });
    expect(queuePosition(new Date(now + 60_000), 10, now)).toEqual({ waitUntil: new Date(now + 60_000 - 10_000), notBefore: new Date(now + 60_000) });
  });
});

describe('priorities', () => {
  it('a high-priority task created behind a backlog of 1,000 due tasks starts among the first few claims', async () => {
    const m = makeManager(db);
    await m.createMany(jobTask, Array.from({ length: 1000 }, (_, i) => ({ n: i })));
    await m.create(jobTask, { n: 5000 }, { priority: 50 });
    expect(await m.get('job-5000')).toMatchObject({ priority: 50 });
    const order: string[] = [];
    m.handle(jobTask, (task) => void order.push(task.id), { concurrency: 4 });
    m.start();
    await waitFor(() => order.length >= 20, { timeoutMs: 20_000 });
    expect(order.indexOf('job-5000')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('job-5000')).toBeLessThan(8);
  });

  it('a scheduled high-priority task never starts before its due time', async () => {
    const m = makeManager(db);
    const started: { id: string; at: number }[] = [];
    m.handle(urgentTask, (task) => void started.push({ id: task.id, at: Date.now() }));
    m.start();
    const dueAt = new Date(Date.now() + 1500);
    await m.create(urgentTask, { n: 1, p: 1000 }, { waitUntil: dueAt });
    const info = await m.get('u-1');
    expect(info).toMatchObject({ priority: 1000, dueAt });
    // Its queue position is 1000 s ahead, so every poll and listener sees it at the head.
    expect(info!.waitUntil.getTime()).toBe(dueAt.getTime() - 1000 * PRIORITY_STEP_MS);
    await waitFor(() => started.length === 1, { timeoutMs: 8000 });
    expect(started[0]!.at).toBeGreaterThanOrEqual(dueAt.getTime());
  });

  it('orders due tasks as if each came due priority seconds earlier, so low priority waits at most that long', async () => {
    let now = Date.parse('2026-12-01T12:00:00Z');
    const m = makeManager(db, { clock: () => now });
    await m.create(urgentTask, { n: 1, p: 0 }); // due at T
    now += 1500;
    await m.create(urgentTask, { n: 2, p: 1 }); // due at T+1.5 s, ordered as T+0.5 s: after n1
    await m.create(urgentTask, { n: 3, p: 5 }); // due at T+1.5 s, ordered as T-3.5 s: first
    await m.create(urgentTask, { n: 4, p: 0 }); // due at T+1.5 s: last
    // The definition's priority(data) applies; a `priority` option of create wins over it.
    await m.create(urgentTask, { n: 5, p: 0 }, { priority: 3 }); // ordered as T-1.5 s: second
    const order: string[] = [];
    m.handle(urgentTask, (task) => void order.push(task.id));
    m.start();
    await waitFor(() => order.length === 5);
    expect(order).toEqual(['u-3', 'u-5', 'u-1', 'u-2', 'u-4']);
  });

  it('a retried task keeps its priority; reset and retryNow put it back by priority too', async () => {
    const m = makeManager(db);
    let attempts = 0;
    m.handle(urgentTask, () => {
      attempts++;
      throw new Error('always fails');
    }, { retry: fixedDelay({ maxAttempts: 2, delayMs: 60_000 }) });
    await m.create(urgentTask, { n: 1, p: 20 });
    m.start();
    const retrying = await waitFor(async () => {
      const t = await m.get('u-1');
      return t?.status === 'pending' && t.attempts === 1 ? t : undefined;
    });
    expect(retrying.dueAt.getTime() - retrying.waitUntil.getTime()).toBe(20 * PRIORITY_STEP_MS);
    await m.retryNow('u-1');
    await waitFor(() => attempts === 2);
    const failed = await waitFor(async () => {
      const t = await m.get('u-1');
      return t?.status === 'failed' ? t : undefined;
    });
    expect(failed.priority).toBe(20);
  });

  it('refuses a priority out of range', async () => {
    const m = makeManager(db);
    await expect(m.create(jobTask, { n: 1 }, { priority: 1001 })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
    await expect(m.create(jobTask, { n: 1 }, { priority: -1 })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
    await expect(m.create(urgentTask, { n: 1, p: 2.5 })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
  });
});
