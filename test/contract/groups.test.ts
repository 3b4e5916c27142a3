/** Contract: grouped handlers (handleGroup) — batches of one resource key, per-task outcomes. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, fixedDelay, noRetry } from '../../src/index.js';
import { BACKENDS, useKits } from './backends.js';

const keyed = defineTask({
  kind: 'keyed',
  schema: z.object({ n: z.number().int(), key: z.string() }),
  id: (d) => `keyed-${d.n}`,
  resourceKey: (d) => d.key,
});

/** The same shape without a resource key. */
const plain = defineTask({ kind: 'plain', schema: z.object({ n: z.number().int() }), id: (d) => `plain-${d.n}` });

describe.each(BACKENDS)('%s backend', (backend) => {
  const newKit = useKits(backend);

  it('handleGroup: each call gets the ready tasks of one key in queue order (up to maxBatchSize); unkeyed tasks come alone', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const calls: string[] = [];
    const record = (group: { data: { n: number } }[], ctx: { resourceKey: string | null }): void => {
      calls.push(`${ctx.resourceKey}:${group.map((t) => t.data.n).join(',')}`);
    };
    tasks.handleGroup(keyed, record, { maxBatchSize: 3 });
    tasks.handleGroup(plain, record, { maxBatchSize: 3 });
    await tasks.createMany(keyed, [
      { n: 1, key: 'a' }, { n: 2, key: 'b' }, { n: 3, key: 'a' }, { n: 4, key: 'a' }, { n: 5, key: 'a' }, { n: 6, key: 'b' },
    ]);
    await tasks.createMany(plain, [{ n: 7 }, { n: 8 }]);

    await kit.drain();

    expect(calls.sort()).toEqual(['a:1,3,4', 'a:5', 'b:2,6', 'null:7', 'null:8']);
    expect((await tasks.countByStatus()).succeeded).toBe(8);
    expect(kit.runs.filter((r) => r.outcome === 'succeeded')).toHaveLength(8);
  });

  it('handleGroup: one entry per task — an Error fails that task alone, anything else is its result; a throw fails them all', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    tasks.handleGroup(keyed, (group) => {
      if (group[0]!.resourceKey === 'throws') throw new Error('whole group failed');
      if (group[0]!.resourceKey === 'short') return ['only one entry'];
      return group.map((t) => (t.data.n === 2 ? new Error('item 2 failed') : `result ${t.data.n}`));
    }, { retry: noRetry() });
    await tasks.createMany(keyed, [
      { n: 1, key: 'mixed' }, { n: 2, key: 'mixed' }, { n: 3, key: 'mixed' },
      { n: 4, key: 'throws' }, { n: 5, key: 'throws' }, { n: 6, key: 'short' }, { n: 7, key: 'short' },
    ]);

    await kit.drain();

    const got = await tasks.getMany(['keyed-1', 'keyed-2', 'keyed-3', 'keyed-4', 'keyed-5', 'keyed-6', 'keyed-7']);
    expect(got.map((t) => [t!.status, t!.status === 'succeeded' ? t!.result : t!.errors[0]!.message])).toEqual([
      ['succeeded', 'result 1'],
      ['failed', 'item 2 failed'],
      ['succeeded', 'result 3'],
      ['failed', 'whole group failed'],
      ['failed', 'whole group failed'],
      ['failed', expect.any(String)],
      ['failed', expect.any(String)],
    ]);
    expect(got[5]!.errors[0]!.code).toBe('INVALID_OPTIONS');
  });

  it('handleGroup: tasks that failed together are retried together, as one group, after their delay', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const t0 = kit.now().getTime();
    const calls: string[] = [];
    tasks.handleGroup(keyed, (group) => {
      calls.push(`${group.map((t) => `${t.data.n}#${t.attempt}`).join(',')}@${kit.now().getTime() - t0}`);
      if (group[0]!.attempt === 1) throw new Error('downstream unavailable');
    }, { retry: fixedDelay({ delayMs: 5000, maxAttempts: 3 }) });
    await tasks.createMany(keyed, [{ n: 1, key: 'a' }, { n: 2, key: 'a' }, { n: 3, key: 'a' }]);

    await kit.advance('1m');

    expect(calls).toEqual(['1#1,2#1,3#1@0', '1#2,2#2,3#2@5000']);
    expect((await tasks.countByStatus(keyed)).succeeded).toBe(3);
  });
});
