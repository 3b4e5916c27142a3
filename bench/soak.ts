/**
 * `npm run bench -- --soak [minutes]`: one worker under a steady trickle (about 10 tasks/s
 * offered, 10% failing once) for 10 minutes by default, once keeping finished tasks (the
 * default retention) and once deleting them in the outcome commit (`retentionMs: 0`). Prints,
 * per minute, tasks finished per second, the documents left in the collection and the worker's
 * heap; then one JSON line. On the emulator every query scans the whole collection, so kept
 * tasks slow a long-running local setup down; deleted ones do not.
 */
import { randomBytes } from 'node:crypto';
import type { Firestore } from '@google-cloud/firestore';
import { fixedDelay, OnceTaskManager } from '../src/index.js';
import { benchTask } from './tasks.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One minute of a soak run. */
export interface SoakSample {
  minute: number;
  /** Tasks that finished (succeeded) during the minute, per second. */
  perSec: number;
  /** Task documents in the collection at the end of the minute (a COUNT aggregation). */
  documents: number;
  /** Heap in use at the end of the minute, MiB. */
  heapMiB: number;
}

/** Runs one soak configuration for `minutes`, creating `ratePerSec` tasks a second. */
export async function soak(db: Firestore, minutes: number, options: { retentionMs?: number; ratePerSec?: number } = {}): Promise<SoakSample[]> {
  const tag = `${options.retentionMs === 0 ? 'delete' : 'keep'}-${randomBytes(3).toString('hex')}`;
  const settings = { firestore: db, env: `soak-${tag}`, collection: `bench_soak_${tag}`, listen: true, ...(options.retentionMs !== undefined ? { retentionMs: options.retentionMs } : {}) };
  const worker = new OnceTaskManager(settings);
  const producer = new OnceTaskManager(settings);
  const rate = options.ratePerSec ?? 10;
  let succeeded = 0;
  worker.handle(
    benchTask,
    (task, ctx) => {
      if (task.data.n % 10 === 0 && ctx.attempt === 1) throw new Error('fails once');
      succeeded++;
    },
    { concurrency: 8, retry: fixedDelay({ maxAttempts: 3, delayMs: 200 }) },
  );
  worker.start();
  const samples: SoakSample[] = [];
  const started = Date.now();
  let n = 0;
  let producing = true;
  const produce = (async () => {
    while (producing) {
      void producer.create(benchTask, { n: n++ }).catch(() => undefined);
      const due = started + (n * 1000) / rate;
      await sleep(Math.max(0, due - Date.now()));
    }
  })();
  for (let minute = 1; minute <= minutes; minute++) {
    const before = succeeded;
    await sleep(started + minute * 60_000 - Date.now());
    const documents = (await db.collection(settings.collection).count().get()).data().count;
    const sample = { minute, perSec: (succeeded - before) / 60, documents, heapMiB: Math.round(process.memoryUsage().heapUsed / 2 ** 20) };
    samples.push(sample);
    console.log(`  soak ${tag.split('-')[0]!.padEnd(6)} minute ${String(minute).padStart(2)}: ${sample.perSec.toFixed(1)} tasks/s, ${documents} documents, heap ${sample.heapMiB} MiB`);
  }
  producing = false;
  await produce;
  await worker.stop({ graceMs: 2000 });
  return samples;
}
