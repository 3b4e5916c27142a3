/**
 * A worker process for the multi-process tests: runs `jobTask` or `keyedTask` (KIND) and
 * writes each handler start and end to a ledger collection outside the task documents.
 * Settings come from the env: ONCE_TASK_ENV, KIND, LEDGER (collection), LEASE_MS, GRACE_MS,
 * CONCURRENCY.
 */
import { Firestore } from '@google-cloud/firestore';
import { OnceTaskManager } from '../../src/index.js';
import { jobTask, keyedTask } from '../tasks.js';

const db = new Firestore({ projectId: 'demo-oncetask' });
const manager = new OnceTaskManager({ firestore: db, pollIntervalMs: 50 });
const ledger = db.collection(process.env.LEDGER ?? 'ledger');

const kind = process.env.KIND === 'keyed' ? keyedTask : jobTask;
manager.handle(
  kind as typeof jobTask,
  async (task, ctx) => {
    const entry = ledger.doc();
    await entry.create({ taskId: task.id, key: task.resourceKey, pid: process.pid, attempt: ctx.attempt, start: Date.now() });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, task.data.sleepMs);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    await entry.update({ end: Date.now(), aborted: ctx.signal.aborted });
    return { pid: process.pid };
  },
  { leaseMs: Number(process.env.LEASE_MS ?? 600_000), concurrency: Number(process.env.CONCURRENCY ?? 4) },
);
manager.start();

process.on('SIGTERM', () => {
  void manager
    .stop({ graceMs: Number(process.env.GRACE_MS ?? 0) })
    .then(() => db.terminate())
    .then(() => process.exit(0));
});
process.stdout.write('ready\n');
