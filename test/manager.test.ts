import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  defineTask,
  EnvironmentMismatchError,
  InvalidOptionsError,
  InvalidPayloadError,
  InvalidStateError,
  OnceTaskManager,
  TaskNotFoundError,
  UnencodableValueError,
} from '../src/index.js';
import { uniqueEnv, useFirestore, waitFor } from './fixture.js';
import { jobTask, makeManager, TEST_COLLECTION } from './support.js';

const db = useFirestore();

const rawDocs = async (env: string, id?: string) => {
  let q = db.collection(TEST_COLLECTION).where('env', '==', env);
  if (id !== undefined) q = q.where('id', '==', id);
  return (await q.get()).docs;
};

const profileTask = defineTask({
  kind: 'profile',
  schema: z.object({ userId: z.string().min(1), at: z.date(), tags: z.array(z.string()).optional() }),
  id: (d) => `profile:${d.userId}`,
});

describe('create', () => {
  it('is idempotent: the same ID again returns created false and keeps the original data', async () => {
    const m = makeManager(db);
    expect(await m.create(jobTask, { n: 1, sleepMs: 5 })).toEqual({ id: 'job-1', created: true, outcome: 'created' });
    expect(await m.create(jobTask, { n: 1, sleepMs: 999 })).toEqual({ id: 'job-1', created: false, outcome: 'exists' });
    expect((await m.get('job-1'))!.data).toEqual({ n: 1, sleepMs: 5 });
    expect(await rawDocs(m.env, 'job-1')).toHaveLength(1);
  });

  it('scopes IDs per environment: the same ID exists once in each', async () => {
    const a = makeManager(db);
    const b = makeManager(db);
    expect((await a.create(jobTask, { n: 7 })).created).toBe(true);
    expect((await b.create(jobTask, { n: 7, sleepMs: 1 })).created).toBe(true);
    expect((await a.get('job-7'))!.env).toBe(a.env);
    expect((await b.get('job-7'))!.data).toEqual({ n: 7, sleepMs: 1 });
    await a.delete('job-7');
    expect(await b.get('job-7')).not.toBeNull();
  });

  it('refuses an invalid payload naming the field, and writes nothing', async () => {
    const m = makeManager(db);
    await expect(m.create(profileTask, { userId: '', at: new Date() })).rejects.toThrow(/field "userId"/);
    await expect(m.create(profileTask, { userId: 'u', at: 'yesterday' as never })).rejects.toBeInstanceOf(InvalidPayloadError);
    expect(await rawDocs(m.env)).toHaveLength(0);
  });

  it('refuses a payload Firestore cannot store, naming the path', async () => {
    const loose = defineTask({ kind: 'loose', schema: z.record(z.string(), z.unknown()), id: () => 'loose-1' });
    const m = makeManager(db);
    await expect(m.create(loose, { fn: () => 1 })).rejects.toBeInstanceOf(UnencodableValueError);
    await expect(m.create(loose, { fn: () => 1 })).rejects.toThrow(/"fn"/);
    expect(await rawDocs(m.env)).toHaveLength(0);
  });

  it('stores Firestore types: Timestamps for times, dates in payloads come back as Dates', async () => {
    const m = makeManager(db);
    const at = new Date('2026-03-29T01:30:00.250Z');
    const waitUntil = new Date(Date.now() + 60_000);
    await m.create(profileTask, { userId: 'u1', at, tags: ['a'] }, { waitUntil });
    const [doc] = await rawDocs(m.env, 'profile:u1');
    const raw = doc!.data();
    for (const field of ['waitUntil', 'createdAt', 'updatedAt']) expect(raw[field].constructor.name).toBe('Timestamp');
    expect(raw.data.at.constructor.name).toBe('Timestamp');
    expect(raw.status).toBe('pending');
    const info = await m.get('profile:u1');
    expect(info!.data).toEqual({ userId: 'u1', at, tags: ['a'] });
    expect(info!.waitUntil.getTime()).toBe(waitUntil.getTime());
  });

  it('validates options: bad waitUntil, transaction plus batch, non-definitions', async () => {
    const m = makeManager(db);
    await expect(m.create(jobTask, { n: 1 }, { waitUntil: new Date('x') })).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(m.create(jobTask, { n: 1 }, { transaction: {} as never, batch: {} as never })).rejects.toThrow(/either/);
    await expect(m.create({ kind: 'job' } as never, { n: 1 } as never)).rejects.toThrow(/defineTask/);
    expect(await rawDocs(m.env)).toHaveLength(0);
  });

  it('writes atomically with the caller transaction, and not at all when it fails', async () => {
    const m = makeManager(db);
    const account = db.collection('accounts-test').doc(m.env);
    const first = await db.runTransaction(async (tx) => {
      const result = await m.create(jobTask, { n: 1 }, { transaction: tx });
      tx.set(account, { welcomed: true });
      return result;
    });
    expect(first).toEqual({ id: 'job-1', created: true, outcome: 'created' });
    expect((await account.get()).data()).toEqual({ welcomed: true });
    expect(await m.get('job-1')).not.toBeNull();

    await expect(
      db.runTransaction(async (tx) => {
        await m.create(jobTask, { n: 2 }, { transaction: tx });
        throw new Error('caller aborts');
      }),
    ).rejects.toThrow('caller aborts');
    expect(await m.get('job-2')).toBeNull();

    const again = await db.runTransaction((tx) => m.create(jobTask, { n: 1 }, { transaction: tx }));
    expect(again.created).toBe(false);
  });

  it('adds the create to a caller batch, committed with the caller writes', async () => {
    const m = makeManager(db);
    const batch = db.batch();
    const marker = db.collection('accounts-test').doc(`${m.env}-batch`);
    expect(await m.create(jobTask, { n: 3 }, { batch })).toEqual({ id: 'job-3', created: true, outcome: 'created' });
    batch.set(marker, { ok: 1 });
    expect(await m.get('job-3')).toBeNull(); // not before commit
    await batch.commit();
    expect((await m.get('job-3'))!.status).toBe('pending');
    expect((await m.create(jobTask, { n: 3 }, { batch: db.batch() })).created).toBe(false);
  });
});

