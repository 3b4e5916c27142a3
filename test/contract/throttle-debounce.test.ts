/** Contract: throttle and debounce — what a repeated create of one ID does. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, noRetry } from '../../src/index.js';
import { BACKENDS, useKits } from './backends.js';

const WINDOW_MS = 60_000;
const throttled = defineTask({
  kind: 'throttled',
  schema: z.object({ key: z.string(), v: z.number().int() }),
  id: (d) => `t-${d.key}`,
  throttle: { windowMs: WINDOW_MS },
});
const debounced = defineTask({
  kind: 'debounced',
  schema: z.object({ key: z.string(), v: z.number().int() }),
  id: (d) => `d-${d.key}`,
  debounce: { delayMs: 1000, maxDelayMs: 2500 },
});

describe.each(BACKENDS)('%s backend', (backend) => {
  const newKit = useKits(backend);

  it('throttle: within the window a create is throttled; after it a finished task is replaced, an open one exists', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const t0 = kit.now().getTime();
    tasks.handle(throttled, (task) => {
      if (task.data.v === 1) throw new Error('first payload fails');
      return `ran v${task.data.v}`;
    }, { retry: noRetry() });

    expect(await tasks.create(throttled, { key: 'x', v: 1 })).toEqual({ id: 't-x', created: true, outcome: 'created' });
    await kit.drain();
    expect(await tasks.get('t-x')).toMatchObject({ status: 'failed', attempts: 1, errorCount: 1 });
    expect(await tasks.create(throttled, { key: 'x', v: 2 })).toEqual({ id: 't-x', created: false, outcome: 'throttled' });

    await kit.advance(WINDOW_MS);
    expect(await tasks.create(throttled, { key: 'x', v: 3 })).toEqual({ id: 't-x', created: true, outcome: 'created' });
    const replaced = await kit.waitFor('t-x', 'succeeded');
    expect(replaced).toMatchObject({ attempts: 1, errorCount: 0, errors: [], result: 'ran v3', data: { key: 'x', v: 3 }, createdAt: new Date(t0 + WINDOW_MS) });

    await tasks.create(throttled, { key: 'later', v: 1 }, { waitUntil: new Date(kit.now().getTime() + 3_600_000) });
    await kit.advance(WINDOW_MS);
    expect((await tasks.create(throttled, { key: 'later', v: 2 })).outcome).toBe('exists');
    expect((await tasks.get('t-later'))!.data).toEqual({ key: 'later', v: 1 });
  });

  it('throttle: createMany applies the rule per item and counts the throttled ones', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    await tasks.create(throttled, { key: 'a', v: 0 });
    const result = await tasks.createMany(throttled, [{ key: 'a', v: 1 }, { key: 'b', v: 1 }, { key: 'b', v: 2 }, { key: 'c', v: 1 }]);
    expect(result).toEqual({ ids: ['t-a', 't-b', 't-b', 't-c'], created: 2, throttled: 2, debounced: 0 });
    expect((await tasks.get('t-b'))!.data).toEqual({ key: 'b', v: 1 });
  });

  it('throttle: two managers creating one ID at once make exactly one task', async () => {
    const kit = await newKit();
    const [a, b] = [kit.manager(), kit.manager()];
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a : b).create(throttled, { key: 'x', v: i })));
    expect(results.map((r) => r.outcome).sort()).toEqual(['created', ...Array<string>(7).fill('throttled')]);
    const winner = results.findIndex((r) => r.outcome === 'created');
    expect((await a.get('t-x'))!.data).toEqual({ key: 'x', v: winner });
    expect((await a.countByStatus()).pending).toBe(1);
  });

  it('debounce: a repeated create moves the pending task and replaces its payload, never past maxDelayMs; it runs once with the last payload', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const t0 = kit.now().getTime();
    expect(await tasks.create(debounced, { key: 'k', v: 1 })).toEqual({ id: 'd-k', created: true, outcome: 'created' });
    expect(await tasks.get('d-k')).toMatchObject({ dueAt: new Date(t0 + 1000), createdAt: new Date(t0) });

    kit.clock!.set(t0 + 500);
    expect(await tasks.create(debounced, { key: 'k', v: 2 })).toEqual({ id: 'd-k', created: false, outcome: 'debounced' });
    expect(await tasks.get('d-k')).toMatchObject({ dueAt: new Date(t0 + 1500), data: { key: 'k', v: 2 }, createdAt: new Date(t0) });
    kit.clock!.set(t0 + 2000); // now + delay would be t0 + 3000, past the cap t0 + 2500
    expect((await tasks.create(debounced, { key: 'k', v: 3 })).outcome).toBe('debounced');
    expect(await tasks.get('d-k')).toMatchObject({ dueAt: new Date(t0 + 2500), data: { key: 'k', v: 3 } });
    expect((await kit.manager().create(debounced, { key: 'k', v: 4 })).outcome).toBe('debounced'); // another process: the same cap
    expect(await tasks.get('d-k')).toMatchObject({ dueAt: new Date(t0 + 2500), data: { key: 'k', v: 4 } });

    const ran: string[] = [];
    tasks.handle(debounced, (task) => void ran.push(`v${task.data.v}@${kit.now().getTime() - t0}`));
    await kit.advance('10s');
    expect(ran).toEqual(['v4@2500']);
    // Finished: a create makes a new task.
    expect((await tasks.create(debounced, { key: 'k', v: 5 })).outcome).toBe('created');
    await kit.advance('10s');
    expect(ran).toEqual(['v4@2500', 'v5@13000']); // created at t0 + 12 s, due delayMs later
  });

  it('debounce: createMany handles items of one ID in input order (the last payload wins)', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const result = await tasks.createMany(debounced, [{ key: 'a', v: 1 }, { key: 'b', v: 1 }, { key: 'a', v: 2 }, { key: 'a', v: 3 }]);
    expect(result).toEqual({ ids: ['d-a', 'd-b', 'd-a', 'd-a'], created: 2, throttled: 0, debounced: 2 });
    expect((await tasks.get('d-a'))!.data).toEqual({ key: 'a', v: 3 });
  });
});
