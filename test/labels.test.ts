import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, InvalidOptionsError, MAX_LABELS, PRIORITY_STEP_MS } from '../src/index.js';
import { useFirestore } from './fixture.js';
import { makeManager, runCli, TEST_COLLECTION } from './support.js';

const db = useFirestore();

/** A kind labelled from its payload (tenant), with a priority from its payload too. */
const report = defineTask({
  kind: 'report',
  schema: z.object({ n: z.number().int(), tenant: z.string(), urgent: z.boolean().default(false) }),
  id: (d) => `report-${d.n}`,
  labels: (d) => ({ tenant: d.tenant, source: 'payload' }),
  priority: (d) => (d.urgent ? 10 : 0),
});
const plain = defineTask({ kind: 'plain', schema: z.object({ n: z.number().int() }), id: (d) => `plain-${d.n}` });

async function refusal(fn: () => unknown): Promise<InvalidOptionsError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidOptionsError);
    return err as InvalidOptionsError;
  }
  throw new Error('expected an InvalidOptionsError');
}

const cli = runCli;

describe('labels', () => {
  it('are merged over the definition\'s labels(data) and stored', async () => {
    const m = makeManager(db);
    await m.create(report, { n: 1, tenant: 'acme' }, { labels: { source: 'option', env: 'eu' } });
    await m.createMany(report, [{ n: 2, tenant: 'globex' }], { labels: { batch: 'b1' } });
    await m.create(plain, { n: 1 });
    const [one, two, three] = await m.getMany(['report-1', 'report-2', 'plain-1']);
    expect(one!.labels).toEqual({ tenant: 'acme', source: 'option', env: 'eu' });
    expect(two!.labels).toEqual({ tenant: 'globex', source: 'payload', batch: 'b1' });
    expect(three!.labels).toEqual({});
    const raw = (await db.collection(TEST_COLLECTION).where('env', '==', m.env).where('id', '==', 'report-1').get()).docs[0]!.data();
    expect(raw.labelPairs).toEqual(['env=eu', 'source=option', 'tenant=acme']);
  });

  it('bad labels throw InvalidOptionsError and nothing is written', async () => {
    const m = makeManager(db);
    expect((await refusal(() => m.create(plain, { n: 1 }, { labels: { '1bad': 'x' } }))).message).toMatch(/label key "1bad"/);
    await refusal(() => m.create(plain, { n: 2 }, { labels: { tenant: '' } }));
    await refusal(() => m.create(plain, { n: 3 }, { labels: { tenant: 42 as unknown as string } }));
    await refusal(() => m.create(plain, { n: 4 }, { labels: 'tenant=acme' as unknown as Record<string, string> }));
    const eleven = Object.fromEntries(Array.from({ length: MAX_LABELS + 1 }, (_, i) => [`k${i}`, 'v']));
    expect((await refusal(() => m.create(plain, { n: 5 }, { labels: eleven }))).message).toMatch(/at most 10 labels/);
    // The definition's two labels plus nine given: eleven in all.
    const nine = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`k${i}`, 'v']));
    await refusal(() => m.create(report, { n: 6, tenant: 'acme' }, { labels: nine }));
    await refusal(() => m.createMany(plain, [{ n: 7 }, { n: 8 }], { labels: { 'a b': 'x' } }));
    const badDef = defineTask({ kind: 'bad-labels', schema: z.object({}), id: () => 'bad', labels: () => ({ ok: 'x', 'no=pe': 'y' }) });
    await refusal(() => m.create(badDef, {}));
    expect((await m.getMany(['plain-1', 'plain-2', 'plain-3', 'plain-4', 'plain-5', 'report-6', 'plain-7', 'plain-8', 'bad'])).every((t) => t === null)).toBe(true);
    expect(m.stats().writes).toBe(0);
  });

  it('list() filters by one label, by two, and with kind and status; pages with the cursor', async () => {
    const m = makeManager(db);
    await m.createMany(report, [1, 2, 3, 4, 5].map((n) => ({ n, tenant: 'acme' })));
    await m.createMany(report, [6, 7].map((n) => ({ n, tenant: 'globex' })));
    await m.create(report, { n: 8, tenant: 'acme' }, { labels: { region: 'eu' } });
    await m.create(report, { n: 9, tenant: 'globex' }, { labels: { region: 'eu' } });
    await m.create(plain, { n: 1 }, { labels: { tenant: 'acme', region: 'eu' } });
    const ids = async (options: Parameters<typeof m.list>[0]) => (await m.list(options)).tasks.map((t) => t.id).sort();

    expect(await ids({ limit: 100, labels: { tenant: 'acme' } })).toEqual(['plain-1', 'report-1', 'report-2', 'report-3', 'report-4', 'report-5', 'report-8']);
    expect(await ids({ limit: 100, labels: { tenant: 'acme', region: 'eu' } })).toEqual(['plain-1', 'report-8']);
    expect(await ids({ limit: 100, labels: { region: 'eu', tenant: 'acme' }, kind: report })).toEqual(['report-8']);
    expect(await ids({ limit: 100, labels: { tenant: 'acme' }, kind: 'plain', status: 'pending' })).toEqual(['plain-1']);
    expect(await ids({ limit: 100, labels: { tenant: 'acme' }, status: 'succeeded' })).toEqual([]);
    expect(await ids({ limit: 100, labels: { tenant: 'initech' } })).toEqual([]);

    // A page at a time, with and without client-side filters: every task once (createMany's share
    // one createdAt, so among them the order is the document ID's).
    for (const filter of [{ labels: { tenant: 'acme' } }, { labels: { tenant: 'acme' }, kind: report }]) {
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await m.list({ limit: 2, ...filter, ...(cursor ? { cursor } : {}) });
        expect(page.tasks.length).toBeLessThanOrEqual(2);
        seen.push(...page.tasks.map((t) => t.id));
        cursor = page.nextCursor ?? undefined;
        pages++;
      } while (cursor !== undefined);
      const expected = filter.kind ? ['report-8', 'report-1', 'report-2', 'report-3', 'report-4', 'report-5'] : ['plain-1', 'report-8', 'report-1', 'report-2', 'report-3', 'report-4', 'report-5'];
      expect(seen.slice(0, 2 - (filter.kind ? 1 : 0))).toEqual(expected.slice(0, 2 - (filter.kind ? 1 : 0))); // the newest first
      expect([...seen].sort()).toEqual([...expected].sort());
      expect(pages).toBe(Math.ceil(expected.length / 2));
    }
    // One label alone: a page costs its tasks plus one read.
    const before = m.stats().reads;
    await m.list({ limit: 3, labels: { tenant: 'acme' } });
    expect(m.stats().reads - before).toBe(4);

    await refusal(() => m.list({ limit: 10, labels: {} }));
    await refusal(() => m.list({ limit: 10, labels: { 'bad key': 'x' } }));
  });

  it('the CLI lists by --label, repeatable', async () => {
    const m = makeManager(db);
    await m.createMany(report, [{ n: 1, tenant: 'acme' }, { n: 2, tenant: 'globex' }]);
    await m.create(report, { n: 3, tenant: 'acme' }, { labels: { region: 'eu' } });
    const ids = (r: { stdout: string }) => ((JSON.parse(r.stdout) as { tasks: { id: string }[] }).tasks.map((t) => t.id).sort());
    const one = cli(m.env, 'list', '--label', 'tenant=acme', '--json');
    expect(one.code).toBe(0);
    expect(ids(one)).toEqual(['report-1', 'report-3']);
    expect(ids(cli(m.env, 'list', '--label', 'tenant=acme', '--label', 'region=eu', '--kind', 'report', '--json'))).toEqual(['report-3']);
    const bad = cli(m.env, 'list', '--label', 'tenant');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--label takes key=value/);
  }, 60_000);
});

