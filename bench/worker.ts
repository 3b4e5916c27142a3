/**
 * A benchmark worker process: runs `benchTask` with a no-op handler that reports each start
 * (`start <id> <epoch ms with fraction>`) on stdout, and answers `stats` requests over IPC.
 */
import { Firestore } from '@google-cloud/firestore';
import { OnceTaskManager } from '../src/index.js';
import { benchTask } from './tasks.js';

const db = new Firestore({ projectId: process.env.BENCH_PROJECT ?? 'demo-oncetask-bench' });
const manager = new OnceTaskManager({ firestore: db });
const now = (): number => performance.timeOrigin + performance.now();

manager.handle(benchTask, (task) => {
  process.stdout.write(`start ${task.id} ${now()}\n`);
}, { concurrency: 4 });
manager.start();

process.on('message', (msg) => {
  if (msg === 'stats') process.send?.({ stats: manager.stats() });
});
process.on('SIGTERM', () => {
  void manager.stop({ graceMs: 1000 }).then(() => db.terminate()).then(() => process.exit(0));
});
process.stdout.write('ready\n');
