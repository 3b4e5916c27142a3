/** Contract: creating tasks — idempotent IDs, createMany's counts, validation that writes nothing, stored values. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, InvalidIdError, InvalidOptionsError, InvalidPayloadError, UnencodableValueError } from '../../src/index.js';
import { BACKENDS, useKits } from './backends.js';

const email = defineTask({
  kind: 'email',
  schema: z.object({ user: z.string().min(1), subject: z.string().default('hello') }),
  id: (d) => `email:${d.user}`,
});

const rich = defineTask({
  kind: 'rich',
  schema: z.object({ at: z.date(), nested: z.object({ list: z.array(z.union([z.number(), z.string(), z.null()])), flag: z.boolean() }) }),
  id: () => 'rich-1',
});

const badIds = defineTask({ kind: 'bad-ids', schema: z.object({ id: z.string() }), id: (d) => d.id });

/** A kind whose payload is anything: what the backend stores is the question. */
const anything = defineTask({ kind: 'anything', schema: z.object({ n: z.number().int(), v: z.unknown() }), id: (d) => `any-${d.n}` });

describe.each(BACKENDS)('%s backend', (backend) => {
  const newKit = useKits(backend);

  it('a second create of the same ID is a no-op: the first payload stays, the handler runs once', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const ran: string[] = [];
    tasks.handle(email, (task) => void ran.push(task.data.subject));

    expect(await tasks.create(email, { user: 'u1', subject: 'first' })).toEqual({ id: 'email:u1', created: true, outcome: 'created' });
    expect(await tasks.create(email, { user: 'u1', subject: 'second' })).toEqual({ id: 'email:u1', created: false, outcome: 'exists' });
    await kit.drain();
    // After it ran, the ID still exists: nothing new.
    expect(await tasks.create(email, { user: 'u1', subject: 'third' })).toMatchObject({ created: false, outcome: 'exists' });
    await kit.drain();

    expect(ran).toEqual(['first']);
    expect(await tasks.get('email:u1')).toMatchObject({ status: 'succeeded', attempts: 1, data: { user: 'u1', subject: 'first' } });
  });

  it('createMany returns IDs in input order and counts only the new ones (a repeated ID in the call counts once)', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    await tasks.create(email, { user: 'c' });

    const result = await tasks.createMany(email, [{ user: 'a' }, { user: 'b' }, { user: 'a' }, { user: 'c' }]);

    expect(result).toEqual({ ids: ['email:a', 'email:b', 'email:a', 'email:c'], created: 2, throttled: 0, debounced: 0 });
    expect((await tasks.countByStatus(email)).pending).toBe(3);
    expect(await tasks.createMany(email, [])).toEqual({ ids: [], created: 0, throttled: 0, debounced: 0 });
  });

  it('an invalid payload, label, priority or ID throws and writes nothing', async () => {
    const kit = await newKit();
    const tasks = kit.manager();

    const bad = await tasks.create(email, { user: '' }).catch((err: unknown) => err);
    expect(bad).toBeInstanceOf(InvalidPayloadError);
    expect((bad as InvalidPayloadError).issues[0]!.path).toBe('user');

    // createMany validates every item before writing any: the good first item is not created either.
    const many = await tasks.createMany(email, [{ user: 'ok' }, { user: 42 as unknown as string }]).catch((err: unknown) => err);
    expect(many).toBeInstanceOf(InvalidPayloadError);
    expect((many as InvalidPayloadError).issues[0]!.path).toMatch(/^\[1\]/);

    await expect(tasks.create(email, { user: 'x' }, { priority: 1001 })).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(tasks.create(email, { user: 'x' }, { labels: { '9bad': 'v' } })).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(tasks.create(email, { user: 'x' }, { waitUntil: new Date(Number.NaN) })).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(tasks.create(badIds, { id: 'a/b' })).rejects.toBeInstanceOf(InvalidIdError);
    await expect(tasks.create(badIds, { id: '' })).rejects.toBeInstanceOf(InvalidIdError);
    await expect(tasks.create(email, { user: 'fn', subject: (() => 'x') as unknown as string })).rejects.toThrow();

    expect(await tasks.list({ limit: 10 })).toMatchObject({ tasks: [], nextCursor: null });
    expect(await tasks.getMany(['email:ok', 'email:x', 'email:fn'])).toEqual([null, null, null]);
  });

  it('payloads and results keep native values: Dates come back as Dates, nested maps and arrays as given', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const at = new Date('2026-05-31T23:59:59.123Z');
    let seen: unknown;
    tasks.handle(rich, (task) => {
      seen = task.data;
      return { doneAt: new Date(at.getTime() + 1000), counts: [1, 2.5, 'three', null], ok: true };
    });
    await tasks.create(rich, { at, nested: { list: [1, 'two', null], flag: false } });
    await kit.drain();

    expect(seen).toEqual({ at, nested: { list: [1, 'two', null], flag: false } });
    const stored = (await tasks.get('rich-1'))!;
    expect(stored.data).toEqual({ at, nested: { list: [1, 'two', null], flag: false } });
    expect(stored.result).toEqual({ doneAt: new Date(at.getTime() + 1000), counts: [1, 2.5, 'three', null], ok: true });
    expect(stored.createdAt).toEqual(kit.now());
  });

  it('a result the backend cannot store fails the task with UNENCODABLE_VALUE, without retries', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    tasks.handle(email, () => new Map([['a', 1]]));
    await tasks.create(email, { user: 'map' });
    await kit.drain();
    const task = (await tasks.get('email:map'))!;
    expect([task.status, task.attempts, task.errors[0]?.code]).toEqual(['failed', 1, new UnencodableValueError('x').code]);
  });

  it('waitUntil holds a task back until its time, then it runs', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const ranAt: number[] = [];
    tasks.handle(email, () => void ranAt.push(kit.now().getTime()));
    const due = new Date(kit.now().getTime() + 3_600_000);
    await tasks.create(email, { user: 'later' }, { waitUntil: due });

    expect(await kit.drain()).toEqual([]);
    expect(await tasks.get('email:later')).toMatchObject({ status: 'pending', waitUntil: due, dueAt: due });
    await kit.advance('59m');
    expect(ranAt).toEqual([]);
    await kit.advance('2m');
    expect(ranAt).toEqual([due.getTime()]);
  });

  it('stores the values Firestore stores, as Firestore reads them back', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const values: [unknown, unknown][] = [
      [{ a: undefined, b: 1 }, { b: 1 }],
      [[undefined, 1], [null, 1]],
      [Number.NaN, Number.NaN],
      [-Infinity, -Infinity],
      [2 ** 53 + 2, 2 ** 53 + 2],
      [5n, 5], // without useBigInt an integer reads back as a number
      [Buffer.from('hi'), Buffer.from('hi')],
      [{ 'a.b': 1, 'x y': 2, 'é': 'ü' }, { 'a.b': 1, 'x y': 2, 'é': 'ü' }],
      [{}, {}],
      [[], []],
    ];
    for (const [n, [given, expected]] of values.entries()) {
      await tasks.create(anything, { n, v: given });
      expect((await tasks.get(`any-${n}`))!.data, `value ${n}`).toEqual({ n, v: expected });
    }
    expect(Object.is(((await tasks.get('any-0'))!.data as { v: unknown }).v, -0)).toBe(false);
    await tasks.create(anything, { n: 100, v: -0 });
    expect(Object.is(((await tasks.get('any-100'))!.data as { v: unknown }).v, -0)).toBe(true);
  });

  it('an array of maps that hold arrays is stored (only an array directly inside an array is refused)', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const order = { lines: [{ sku: 'A-1', tags: ['gift', 'fragile'] }, { sku: 'B-2', tags: [] }] };
    tasks.handle(anything, () => ({ shipments: [{ parcels: [1, 2] }] }));

    await tasks.create(anything, { n: 1, v: order });
    await kit.drain();

    expect(await tasks.get('any-1')).toMatchObject({ status: 'succeeded', data: { n: 1, v: order }, result: { shipments: [{ parcels: [1, 2] }] } });
    await expect(tasks.create(anything, { n: 2, v: { lines: [[1]] } })).rejects.toBeInstanceOf(UnencodableValueError);
  });

  it('a payload with an empty field name is refused, as Firestore refuses it, and nothing is written', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    await expect(tasks.create(anything, { n: 1, v: { '': 1 } })).rejects.toThrow();
    expect(await tasks.get('any-1')).toBeNull();
  });

  it('a payload parsed from JSON with a "__proto__" key can be created, as on Firestore', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const webhook = JSON.parse('{"__proto__": {"polluted": true}, "event": "signup"}') as unknown;
    expect(await tasks.create(anything, { n: 1, v: webhook })).toMatchObject({ created: true });
    expect(((await tasks.get('any-1'))!.data as { v: { event: string } }).v.event).toBe('signup');
  });

  it('a payload larger than a Firestore document is refused (INVALID_ARGUMENT) and nothing is written', async () => {
    const kit = await newKit();
    const tasks = kit.manager();
    const err = await tasks.create(anything, { n: 1, v: 'x'.repeat(1_100_000) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 3 });
    expect(await tasks.get('any-1')).toBeNull();
    // A result that large fails its task instead, without retries.
    tasks.handle(anything, () => 'y'.repeat(1_100_000));
    await tasks.create(anything, { n: 2, v: 'small' });
    await kit.drain();
    expect(await tasks.get('any-2')).toMatchObject({ status: 'failed', attempts: 1, errors: [{ code: 'UNENCODABLE_VALUE' }] });
  });
});
