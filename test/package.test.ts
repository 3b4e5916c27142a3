import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emulatorHost, TEST_PROJECT_ID, uniqueEnv, useFirestore } from './fixture.js';

/**
 * The package as a user installs it: built, packed with `npm pack`, installed from the tarball
 * into a fresh project next to its peer dependency, then used through `require` and through
 * `import` against the emulator, and type-checked strictly with `skipLibCheck: false`.
 */

useFirestore();
const repo = resolve('.');
const app = mkdtempSync(join(tmpdir(), 'oncetask-app-'));
const run = (cmd: string, args: string[], cwd: string) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });

beforeAll(() => {
  run('npm', ['run', 'build'], repo);
  run('npm', ['pack', '--pack-destination', app], repo);
  const tarball = readdirSync(app).find((f) => f.endsWith('.tgz'))!;
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, version: '1.0.0' }));
  // The same versions the repository uses, so npm's cache serves them.
  const versions = JSON.parse(run('npm', ['ls', '--json', '--depth=0', '@google-cloud/firestore', 'zod', '@types/node'], repo)) as { dependencies: Record<string, { version: string }> };
  const pinned = Object.entries(versions.dependencies).map(([name, { version }]) => `${name}@${version}`);
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', `./${tarball}`, ...pinned], app);
}, 300_000);
afterAll(() => rmSync(app, { recursive: true, force: true }));

/** A script that creates one task, runs it and prints the result. */
const script = (load: string) => `${load}
const firestore = new Firestore({ projectId: ${JSON.stringify(TEST_PROJECT_ID)} });
const greet = defineTask({ kind: 'greet', schema: z.object({ name: z.string() }), id: (d) => 'greet-' + d.name });
const manager = new OnceTaskManager({ firestore, env: process.env.APP_ENV, listen: false, pollIntervalMs: 50 });
manager.handle(greet, (task) => 'hello ' + task.data.name);
manager.start();
manager.create(greet, { name: 'ada' }).then(async () => {
  for (;;) {
    const task = await manager.get('greet-ada');
    if (task && task.status === 'succeeded') { console.log('result: ' + task.result); break; }
    await new Promise((r) => setTimeout(r, 50));
  }
  await manager.stop();
  await firestore.terminate();
});
`;

