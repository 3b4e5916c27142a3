import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixedDelay } from '../src/index.js';
import { TEST_PROJECT_ID, uniqueEnv, useFirestore, waitFor } from './fixture.js';
import { makeManager, runCli, TEST_COLLECTION } from './support.js';
import { jobTask, keyedTask } from './tasks.js';

const db = useFirestore();
const dir = mkdtempSync(join(tmpdir(), 'oncetask-cli-'));

const cli = runCli;
const json = (r: { stdout: string }) => JSON.parse(r.stdout) as Record<string, unknown>;

describe('the oncetask CLI', () => {
  it('list, show, stats, retry, reset, cancel, delete and purge, against the emulator', async () => {
    const m = makeManager(db);
    m.handle(jobTask, (task) => {
      if (task.data.failTimes > 0) throw new Error('mail server down');
    }, { retry: fixedDelay({ maxAttempts: 1 }) });
    await m.createMany(jobTask, [{ n: 1 }, { n: 2, failTimes: 1 }, { n: 5 }]);
    await m.create(jobTask, { n: 3 }, { waitUntil: new Date(Date.now() + 3600_000) });
    m.start();
    await waitFor(async () => (await m.getMany(['job-1', 'job-2', 'job-5'])).every((t) => t!.status === 'succeeded' || t!.status === 'failed'));
    await m.stop();
    await m.createMany(keyedTask, [1, 2].map((n) => ({ n, key: 'acct' })), { waitUntil: new Date(Date.now() + 3600_000) });

    const list = cli(m.env, 'list', '--kind', 'job', '--json');
    expect(list.code).toBe(0);
    expect((json(list).tasks as { id: string }[]).map((t) => t.id).sort()).toEqual(['job-1', 'job-2', 'job-3', 'job-5']);
    expect(cli(m.env, 'list', '--status', 'failed').stdout).toMatch(/^job-2 {2}job {2}failed {2}attempts 1/);
    expect((json(cli(m.env, 'list', '--kind', 'keyed', '--key', 'acct', '--json')).tasks as unknown[]).length).toBe(2);

    const show = json(cli(m.env, 'show', 'job-2', '--json')) as { errors: { message: string; stack: string }[] };
    expect(show.errors[0]!.message).toBe('mail server down');
    expect(show.errors[0]!.stack).toMatch(/Error: mail server down\n\s+at /);
    const missing = cli(m.env, 'show', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/task "nope" does not exist/);

    const stats = json(cli(m.env, 'stats', '--kind', 'job', '--json')) as { counts: Record<string, number>; kinds: { kind: string; dueNow: number; scheduled: number }[]; failedLastHour: number };
    expect(stats.counts).toMatchObject({ succeeded: 2, failed: 1, pending: 3 });
    expect(stats.kinds).toMatchObject([{ kind: 'job', dueNow: 0, scheduled: 1 }]);
    expect(stats.failedLastHour).toBe(1);

    expect(cli(m.env, 'retry', 'job-2').code).toBe(0);
    expect((await m.get('job-2'))!.status).toBe('pending');
    // Destructive commands refuse without --yes when there is no terminal to ask on.
    const refused = cli(m.env, 'reset', 'job-1');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/pass --yes/);
    expect(json(cli(m.env, 'reset', 'job-1', '--yes', '--json'))).toEqual({ reset: 1 });
    expect((await m.get('job-1'))!.status).toBe('pending');
    expect(json(cli(m.env, 'cancel', '--kind', 'keyed', '--key', 'acct', '--yes', '--json'))).toEqual({ cancelled: 2 });
    expect(json(cli(m.env, 'cancel', 'job-3', '--yes', '--json'))).toEqual({ cancelled: 1 });
    // (The CLI runs no handlers, so it cannot know a kind has no onCancel: a worker ends them.)
    expect((await m.getMany(['job-3', 'keyed-1', 'keyed-2'])).map((t) => t!.cancelRequested)).toEqual([true, true, true]);
    expect(json(cli(m.env, 'delete', 'job-1', '--yes', '--json'))).toEqual({ deleted: 1 });
    expect(await m.get('job-1')).toBeNull();
    // Purge: succeeded tasks finished more than a second ago (job-5), nothing else.
    await new Promise((r) => setTimeout(r, 1100));
    expect(json(cli(m.env, 'purge', '--status', 'succeeded', '--older-than', '1s', '--yes', '--json'))).toEqual({ deleted: 1 });
    expect(await m.get('job-5')).toBeNull();
    expect(json(cli(m.env, 'purge', '--status', 'succeeded', '--older-than', '7d', '--yes', '--json'))).toEqual({ deleted: 0 });
    expect((await m.get('job-2'))!.status).toBe('pending');
  }, 120_000);

  it('schedules lists generators with their rule, zone and next slot', async () => {
    const m = makeManager(db);
    await m.create(jobTask, { n: 1 }, { recurrence: { rrule: 'FREQ=DAILY;BYHOUR=9', dtstart: '2026-01-01T09:00', tzid: 'Europe/Paris' } });
    const result = json(cli(m.env, 'schedules', '--json')) as { schedules: { id: string; rrule: string; tzid: string; nextSlot: string }[] };
    expect(result.schedules).toMatchObject([{ id: 'job-1', rrule: 'FREQ=DAILY;BYHOUR=9', tzid: 'Europe/Paris' }]);
    expect(result.schedules[0]!.nextSlot).toBe('2026-01-01T08:00:00.000Z'); // 09:00 in Paris; a worker spawns it
  });

  it('schedule-pause, schedule-resume and schedule-run steer a generator; schedules shows cron, every and paused', async () => {
    const m = makeManager(db);
    await m.upsertSchedule(jobTask, { n: 1 }, { every: '1h' });
    await m.upsertSchedule(jobTask, { n: 2 }, { cron: '0 9 * * MON-FRI', tzid: 'Europe/Berlin' });
    expect(json(cli(m.env, 'schedule-pause', 'job-1', '--json'))).toEqual({ paused: true });
    const listed = json(cli(m.env, 'schedules', '--kind', 'job', '--json')) as { schedules: { id: string; every: string | null; cron: string | null; paused: boolean; nextSlot: string }[] };
    expect(listed.schedules).toMatchObject([
      { id: 'job-2', cron: '0 9 * * MON-FRI', every: null, paused: false },
      { id: 'job-1', every: '1h', cron: null, paused: true },
    ]);
    expect(cli(m.env, 'schedules').stdout).toMatch(/^job-2 {2}job {2}cron 0 9 \* \* MON-FRI {2}Europe\/Berlin {2}next \S+\njob-1 {2}job {2}every 1h {2}UTC {2}next \S+ {2}paused$/m);
    expect(json(cli(m.env, 'schedule-resume', 'job-1', '--json'))).toEqual({ resumed: true });
    expect(cli(m.env, 'schedule-resume', 'job-1').stdout).toMatch(/job-1 was not paused/);
    const run = json(cli(m.env, 'schedule-run', 'job-1', '--json')) as { id: string };
    expect(run.id).toMatch(/^job-1_now_/);
    expect((await m.get(run.id))!.occurrence!.generatorId).toBe('job-1');
    const missing = cli(m.env, 'schedule-pause', 'job-9');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/task "job-9" does not exist/);
  }, 60_000);

  it('pause, paused and resume steer kinds in every process', async () => {
    const m = makeManager(db);
    expect(json(cli(m.env, 'pause', '--kind', 'job', '--json'))).toEqual({ paused: 'job', until: null });
    const timed = json(cli(m.env, 'pause', '--for', '30m', '--json')) as { until: string };
    expect(new Date(timed.until).getTime()).toBeGreaterThan(Date.now() + 29 * 60_000);
    expect((await m.paused()).map((p) => p.kind).sort()).toEqual(['job', null].sort());
    expect(cli(m.env, 'paused').stdout).toMatch(/^job {2}since \S+$/m);
    expect(json(cli(m.env, 'resume', '--kind', 'job', '--json'))).toEqual({ resumed: 'job' });
    expect((await m.paused()).map((p) => p.kind)).toEqual([null]);
    cli(m.env, 'resume');
    expect(await m.paused()).toEqual([]);
    expect(cli(m.env, 'pause', '--for', 'ever').code).toBe(2);
  }, 60_000);

  it('bad arguments exit 2 with a clear message', () => {
    const env = uniqueEnv();
    expect(cli(env, 'lst').code).toBe(2);
    expect(cli(env, 'lst').stderr).toMatch(/unknown command 'lst'/);
    const status = cli(env, 'list', '--status', 'done');
    expect(status.code).toBe(2);
    expect(status.stderr).toMatch(/Allowed choices are pending, running/);
    expect(cli(env, 'purge', '--status', 'succeeded', '--older-than', 'seven days', '--yes').stderr).toMatch(/not a duration/);
    expect(cli(env, 'cancel', '--key', 'a').code).toBe(2);
    expect(cli(env, '--help').code).toBe(0);
  }, 60_000);

  it('doctor passes on the shipped configuration and fails, with the fix, on a missing TTL policy, a missing index, open rules and stuck tasks', async () => {
    const m = makeManager(db);
    const shipped = readFileSync('firestore.indexes.json', 'utf8');
    const indexesFile = join(dir, 'deployed.json');
    const rulesFile = join(dir, 'deployed.rules');
    // The shipped files, named for the test collection.
    writeFileSync(indexesFile, shipped.replaceAll('"onceTasks', `"${TEST_COLLECTION}`));
    writeFileSync(rulesFile, readFileSync('firestore.rules', 'utf8').replaceAll('/onceTasks', `/${TEST_COLLECTION}`));
    const ok = cli(m.env, 'doctor', '--indexes', indexesFile, '--rules', rulesFile);
    expect(ok.stdout).toMatch(/✓ no findings/);
    expect(ok.code).toBe(0);

    const broken = JSON.parse(shipped.replaceAll('"onceTasks', `"${TEST_COLLECTION}`)) as { indexes: unknown[]; fieldOverrides: { fieldPath: string; ttl?: boolean }[] };
    broken.indexes.shift(); // the claim query's index
    broken.fieldOverrides = broken.fieldOverrides.filter((o) => !o.ttl);
    writeFileSync(indexesFile, JSON.stringify(broken));
    writeFileSync(rulesFile, `rules_version = '2';\nservice cloud.firestore { match /databases/{database}/documents { match /${TEST_COLLECTION}/{id} { allow read: if request.auth != null; } } }`);
    // A task whose worker died long ago.
    await m.create(jobTask, { n: 1 });
    const [doc] = (await db.collection(TEST_COLLECTION).where('env', '==', m.env).get()).docs;
    await doc!.ref.update({ status: 'running', attempts: 1, lease: { token: 't', workerId: 'gone', expiresAt: new Date(Date.now() - 3600_000) } });
    const bad = cli(m.env, 'doctor', '--indexes', indexesFile, '--rules', rulesFile, '--json');
    expect(bad.code).toBe(1);
    const { findings } = json(bad) as { findings: { check: string; problem: string; fix: string }[] };
    expect(findings.map((f) => f.check).sort()).toEqual(['indexes', 'rules', 'rules', 'stuck', 'ttl']);
    expect(findings.find((f) => f.check === 'ttl')!.fix).toBe(`gcloud firestore fields ttls update expireAt --collection-group=${TEST_COLLECTION} --enable-ttl --project=${TEST_PROJECT_ID}`);
    expect(findings.find((f) => f.check === 'indexes')!.problem).toMatch(/\(env ASCENDING, kind ASCENDING, status ASCENDING, waitUntil ASCENDING, seq ASCENDING\) is missing/);
    expect(findings.find((f) => f.check === 'stuck')!.fix).toMatch(/oncetask reset job-1/);
    // A document of the environment that is not a task.
    await db.collection(TEST_COLLECTION).doc('garbage').set({ env: m.env, kind: 'job', status: 'pending', createdAt: new Date() });
    const withGarbage = json(cli(m.env, 'doctor', '--json')) as { findings: { check: string; problem: string }[] };
    expect(withGarbage.findings.find((f) => f.check === 'malformed')!.problem).toMatch(/1 malformed document\(s\).*garbage/);
  }, 60_000);
});
