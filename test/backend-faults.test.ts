import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Firestore } from '@google-cloud/firestore';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTask, OnceTaskManager } from '../src/index.js';
import { TaskStore } from '../src/store/task-store.js';
import { newTaskFields } from '../src/task-document.js';
import { startEmulator, type EmulatorHandle } from '../src/testing/emulator.js';
import { waitFor } from './fixture.js';
import { capturingLogger, jobTask, sleep } from './support.js';

/**
 * The backend goes away for 10 s while workers run: this file starts an emulator of its own,
 * exports its data, stops it, and starts it again on the same port with that data.
 */

const PROJECT = 'demo-oncetask-faults';
const slowTask = defineTask({ kind: 'slow', schema: z.object({ n: z.number() }), id: (d) => `slow-${d.n}` });
let emulator: EmulatorHandle;
const clients: Firestore[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.terminate()));
  await emulator?.stop();
});

const client = (host: string): Firestore => {
  const db = new Firestore({ projectId: PROJECT, host, ssl: false });
  clients.push(db);
  return db;
};

describe('an unreachable backend', () => {
  it('is survived: stop() still works while it is down, and workers finish every task after it returns', async () => {
    emulator = await startEmulator({ fresh: true });
    const host = emulator.host;
    const db = client(host);
    const env = 'faults';
    const logger = capturingLogger();
    const worker = new OnceTaskManager({ firestore: db, env, sweepIntervalMs: 600_000 });
    // A polling worker looks at its queue during the outage: it logs the outage.
    const poller = new OnceTaskManager({ firestore: db, env: 'faults-poll', listen: false, pollIntervalMs: 100, logger });
    poller.handle(slowTask, () => undefined);
    const doomed = new OnceTaskManager({ firestore: db, env: 'faults-stop' });
    const done = new Set<string>();
    worker.handle(jobTask, async (task) => {
      await sleep(30);
      done.add(task.id);
    }, { concurrency: 4, leaseMs: 3000 });
    doomed.handle(slowTask, (_t, ctx) => new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve())));
    await worker.createMany(jobTask, Array.from({ length: 150 }, (_, n) => ({ n })));
    await doomed.create(slowTask, { n: 1 });
    worker.start();
    doomed.start();
    poller.start();
    await waitFor(() => done.size >= 30 || undefined, { timeoutMs: 20_000, message: 'thirty done' });
    await waitFor(async () => (await doomed.get('slow-1'))?.status === 'running');

    // Down: export the data, stop the emulator.
    const dir = mkdtempSync(join(tmpdir(), 'oncetask-faults-'));
    const exported = await fetch(`http://${host}/emulator/v1/projects/${PROJECT}:export`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ database: `projects/${PROJECT}/databases/(default)`, export_directory: dir }),
    });
    expect(exported.status).toBe(200);
    await emulator.stop();
    const downAt = Date.now();

    // stop() with a handler running and no backend to hand its lease back to: bounded.
    const t0 = Date.now();
    await doomed.stop({ graceMs: 500 });
    expect(Date.now() - t0).toBeLessThan(500 + 2000 + 1500);

    await sleep(Math.max(0, 10_000 - (Date.now() - downAt)));
    const meta = readdirSync(dir, { recursive: true }).map(String).find((f) => f.endsWith('.overall_export_metadata'))!;
    emulator = await startEmulator({ fresh: true, port: Number(host.split(':')[1]), importData: join(dir, meta) });

    // Every task finishes (those caught mid-flight run again once their leases expire).
    await waitFor(async () => (await worker.list({ limit: 200, status: 'succeeded', kind: jobTask })).tasks.length === 150, {
      timeoutMs: 60_000,
      message: 'all 150 tasks succeeded after the outage',
    });
    expect(done.size).toBe(150);
    // Failed looks back off: a 100 ms poll without backoff would have logged ~100 failures. (Whether
    // the SDK fails calls or keeps retrying them depends on timing; test/worker.test.ts checks that
    // a look that hangs is reported.)
    const failures = logger.lines().filter((l) => l === 'error oncetask: looking for tasks failed; backing off').length;
    expect(failures).toBeLessThanOrEqual(10);
    await poller.stop();

    // The queue listener is back: a task written by another client (no local wake-up) starts at once.
    const other = new TaskStore(client(host), 'onceTasks', env);
    await other.create('job-999', newTaskFields({ id: 'job-999', kind: 'job', env, data: { n: 999 }, resourceKey: null, waitUntil: new Date() }));
    const probe = Date.now();
    await waitFor(() => done.has('job-999') || undefined, { timeoutMs: 10_000, message: 'probe task picked up through the listener' });
    expect(Date.now() - probe).toBeLessThan(5000);
    await worker.stop();
  }, 120_000);
});
