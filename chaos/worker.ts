/**
 * A chaos worker process: runs every chaos kind and writes each handler start, signal abort and
 * end to the execution ledger (a collection outside the task documents). 10% of attempts throw;
 * 1% of plain tasks are stubborn: their handler ignores its signal and outlives its timeout.
 * Its task traffic goes through a fault proxy (CHAOS_TASKS_HOST); its ledger writes do not.
 * CHAOS_SKEW_MS skews the library's clock.
 */
import { Firestore } from '@google-cloud/firestore';
// The built library: tsx then compiles only this file, so a replacement worker starts fast.
import { fixedDelay, OnceTaskManager, type RunningTask } from '../dist/index.js';
import { groupTask, keyedTask, LEASE_MS, LONG_LEASE_MS, longTask, plainTask, STUBBORN_TIMEOUT_MS } from './tasks.js';

const projectId = process.env.CHAOS_PROJECT ?? 'demo-oncetask-chaos';
// The SDK reads FIRESTORE_EMULATOR_HOST when a client is made: the ledger's goes direct, the
// tasks' through this worker's fault proxy.
const ledgerDb = new Firestore({ projectId });
if (process.env.CHAOS_TASKS_HOST) process.env.FIRESTORE_EMULATOR_HOST = process.env.CHAOS_TASKS_HOST;
const db = new Firestore({ projectId });
const skewMs = Number(process.env.CHAOS_SKEW_MS ?? 0);
// Polling by default (CHAOS_LISTEN=1 listens): on the emulator every listener re-runs its query,
// a scan of the whole collection, on every commit; a dozen listeners on 5000 tasks saturate it.
// Production serves listeners from indexes; the listener path has its own tests.
const listen = process.env.CHAOS_LISTEN === '1';
const manager = new OnceTaskManager({
  firestore: db,
  listen,
  pollIntervalMs: listen ? 1000 : 250,
  ...(skewMs ? { clock: () => Date.now() + skewMs } : {}),
});
const ledger = ledgerDb.collection(process.env.LEDGER ?? 'chaosLedger');
const pending = new Set<Promise<unknown>>();

/** An idempotent ledger write, retried through the emulator's ambiguous UNKNOWN answers. */
function record(id: string, data: Record<string, unknown>): Promise<void> {
  const write = (async () => {
    for (let i = 0; ; i++) {
      try {
        await ledger.doc(id).set(data, { merge: true });
        return;
      } catch (err) {
        if (i >= 5) throw err;
        await new Promise((r) => setTimeout(r, 50 * (i + 1)));
      }
    }
  })();
  pending.add(write);
  void write.finally(() => pending.delete(write));
  return write;
}

type Data = { n: number; key?: string; sleepMs: number; stubborn?: boolean };

/**
 * One execution: ledger start, sleep (honouring the signal, unless stubborn), maybe throw,
 * ledger end. The moment the signal aborts is recorded too: until then the execution is live.
 */
async function execute(task: RunningTask<Data>, signal: AbortSignal): Promise<string> {
  const entry = `${task.id}#${task.attempt}#${process.pid}`;
  const stubborn = task.data.stubborn === true;
  const onAbortRecord = (): void => void record(entry, { abortedAt: Date.now() });
  if (signal.aborted) onAbortRecord();
  else signal.addEventListener('abort', onAbortRecord, { once: true });
  await record(entry, { taskId: task.id, kind: task.kind, key: task.resourceKey, attempt: task.attempt, pid: process.pid, start: Date.now(), stubborn });
  const aborted = await new Promise<boolean>((resolve) => {
    if (signal.aborted && !stubborn) return resolve(true);
    const onAbort = (): void => {
      if (stubborn) return; // ignores its signal: sleeps on
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort); // a group shares one signal: don't pile up listeners
      resolve(false);
    }, task.data.sleepMs);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  signal.removeEventListener('abort', onAbortRecord);
  const fails = !aborted && !stubborn && Math.random() < 0.1;
  await record(entry, { end: Date.now(), outcome: aborted ? 'aborted' : fails ? 'threw' : 'ok' });
  if (aborted) throw new Error('aborted');
  if (fails) throw new Error('random failure');
  return entry;
}

const retry = fixedDelay({ maxAttempts: 8, delayMs: 100 });
manager.handle(plainTask, (task, ctx) => execute(task, ctx.signal), { concurrency: 8, leaseMs: LEASE_MS, retry, timeoutMs: STUBBORN_TIMEOUT_MS });
manager.handle(keyedTask, (task, ctx) => execute(task, ctx.signal), { concurrency: 8, leaseMs: LEASE_MS, retry });
manager.handle(longTask, (task, ctx) => execute(task, ctx.signal), {
  concurrency: 4,
  leaseMs: LONG_LEASE_MS,
  retry,
  onCancel: (task) => record(`${task.id}#cancel#${process.pid}`, { taskId: task.id, onCancel: Date.now() }),
});
manager.handleGroup(
  groupTask,
  async (tasks, ctx) => {
    const results: unknown[] = [];
    for (const task of tasks) {
      try {
        results.push(await execute(task, ctx.signal));
      } catch (err) {
        results.push(err as Error);
      }
    }
    return results;
  },
  { concurrency: 4, leaseMs: LEASE_MS, retry, maxBatchSize: 10 },
);
manager.start();

process.on('SIGTERM', () => {
  void manager
    .stop({ graceMs: 1000 })
    .then(() => Promise.allSettled([...pending]))
    .then(() => Promise.all([db.terminate(), ledgerDb.terminate()]))
    .then(() => process.exit(0));
});
process.stdout.write('ready\n');
