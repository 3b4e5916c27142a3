/** Contract: resource keys — one task of a key at a time across processes, cooldown, strict order. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, fixedDelay, noRetry } from '../../src/index.js';
import { BACKENDS, deferred, useKits } from './backends.js';

const keyed = defineTask({
  kind: 'keyed',
  schema: z.object({ n: z.number().int(), key: z.string() }),
  id: (d) => `keyed-${d.n}`,
  resourceKey: (d) => d.key,
});

function ordered(strictOrder: boolean) {
  return defineTask({
    kind: strictOrder ? 'strict' : 'loose',
    schema: z.object({ n: z.number().int(), failFirst: z.boolean().default(false) }),
    id: (d) => `o-${d.n}`,
    resourceKey: () => 'account-1',
    strictOrder,
  });
}

const tick = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(BACKENDS)('%s backend', (backend) => {
  const newKit = useKits(backend);

  it('never runs two tasks of one key at once, across two managers, while other keys run beside them', async () => {
    const kit = await newKit();
    const active = new Map<string, number>();
    let maxPerKey = 0;
    let running = 0;
    let maxRunning = 0;
    const ran: string[] = [];
    for (const m of [kit.manager(), kit.manager()]) {
      m.handle(keyed, async (task) => {
        const key = task.resourceKey!;
        active.set(key, (active.get(key) ?? 0) + 1);
        maxPerKey = Math.max(maxPerKey, active.get(key)!);
        maxRunning = Math.max(maxRunning, ++running);
        await tick(4);
        ran.push(task.id);
        running--;
        active.set(key, active.get(key)! - 1);
      }, { concurrency: 4 });
    }
    await kit.manager().createMany(keyed, Array.from({ length: 12 }, (_, n) => ({ n, key: `k${n % 3}` })));

    await kit.drain();

    expect(ran.sort()).toEqual(Array.from({ length: 12 }, (_, n) => `keyed-${n}`).sort());
    expect(maxPerKey).toBe(1);
    expect(maxRunning).toBeGreaterThan(1);
  });

  it('a key whose task is running in one manager is skipped by another, which runs the other keys', async () => {
    const kit = await newKit();
    const holder = kit.manager();
    const started = deferred();
    const release = deferred();
    holder.handle(keyed, async () => {
      started.resolve();
      await release.promise;
    });
    await holder.create(keyed, { n: 1, key: 'busy' });
    holder.start();
    await started.promise;
    const other = kit.manager();
    const ran: string[] = [];
    other.handle(keyed, (task) => void ran.push(task.id), { concurrency: 2 });
    await other.createMany(keyed, [{ n: 2, key: 'busy' }, { n: 3, key: 'free' }, { n: 4, key: 'free-too' }]);

    other.start();
    await kit.waitFor('keyed-4', 'succeeded');
    await kit.waitFor('keyed-3', 'succeeded');
    expect(ran.sort()).toEqual(['keyed-3', 'keyed-4']);
    expect((await other.get('keyed-2'))!.status).toBe('pending');

    release.resolve();
    await kit.waitFor('keyed-2', 'succeeded');
    expect((await other.listByResourceKey(keyed, 'busy')).map((t) => [t.id, t.status])).toEqual([['keyed-1', 'succeeded'], ['keyed-2', 'succeeded']]);
  });

  it('cooldownMs: a key\'s next task starts no sooner than the cooldown after the last one finished; other keys are not held up', async () => {
    const kit = await newKit();
    const t0 = kit.now().getTime();
    const starts: string[] = [];
    for (const m of [kit.manager(), kit.manager()]) {
      m.handle(keyed, (task) => {
        starts.push(`${task.id}@${kit.now().getTime() - t0}`);
        if (task.data.n === 2) throw new Error('fails: the cooldown applies whatever the outcome');
      }, { cooldownMs: 60_000, retry: noRetry(), concurrency: 2 });
    }
    await kit.manager().createMany(keyed, [{ n: 1, key: 'k' }, { n: 2, key: 'k' }, { n: 3, key: 'k' }, { n: 4, key: 'other' }]);

    await kit.advance('10m');

    expect(starts.filter((s) => s.startsWith('keyed-4'))).toEqual(['keyed-4@0']);
    expect(starts.filter((s) => !s.startsWith('keyed-4'))).toEqual(['keyed-1@0', 'keyed-2@60000', 'keyed-3@120000']);
  });

  it('cooldownMs after a crash runs from the dead holder\'s lease expiry', async () => {
    const kit = await newKit();
    const t0 = kit.now().getTime();
    const doomed = kit.manager();
    const started = deferred();
    doomed.handle(keyed, async () => {
      started.resolve();
      await new Promise(() => undefined);
    }, { cooldownMs: 30_000, leaseMs: 60_000 });
    const survivor = kit.manager();
    const starts: string[] = [];
    survivor.handle(keyed, (task, ctx) => void starts.push(`${task.id}#${ctx.attempt}@${kit.now().getTime() - t0}`), { cooldownMs: 30_000, leaseMs: 60_000 });
    await doomed.create(keyed, { n: 1, key: 'k' });
    doomed.start();
    await started.promise;
    await doomed.create(keyed, { n: 2, key: 'k' });
    await kit.crashWorker(doomed);

    await kit.advance('10m');

    // The lease expires at 60 s and the key cools down from then: its first task (by due time: keyed-2,
    // due at 0; the lost attempt's retry is due at the lease's expiry) starts at 90 s, the next 30 s
    // after that one ended.
    expect(starts).toEqual(['keyed-2#1@90000', 'keyed-1#2@120000']);
  });

  it('strictOrder: a failed attempt blocks its key until the task succeeds, so the key runs in creation order', async () => {
    const kit = await newKit();
    const def = ordered(true);
    const tasks = kit.manager();
    const order: string[] = [];
    tasks.handle(def, (task, ctx) => {
      order.push(`${task.id}#${ctx.attempt}`);
      if (task.data.failFirst && ctx.attempt === 1) throw new Error('first attempt fails');
    }, { retry: fixedDelay({ delayMs: 60_000, maxAttempts: 3 }) });
    await tasks.createMany(def, [{ n: 1, failFirst: true }, { n: 2 }, { n: 3 }]);

    await kit.advance('5m');

    expect(order).toEqual(['o-1#1', 'o-1#2', 'o-2#1', 'o-3#1']);
  });

  it('without strictOrder a key\'s later tasks run while its retry waits', async () => {
    const kit = await newKit();
    const def = ordered(false);
    const tasks = kit.manager();
    const order: string[] = [];
    tasks.handle(def, (task, ctx) => {
      order.push(`${task.id}#${ctx.attempt}`);
      if (task.data.failFirst && ctx.attempt === 1) throw new Error('first attempt fails');
    }, { retry: fixedDelay({ delayMs: 60_000, maxAttempts: 3 }) });
    await tasks.createMany(def, [{ n: 1, failFirst: true }, { n: 2 }, { n: 3 }]);

    await kit.advance('5m');

    expect(order).toEqual(['o-1#1', 'o-2#1', 'o-3#1', 'o-1#2']);
  });
});