describe('the packed package', () => {
  const runScript = (file: string, body: string) => {
    writeFileSync(join(app, file), body);
    const child = spawnSync(process.execPath, [file], { cwd: app, encoding: 'utf8', timeout: 60_000, env: { ...process.env, FIRESTORE_EMULATOR_HOST: emulatorHost(), APP_ENV: uniqueEnv(), ONCE_TASK_LOG_LEVEL: 'silent' } });
    return `${child.stdout}${child.stderr}`;
  };

  it('works through require (CommonJS)', () => {
    const out = runScript('app.cjs', script(`const { OnceTaskManager, defineTask } = require('oncetask');\nconst { Firestore } = require('@google-cloud/firestore');\nconst { z } = require('zod');`));
    expect(out).toContain('result: hello ada');
  }, 90_000);

  it('works through import (ESM)', () => {
    const out = runScript('app.mjs', script(`import { OnceTaskManager, defineTask } from 'oncetask';\nimport { Firestore } from '@google-cloud/firestore';\nimport { z } from 'zod';`));
    expect(out).toContain('result: hello ada');
  }, 90_000);

  /** A test of a retrying task with the kit's memory backend and manual clock, as a user writes one. */
  const kitScript = (load: string) => `${load}
const flaky = defineTask({ kind: 'flaky', schema: z.object({ n: z.number() }), id: (d) => 'flaky-' + d.n });
(async () => {
  const kit = await createTestKit({ start: new Date('2026-12-01T10:00:00Z') });
  const tasks = kit.manager();
  tasks.handle(flaky, (task) => { if (task.attempt < 3) throw new Error('not yet'); return 'ok'; }, { retry: exponentialBackoff({ jitter: false }) });
  await tasks.create(flaky, { n: 1 });
  const runs = await kit.advance('1m');
  console.log('runs: ' + runs.map((r) => r.outcome + '@' + r.at.toISOString().slice(11, 19)).join(' '));
  await kit.teardown();
  // One copy of the library behind both entry points: its errors are the same classes.
  const real = await createTestKit({ clock: 'real' });
  await real.advance('1s').catch((err) => console.log('same classes: ' + (err instanceof InvalidOptionsError)));
  await real.teardown();
})();
`;

  it('oncetask/testing works through require and import, without an emulator', () => {
    const expected = 'runs: retrying@10:00:00 retrying@10:00:01 succeeded@10:00:03';
    const cjs = runScript('kit.cjs', kitScript(`const { defineTask, exponentialBackoff, InvalidOptionsError } = require('oncetask');\nconst { createTestKit } = require('oncetask/testing');\nconst { z } = require('zod');`));
    expect(cjs).toContain(expected);
    expect(cjs).toContain('same classes: true');
    const esm = runScript('kit.mjs', kitScript(`import { defineTask, exponentialBackoff, InvalidOptionsError } from 'oncetask';\nimport { createTestKit } from 'oncetask/testing';\nimport { z } from 'zod';`));
    expect(esm).toContain(expected);
    expect(esm).toContain('same classes: true');
  }, 90_000);

  it('installs the oncetask command', () => {
    const help = spawnSync(join(app, 'node_modules/.bin/oncetask'), ['--help'], { cwd: app, encoding: 'utf8', timeout: 30_000 });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/Usage: oncetask \[options\] \[command\]/);
    const doctor = spawnSync(join(app, 'node_modules/.bin/oncetask'), ['doctor', '--indexes', join(repo, 'firestore.indexes.json'), '--project', TEST_PROJECT_ID, '--env', uniqueEnv()], { cwd: app, encoding: 'utf8', timeout: 60_000, env: { ...process.env, FIRESTORE_EMULATOR_HOST: emulatorHost() } });
    expect(doctor.stdout).toMatch(/no findings/); // it found the shipped index file inside the package
    expect(doctor.status).toBe(0);
  }, 90_000);

  it('type-checks a strict app with skipLibCheck: false, one copy of the Firestore SDK', () => {
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, skipLibCheck: false, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true, types: ['node'] }, files: ['app.ts', 'app.cts'] }));
    const body = `import { Firestore } from '@google-cloud/firestore';
import { defineTask, OnceTaskManager, memoryBackend, type TaskInfo, InvalidOptionsError } from 'oncetask';
import { createTestKit, type TaskRun, type TestKit } from 'oncetask/testing';
import { z } from 'zod';
const greet = defineTask({ kind: 'greet', schema: z.object({ name: z.string() }), id: (d) => 'greet-' + d.name });
const manager = new OnceTaskManager({ firestore: new Firestore(), hooks: { onTaskFailed: (task, error, { final }) => console.log(task.id, error.message, final) } });
manager.handle(greet, (task) => task.data.name.toUpperCase(), { concurrency: 2 });
export async function read(): Promise<TaskInfo | null> { return manager.get('greet-ada'); }
export const isOptionsError = (e: unknown): boolean => e instanceof InvalidOptionsError;
export async function kitTest(): Promise<number> {
  const kit: TestKit = await createTestKit({ backend: 'memory', clock: 'manual' });
  const tasks = kit.manager({ retentionMs: 1000 });
  tasks.handle(greet, (task) => task.data.name);
  await tasks.create(greet, { name: 'ada' });
  const runs: TaskRun[] = await kit.advance('1h');
  await kit.teardown();
  return runs.length + (await new OnceTaskManager({ backend: memoryBackend() }).countPending(greet));
}
`;
    writeFileSync(join(app, 'app.ts'), body);
    writeFileSync(join(app, 'app.cts'), body); // the same app as CommonJS: resolved through the "require" types
    const tsc = spawnSync(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', app], { cwd: app, encoding: 'utf8', timeout: 120_000 });
    expect(`${tsc.stdout}${tsc.stderr}`).toBe('');
    expect(tsc.status).toBe(0);
    const firestoreCopies = run('npm', ['ls', '--all', '--parseable', '@google-cloud/firestore'], app).trim().split('\n').filter(Boolean);
    expect(firestoreCopies).toHaveLength(1);
  }, 120_000);
});
