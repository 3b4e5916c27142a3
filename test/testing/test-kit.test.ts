import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, fixedDelay, WaitTimeoutError } from '../../src/index.js';
import { createTestKit, ManualClock, type TestKit } from '../../src/testing/index.js';

const job = defineTask({ kind: 'kit-job', schema: z.object({ n: z.number(), ms: z.number().default(0) }), id: (d) => `kit-job-${d.n}` });

let kit: TestKit;
afterEach(() => kit.teardown());

describe('the testing kit', () => {
  it('advance stops at each due moment: a task scheduled in 3 h runs at 3 h, not at the end', async () => {
    kit = await createTestKit({ start: new Date('2026-12-01T00:00:00Z') });
    const tasks = kit.manager();
    const ranAt: string[] = [];
    tasks.handle(job, () => void ranAt.push(kit.now().toISOString()));
    await tasks.create(job, { n: 1 }, { waitUntil: new Date('2026-12-01T03:00:00Z') });
    await tasks.create(job, { n: 2 }, { waitUntil: new Date('2026-12-01T20:00:00Z') });
    const runs = await kit.advance('25h');
    expect(ranAt).toEqual(['2026-12-01T03:00:00.000Z', '2026-12-01T20:00:00.000Z']);
    expect(runs.map((r) => r.outcome)).toEqual(['succeeded', 'succeeded']);
    expect(kit.now().toISOString()).toBe('2026-12-02T01:00:00.000Z');
  });

  it('crashWorker: the crashed manager writes nothing more; the other re-runs the task once its lease expires', async () => {
    kit = await createTestKit({ start: new Date('2026-12-01T00:00:00Z') });
    const doomed = kit.manager();
    const survivor = kit.manager();
    const attempts: { by: string; attempt: number }[] = [];
    let release!: () => void;
    const stuck = new Promise<void>((resolve) => (release = resolve));
    doomed.handle(job, async (_task, ctx) => {
      attempts.push({ by: 'doomed', attempt: ctx.attempt });
      await stuck; // mid-handler when the process dies
      return 'late';
    }, { leaseMs: 60_000 });
    await doomed.create(job, { n: 1 });
    doomed.start();
    await kit.waitFor('kit-job-1', 'running'); // (drain would wait for the handler to return)
    expect(attempts).toEqual([{ by: 'doomed', attempt: 1 }]);
    await kit.crashWorker(doomed);
    survivor.handle(job, (_task, ctx) => void attempts.push({ by: 'survivor', attempt: ctx.attempt }), { retry: fixedDelay({ maxAttempts: 3, delayMs: 10 }) });
    await kit.advance('59s');
    expect(attempts).toHaveLength(1); // the lease has not expired yet
    await kit.advance('2s');
    expect(attempts).toEqual([{ by: 'doomed', attempt: 1 }, { by: 'survivor', attempt: 2 }]);
    release(); // the crashed handler returns: its outcome is not written
    await new Promise((resolve) => setTimeout(resolve, 50));
    const task = await survivor.get('kit-job-1');
    expect(task).toMatchObject({ status: 'succeeded', attempts: 2, result: null });
    expect(task!.errors.map((e) => e.code)).toEqual(['LEASE_EXPIRED']);
  });

  it('a manager the test stopped stays stopped when the kit advances', async () => {
    kit = await createTestKit();
    const first = kit.manager();
    const ran: string[] = [];
    first.handle(job, (task) => void ran.push(task.id));
    first.start();
    await first.stop();
    await first.create(job, { n: 1 });
    await kit.advance('1h');
    expect(ran).toEqual([]);
    const second = kit.manager();
    second.handle(job, (task) => void ran.push(task.id));
    await kit.drain();
    expect(ran).toEqual(['kit-job-1']);
  });

  it('waitFor resolves for a state reached before the call, by ID or predicate, and times out in real time', async () => {
    kit = await createTestKit();
    const tasks = kit.manager();
    tasks.handle(job, () => 'ok');
    await tasks.create(job, { n: 1 });
    await kit.drain();
    await expect(kit.waitFor('kit-job-1', 'succeeded')).resolves.toMatchObject({ result: 'ok' });
    await expect(kit.waitFor((t) => t.kind === 'kit-job', ['succeeded', 'failed'])).resolves.toMatchObject({ id: 'kit-job-1' });
    await expect(kit.waitFor('kit-job-1', 'failed', { timeoutMs: 50 })).rejects.toBeInstanceOf(WaitTimeoutError);
  });

  it('a manual clock never goes back; a real-clock kit refuses advance', async () => {
    const clock = new ManualClock(new Date('2026-12-01T00:00:00Z'));
    clock.set(new Date('2026-11-01T00:00:00Z'));
    expect(clock.date().toISOString()).toBe('2026-12-01T00:00:00.000Z');
    kit = await createTestKit({ clock: 'real' });
    expect(kit.clock).toBeNull();
    await expect(kit.advance('1s')).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
  });

  it('runs the same on the emulator backend', async () => {
    kit = await createTestKit({ backend: 'emulator', start: new Date('2026-12-01T00:00:00Z') });
    const tasks = kit.manager();
    let calls = 0;
    tasks.handle(job, () => {
      if (++calls < 2) throw new Error('once');
      return 'ok';
    }, { retry: fixedDelay({ maxAttempts: 2, delayMs: 30_000 }) });
    await tasks.create(job, { n: 1 });
    const runs = await kit.advance('1m');
    expect(runs.map((r) => `${r.outcome}@${r.at.toISOString().slice(11, 19)}`)).toEqual(['retrying@00:00:00', 'succeeded@00:00:30']);
  });
});
