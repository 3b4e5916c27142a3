/**
 * A benchmark worker process: runs `benchTask` with a no-op handler that reports each start
 * (`start <id> <epoch ms with fraction>`) on stdout, and answers `stats` requests over IPC.
 * Settings (env): ONCE_TASK_ENV, BENCH_COLLECTION, BENCH_CONCURRENCY (default 4), BENCH_LISTEN
 * (`0` polls), BENCH_SHARDS, BENCH_WAIT_GO (`1`: start working only on a `go` message),
 * BENCH_KINDS (`3`: also run two more kinds, each with its own queue listener).
 */
import { Firestore } from '@google-cloud/firestore';
import { OnceTaskManager } from '../src/index.js';
import { benchTask, otherBenchTasks } from './tasks.js';

const db = new Firestore({ projectId: process.env.BENCH_PROJECT ?? 'demo-oncetask-bench' });
const manager = new OnceTaskManager({
  firestore: db,
  ...(process.env.BENCH_COLLECTION ? { collection: process.env.BENCH_COLLECTION } : {}),
  // The bench measures listening workers unless told otherwise ('auto' would poll on the emulator).
  listen: process.env.BENCH_LISTEN === '0' ? false : process.env.BENCH_LISTEN === 'auto' ? 'auto' : true,
  ...(process.env.BENCH_SHARDS ? { shards: Number(process.env.BENCH_SHARDS) } : {}),
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
    process.send?.({ stats: manager.stats(), started, cpuMs: (cpu.user + cpu.system) / 1000 });
  }
  if (msg === 'go') manager.start();
});
process.on('SIGTERM', () => {
  void manager.stop({ graceMs: 1000 }).then(() => db.terminate()).then(() => process.exit(0));
});
process.stdout.write('ready\n');
