import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, OnceTaskError, OnceTaskManager } from '../src/index.js';
import { useFirestore, waitFor } from './fixture.js';
import { capturingLogger, jobTask, makeManager, sleep, TEST_COLLECTION } from './support.js';

const db = useFirestore();

describe('malformed documents injected while workers run', () => {
  it('are reported once and marked failed where ours; good tasks and other data are unaffected', async () => {
    const logger = capturingLogger();
    const m = makeManager(db, { logger });
    const ran: string[] = [];
    m.handle(jobTask, (task) => void ran.push(task.id), { concurrency: 4 });
    m.start();
    const col = db.collection(TEST_COLLECTION);
    const now = new Date();
    const valid = (id: string) => ({
      id, kind: 'job', env: m.env, status: 'pending', data: { n: 1 }, resourceKey: null, waitUntil: new Date(0),
      createdAt: now, updatedAt: now, seq: 1, attempts: 0, errorCount: 0, errors: [], doneAt: null, expireAt: null, lease: null,
    });
    const bad = {
      wrongType: { ...valid('bad-type'), attempts: 'three' },
      missingFields: { env: m.env, kind: 'job', status: 'pending', waitUntil: new Date(0), seq: 1 },
      hugeString: { ...valid('bad-huge'), data: { n: 'x'.repeat(900_000) } },
      badTimestamp: { ...valid('bad-ts'), waitUntil: 'yesterday' },
      unknownKind: { ...valid('other-kind'), kind: 'no-such-kind' },
      otherEnv: { ...valid('other-env'), env: `${m.env}-other` },
      unknownStatus: { ...valid('bad-status'), status: 'exploded' },
    };
    const good = Array.from({ length: 20 }, (_, n) => ({ n: 100 + n }));
    await Promise.all([
      m.createMany(jobTask, good),
      ...Object.entries(bad).map(([name, data]) => col.doc(`${m.env}-${name}`).set(data)),
    ]);
    await waitFor(async () => (await m.list({ limit: 50, status: 'succeeded' })).tasks.length === 20, { timeoutMs: 15_000 });
    const state = async (name: keyof typeof bad) => (await col.doc(`${m.env}-${name}`).get()).data()!;
    await waitFor(async () => (await state('wrongType')).status === 'failed' && (await state('missingFields')).status === 'failed' && (await state('hugeString')).status === 'failed', {
      message: 'our malformed documents marked failed',
    });
    // Ours: failed with the reason.
    expect((await state('wrongType')).errors[0]).toMatchObject({ code: 'MALFORMED_TASK', message: expect.stringMatching(/attempts/) });
    expect((await state('missingFields')).errors[0].code).toBe('MALFORMED_TASK');
    expect((await state('hugeString')).errors[0].code).toBe('INVALID_PAYLOAD');
    // Not ours, or not a queue entry at all: left as they were.
    expect((await state('unknownKind')).status).toBe('pending');
    expect((await state('otherEnv')).status).toBe('pending');
    expect((await state('unknownStatus')).status).toBe('exploded');
    // The handler only ever saw good tasks.
    expect(ran.sort()).toEqual(good.map((g) => `job-${g.n}`).sort());
    // Each malformed document was reported once, even though workers kept looking.
    await sleep(300);
    const reports = logger.entries.filter((e) => e.level === 'error' && typeof e.obj.docId === 'string');
    const perDoc = new Map<string, number>();
    for (const r of reports) perDoc.set(r.obj.docId as string, (perDoc.get(r.obj.docId as string) ?? 0) + 1);
    expect(perDoc.get(`${m.env}-wrongType`)).toBe(1);
    expect(perDoc.get(`${m.env}-missingFields`)).toBe(1);
    expect([...perDoc.values()].every((n) => n === 1)).toBe(true);
  }, 30_000);
});

describe('invalid input to every public method', () => {
  const strict = defineTask({ kind: 'strict', schema: z.object({ email: z.email(), count: z.number().int().min(1) }), id: (d) => `s:${d.email}` });

  /** Random junk of every JavaScript type. */
  function junk(seed: number): unknown {
    const values: unknown[] = [
      null, undefined, 0, -1, NaN, Infinity, '', 'x'.repeat(600), 'a/b', true, [], [1, [2]], {}, { count: '3' },
      { email: 'not-an-email', count: 1 }, { email: 'a@b.co', count: 0 }, { email: 'a@b.co', count: 1.5 }, () => 1,
      Symbol('s'), new Map(), new Date('nope'), 10n ** 30n, { email: 'a@b.co', count: 1, extra: () => 1 },
    ];
    return values[seed % values.length];
  }

  it('throws a typed OnceTaskError and writes nothing', async () => {
    const m = makeManager(db);
    const calls: [string, () => unknown][] = [];
    for (let i = 0; i < 23; i++) {
      const j = junk(i);
      const k = junk(i + 7);
      calls.push(
        [`create(${i})`, () => m.create(strict, j as never)],
        [`create opts(${i})`, () => m.create(strict, { email: 'a@b.co', count: 1 }, { waitUntil: j as never, recurrence: k as never })],
        [`createMany(${i})`, () => m.createMany(strict, [{ email: 'a@b.co', count: 1 }, j] as never)],
        [`get(${i})`, () => m.get(j as never)],
        [`list(${i})`, () => m.list({ limit: j as never, status: k as never })],
        [`cancel(${i})`, () => m.cancel(j as never)],
        [`reset(${i})`, () => m.reset(j as never)],
        [`delete(${i})`, () => m.delete(j as never)],
        [`listByResourceKey(${i})`, () => m.listByResourceKey(strict, j as never, { limit: k as never })],
        [`handle(${i})`, () => m.handle(strict, j as never, k as never)],
        [`handleGroup(${i})`, () => m.handleGroup(strict, j as never, k as never)],
        [`getMany(${i})`, () => m.getMany(j as never)],
        [`countPending(${i})`, () => m.countPending(j as never)],
        [`listOccurrences(${i})`, () => m.listOccurrences(j as never, { limit: k as never })],
        [`retryNow(${i})`, () => m.retryNow(j as never)],
        [`cancelMany(${i})`, () => m.cancelMany(j as never)],
        [`cancelByResourceKey(${i})`, () => m.cancelByResourceKey(strict, j as never)],
        [`deleteMany(${i})`, () => m.deleteMany(j as never)],
        [`new OnceTaskManager(${i})`, () => new OnceTaskManager({ firestore: db, env: j as never, collection: k as never })],
        [`stop(${i})`, () => m.stop({ graceMs: j as never })],
      );
    }
    const untyped: string[] = [];
    for (const [name, call] of calls) {
      try {
        await call();
        // Some junk is valid here: a function is a handler, 0 a grace period, [] a list of ids, "a/b" a resource key.
        if (!/^(handle|stop|reset|getMany|cancelMany|cancelByResourceKey|deleteMany|new OnceTaskManager)/.test(name)) untyped.push(`${name}: did not throw`);
      } catch (err) {
        if (!(err instanceof OnceTaskError) || typeof err.code !== 'string') untyped.push(`${name}: ${String(err)}`);
      }
    }
    expect(untyped).toEqual([]);
    expect((await db.collection(TEST_COLLECTION).where('env', '==', m.env).get()).size).toBe(0);
  });
});
