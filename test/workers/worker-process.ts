/**
 * A worker process for the multi-process tests: runs `jobTask` or `keyedTask` (KIND) and
 * writes each handler start and end to a ledger collection outside the task documents.
 * Settings come from the env: ONCE_TASK_ENV, KIND, LEDGER (collection), LEASE_MS, GRACE_MS,
 * CONCURRENCY, POLL_MS, ONCE_TASK_COLLECTION, LISTEN (`0` polls), LISTENER_ROLE_MS, COOLDOWN_MS
 * (keyed kind), PROGRESS (`1`: the handler reports `{ pid }` with a flush once it has started).
 */
import { Firestore } from '@google-cloud/firestore';
import { OnceTaskManager } from '../../src/index.js';
import { jobTask, keyedTask } from '../tasks.js';

const db = new Firestore({ projectId: 'demo-oncetask' });
const manager = new OnceTaskManager({ firestore: db, collection: process.env.ONCE_TASK_COLLECTION, pollIntervalMs: Number(process.env.POLL_MS ?? 50), listen: process.env.LISTEN !== '0', ...(process.env.LISTENER_ROLE_MS ? { listenerRoleMs: Number(process.env.LISTENER_ROLE_MS) } : {}) });
const ledger = db.collection(process.env.LEDGER ?? 'ledger');

/** Ledger writes still in flight: SIGTERM waits for them before the process exits. */
const pending = new Set<Promise<unknown>>();

/** A ledger write that survives the emulator's ambiguous UNKNOWN answers (set() is idempotent). */
function record(ref: FirebaseFirestore.DocumentReference, data: Record<string, unknown>): Promise<void> {
  const attempt = async (): Promise<void> => {
    for (let i = 0; ; i++) {
      try {
        await ref.set(data, { merge: true });
        return;
      } catch (err) {
        if (i >= 3) throw err;
      }
    }
  };
  const p = attempt();
  pending.add(p);
  void p.finally(() => pending.delete(p));
  return p;
}

const kind = process.env.KIND === 'keyed' ? keyedTask : jobTask;
manager.handle(
  kind as typeof jobTask,
  async (task, ctx) => {
    // One ledger entry per attempt: a retried write cannot make a second one.
    const entry = ledger.doc(`${task.id}#${ctx.attempt}#${process.pid}`);
    await record(entry, { taskId: task.id, key: task.resourceKey, pid: process.pid, attempt: ctx.attempt, start: Date.now() });
    if (process.env.PROGRESS === '1') await ctx.setProgress({ pid: process.pid }, { flush: true });
    const aborted = await new Promise<boolean>((resolve) => {
      if (ctx.signal.aborted) return resolve(true);
      const timer = setTimeout(() => resolve(false), task.data.sleepMs);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    await record(entry, { end: Date.now(), aborted });
    return { pid: process.pid };
  },
  { leaseMs: Number(process.env.LEASE_MS ?? 600_000), concurrency: Number(process.env.CONCURRENCY ?? 4), ...(process.env.COOLDOWN_MS ? { cooldownMs: Number(process.env.COOLDOWN_MS) } : {}) },
);
manager.start();

process.on('SIGTERM', () => {
  void manager
    .stop({ graceMs: Number(process.env.GRACE_MS ?? 0) })
    .then(() => Promise.allSettled([...pending]))
    .then(() => db.terminate())
    .then(() => process.exit(0));
});
process.stdout.write('ready\n');