describe('createMany', () => {
  it('creates new ones, counts them, and returns IDs in input order', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 2 });
    const result = await m.createMany(jobTask, [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 3 }]);
    expect(result).toEqual({ ids: ['job-1', 'job-2', 'job-3', 'job-3'], created: 2, throttled: 0, debounced: 0 });
    expect(await rawDocs(m.env)).toHaveLength(3);
  });

  it('validates every payload before writing any, naming the item and field', async () => {
    const m = makeManager(db);
    await expect(m.createMany(jobTask, [{ n: 1 }, { n: 1.5 }])).rejects.toThrow(/field "\[1\]\.n"/);
    expect(await rawDocs(m.env)).toHaveLength(0);
  });
});

describe('reads', () => {
  it('get returns null for an unknown ID; getMany keeps the order', async () => {
    const m = makeManager(db);
    await m.createMany(jobTask, [{ n: 1 }, { n: 2 }]);
    expect(await m.get('job-404')).toBeNull();
    const many = await m.getMany(['job-2', 'job-404', 'job-1']);
    expect(many.map((t) => t?.id ?? null)).toEqual(['job-2', null, 'job-1']);
  });

  it('countPending counts pending tasks of the kind with an aggregation', async () => {
    const m = makeManager(db);
    await m.createMany(jobTask, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    await m.create(profileTask, { userId: 'x', at: new Date() });
    expect(await m.countPending(jobTask)).toBe(3);
    await m.delete('job-1');
    expect(await m.countPending(jobTask)).toBe(2);
  });

  it('list pages newest first with a cursor, filtered by kind and status', async () => {
    const m = makeManager(db);
    for (let n = 1; n <= 5; n++) await m.create(jobTask, { n });
    await m.create(profileTask, { userId: 'p', at: new Date() });
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await m.list({ kind: jobTask, limit: 2, cursor });
      seen.push(...page.tasks.map((t) => t.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual(['job-5', 'job-4', 'job-3', 'job-2', 'job-1']);
    expect((await m.list({ limit: 10 })).tasks).toHaveLength(6);
    expect((await m.list({ limit: 10, status: 'succeeded' })).tasks).toHaveLength(0);
    expect((await m.list({ limit: 10, kind: 'profile', status: 'pending' })).tasks.map((t) => t.id)).toEqual(['profile:p']);
  });

  it('list validates its options', async () => {
    const m = makeManager(db);
    await expect(m.list({ limit: 0 })).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(m.list({ limit: 5, status: 'lost' as never })).rejects.toThrow(/status/);
    await expect(m.list({ limit: 5, cursor: 'garbage' })).rejects.toThrow(/cursor/);
  });
});

describe('admin operations', () => {
  it('reset puts terminal tasks back to pending and leaves others alone', async () => {
    const m = makeManager(db);
    await m.createMany(jobTask, [{ n: 1 }, { n: 2, failTimes: 9 }, { n: 3, sleepMs: 60_000 }]);
    m.handle(jobTask, async (task) => {
      if (task.data.failTimes > 0) throw new Error('always');
      if (task.data.sleepMs > 0) await new Promise(() => undefined);
      return 'ok';
    }, { retry: { shouldRetry: () => false, nextDelayMs: () => 0 }, concurrency: 3 });
    m.start();
    await waitFor(async () => (await m.get('job-1'))?.status === 'succeeded' && (await m.get('job-2'))?.status === 'failed');
    await waitFor(async () => (await m.get('job-3'))?.status === 'running');
    await m.stop({ graceMs: 0 });
    // job-3 was released by stop(): pending, not terminal, so reset leaves it.
    expect(await m.reset(['job-1', 'job-2', 'job-3', 'job-404'])).toBe(2);
    const [one, two] = await m.getMany(['job-1', 'job-2']);
    for (const t of [one!, two!]) {
      expect(t.status).toBe('pending');
      expect(t.attempts).toBe(0);
      expect(t.errors).toEqual([]);
      expect(t.doneAt).toBeNull();
      expect(t.expireAt).toBeNull();
    }
  });

  it('retryNow makes a waiting task due now and refuses running or finished ones', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 }, { waitUntil: new Date(Date.now() + 3600_000) });
    await m.retryNow('job-1');
    expect((await m.get('job-1'))!.waitUntil.getTime()).toBeLessThanOrEqual(Date.now());
    await expect(m.retryNow('job-404')).rejects.toBeInstanceOf(TaskNotFoundError);
    m.handle(jobTask, () => 'done');
    m.start();
    await waitFor(async () => (await m.get('job-1'))?.status === 'succeeded');
    await expect(m.retryNow('job-1')).rejects.toBeInstanceOf(InvalidStateError);
  });

  it('delete and deleteMany report what existed', async () => {
    const m = makeManager(db);
    const base = 900_000_000 + Math.floor(Math.random() * 1e8); // IDs no other test environment has
    await m.createMany(jobTask, [{ n: base + 1 }, { n: base + 2 }, { n: base + 3 }]);
    expect(await m.delete(`job-${base + 1}`)).toBe(true);
    expect(await m.delete(`job-${base + 1}`)).toBe(false);
    expect(await m.deleteMany([`job-${base + 1}`, `job-${base + 2}`, `job-${base + 3}`, `job-${base + 3}`])).toBe(2);
    expect(await rawDocs(m.env)).toHaveLength(0);
  });

  it('refuses to change a task of another environment, and changes nothing', async () => {
    const a = makeManager(db);
    const b = makeManager(db);
    const id = `job-${800_000_000 + Math.floor(Math.random() * 1e8)}`;
    const n = Number(id.slice(4));
    await a.create(jobTask, { n }, { waitUntil: new Date(Date.now() + 60_000) });
    expect(await b.get(id)).toBeNull();
    await expect(b.retryNow(id)).rejects.toBeInstanceOf(EnvironmentMismatchError);
    await expect(b.delete(id)).rejects.toThrow(`exists in "${a.env}"`);
    await expect(b.reset([id])).rejects.toMatchObject({ code: 'ENVIRONMENT_MISMATCH' });
    await expect(b.cancel(id)).rejects.toBeInstanceOf(EnvironmentMismatchError);
    await expect(b.cancelMany([id])).rejects.toBeInstanceOf(EnvironmentMismatchError);
    await expect(b.deleteMany([id])).rejects.toBeInstanceOf(EnvironmentMismatchError);
    expect(await a.get(id)).toMatchObject({ status: 'pending', cancelRequested: false });
    await expect(b.cancel('job-never-created')).rejects.toBeInstanceOf(TaskNotFoundError);
  });
});