describe('priority option', () => {
  it('is stored, wins over the definition\'s priority(data), and moves the queue position ahead of dueAt', async () => {
    const m = makeManager(db);
    const dueAt = new Date(Date.now() + 3600_000);
    await m.create(report, { n: 1, tenant: 'acme', urgent: true }, { waitUntil: dueAt });
    await m.create(report, { n: 2, tenant: 'acme', urgent: true }, { waitUntil: dueAt, priority: 500 });
    await m.createMany(plain, [{ n: 1 }], { waitUntil: dueAt, priority: 1000 });
    await m.create(plain, { n: 2 }, { waitUntil: dueAt });
    const [fromDef, fromOption, many, none] = await m.getMany(['report-1', 'report-2', 'plain-1', 'plain-2']);
    expect([fromDef!.priority, fromOption!.priority, many!.priority, none!.priority]).toEqual([10, 500, 1000, 0]);
    for (const t of [fromDef!, fromOption!, many!, none!]) {
      expect(t.dueAt).toEqual(dueAt);
      expect(t.waitUntil.getTime()).toBe(dueAt.getTime() - t.priority * PRIORITY_STEP_MS);
    }
    for (const bad of [-1, 1001, 1.5, '5' as unknown as number]) {
      await refusal(() => m.create(plain, { n: 3 }, { priority: bad }));
      await refusal(() => m.createMany(plain, [{ n: 3 }], { priority: bad }));
    }
    const badDef = defineTask({ kind: 'bad-priority', schema: z.object({}), id: () => 'bp', priority: () => 2000 });
    await refusal(() => m.create(badDef, {}));
    expect(await m.getMany(['plain-3', 'bp'])).toEqual([null, null]);
  });
});
