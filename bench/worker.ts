/**
 * A benchmark worker process: runs `benchTask` with a no-op handler that reports each start
 * (`start <id> <epoch ms with fraction>`) on stdout, and answers `stats` requests over IPC.
 * Settings (env): ONCE_TASK_ENV, BENCH_COLLECTION, BENCH_CONCURRENCY (default 4), BENCH_LISTEN
 * (`0` polls), BENCH_SHARDS, BENCH_WAIT_GO (`1`: start working only on a `go` message),
 * BENCH_KINDS (`3`: also run two more kinds, each with its own queue listener), BENCH_WARMUP (tasks
 * drained in a throwaway collection before `ready`, default 300).
 */
import { Firestore } from '@google-cloud/firestore';
import { OnceTaskManager } from '../src/index.js';
import { internalsOf } from '../src/testing/internals.js';
import { benchTask, otherBenchTasks } from './tasks.js';

const db = new Firestore({ projectId: process.env.BENCH_PROJECT ?? 'demo-oncetask-bench' });
const manager = new OnceTaskManager({
  firestore: db,
  ...(process.env.BENCH_COLLECTION ? { collection: process.env.BENCH_COLLECTION } : {}),
  // The bench measures listening workers unless told otherwise ('auto' would poll on the emulator).
  listen: process.env.BENCH_LISTEN === '0' ? false : process.env.BENCH_LISTEN === 'auto' ? 'auto' : true,
  ...(process.env.BENCH_SHARDS ? { shards: Number(process.env.BENCH_SHARDS) } : {}),
  ...(process.env.BENCH_RETENTION_MS ? { retentionMs: Number(process.env.BENCH_RETENTION_MS) } : {}),
});
const now = (): number => performance.timeOrigin + performance.now();
const quiet = process.env.BENCH_QUIET === '1';
let started = 0;

manager.handle(benchTask, (task) => {
  started++;
  if (!quiet) process.stdout.write(`start ${task.id} ${now()}\n`);
}, { concurrency: Number(process.env.BENCH_CONCURRENCY ?? 4) });
if (process.env.BENCH_KINDS === '3') for (const def of otherBenchTasks) manager.handle(def, () => undefined, { concurrency: 4 });
if (process.env.BENCH_WAIT_GO !== '1') manager.start();

process.on('message', (msg) => {
  if (msg === 'stats') {
    const cpu = process.cpuUsage();
    const batcher = internalsOf(manager).store.batcher.stats;
    process.send?.({ stats: manager.stats(), started, cpuMs: (cpu.user + cpu.system) / 1000, flushes: batcher.flushes, flushedWrites: batcher.writes });
  }
  if (msg === 'go') manager.start();
});
process.on('SIGTERM', () => {
  void manager.stop({ graceMs: 1000 }).then(() => db.terminate()).then(() => process.exit(0));
});
// A long-running worker has its client connected, its protos loaded and its hot paths compiled.
// A cold process pays that (~250 ms of CPU for the first call alone, more for the first claims
// and outcomes) inside the measured phase, 4 times over with 4 processes. So each worker first
// drains a backlog of its own in a throwaway collection, with the same settings, before it says
// `ready` (BENCH_WARMUP tasks, default 2000; 0: none). 300 was too few: V8 was still optimising
// the hot paths, and a process that then ran 500 tasks of a 4-process phase spent ~1.5× the CPU
// per task of one that ran 2000 (measured with BENCH_ONLY=procs: 1.57 → 1.13 ms per task).
const warmupTasks = Number(process.env.BENCH_WARMUP ?? 2000);
if (warmupTasks > 0) {
  const warm = new OnceTaskManager({
    firestore: db,
    collection: `bench_warmup_${process.pid}_${Date.now()}`,
    // Leaves nothing behind: a database the emulator has to scan more of slows every later phase.
    retentionMs: 0,
    listen: process.env.BENCH_LISTEN !== '0',
    ...(process.env.BENCH_SHARDS ? { shards: Number(process.env.BENCH_SHARDS) } : {}),
  });
  let ran = 0;
  let done: () => void = () => undefined;
  const allRan = new Promise<void>((resolve) => (done = resolve));
  warm.handle(benchTask, () => void (++ran === warmupTasks && done()), { concurrency: Number(process.env.BENCH_CONCURRENCY ?? 4) });
  await warm.createMany(benchTask, Array.from({ length: warmupTasks }, (_, n) => ({ n })));
  warm.start();
  await allRan;
  await warm.stop({ graceMs: 1000 });
}
process.stdout.write('ready\n');