describe('manager options', () => {
  it('defaults env to ONCE_TASK_ENV, else "default", and the collection to onceTasks', () => {
    const saved = process.env.ONCE_TASK_ENV;
    try {
      delete process.env.ONCE_TASK_ENV;
      expect(new OnceTaskManager({ firestore: db }).env).toBe('default');
      process.env.ONCE_TASK_ENV = 'staging';
      const m = new OnceTaskManager({ firestore: db });
      expect(m.env).toBe('staging');
      expect(m.collection).toBe('onceTasks');
    } finally {
      if (saved === undefined) delete process.env.ONCE_TASK_ENV;
      else process.env.ONCE_TASK_ENV = saved;
    }
  });

  it('rejects invalid options naming the option', () => {
    expect(() => new OnceTaskManager({ firestore: {} as never })).toThrow(/firestore/);
    expect(() => new OnceTaskManager({ firestore: db, env: 'a/b' })).toThrow(/option "env"/);
    expect(() => new OnceTaskManager({ firestore: db, collection: '' })).toThrow(/option "collection"/);
    expect(() => new OnceTaskManager({ firestore: db, pollIntervalMs: 1 })).toThrow(/pollIntervalMs/);
    expect(() => new OnceTaskManager({ firestore: db, retentionMs: -5 })).toThrow(InvalidOptionsError);
  });

  it('uses a custom collection', async () => {
    const collection = `tasks_${uniqueEnv().replace(/-/g, '_')}`;
    const m = makeManager(db, { collection });
    await m.create(jobTask, { n: 1 });
    expect((await db.collection(collection).get()).size).toBe(1);
  });
});
