/**
 * A demo worker process. demo.ts starts two of these, so tasks are really shared between
 * processes through Firestore (nothing in memory is shared).
 *
 * Environment (set by demo.ts): FIRESTORE_EMULATOR_HOST, ONCE_TASK_ENV, ONCE_TASK_LOG_LEVEL.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { fixedDelay, OnceTaskManager } from '../src/index.js';
import { buildReport, demoFirestore, exportArchive, importFeed, sendWelcomeEmail, syncAccount } from './demo-tasks.js';

const firestore = demoFirestore();
// No `env` option: it comes from ONCE_TASK_ENV, the same value the producer uses.
// A short poll interval because the producer is another process (no in-process wake-up).
const manager = new OnceTaskManager({ firestore, pollIntervalMs: 100 });
const worker = process.pid;

manager.handle(
  sendWelcomeEmail,
  async (_task, ctx) => {
    await sleep(20 + Math.random() * 40, undefined, { signal: ctx.signal }); // the mail API; honour the signal
    return { worker };
  },
  { concurrency: 8 },
);

// Each call gets every ready change of one account (up to 10), under one lease of its key.
manager.handleGroup(
  syncAccount,
  async (tasks, ctx) => {
    await sleep(50 + 10 * tasks.length, undefined, { signal: ctx.signal });
    return tasks.map(() => ({ worker, batch: tasks.length }));
  },
  { concurrency: 4, maxBatchSize: 10 },
);

manager.handle(buildReport, async (task, ctx) => {
  await sleep(30, undefined, { signal: ctx.signal });
  return { worker, slot: ctx.occurrence?.slot ?? null, name: task.data.name };
});

manager.handle(
  importFeed,
  (_task, ctx) => {
    if (ctx.attempt < 3) throw Object.assign(new Error(`upstream timed out (attempt ${ctx.attempt})`), { code: 'UPSTREAM_TIMEOUT' });
    return { worker, attempt: ctx.attempt };
  },
  { retry: fixedDelay({ maxAttempts: 5, delayMs: 400 }) },
);

manager.handle(
  exportArchive,
  async (_task, ctx) => {
    await sleep(30_000, undefined, { signal: ctx.signal }); // cancelled long before this
    return { worker };
  },
  // A cancel from another process reaches a running handler at its next lease renewal (every
  // leaseMs / 3): a short lease here, so the demo's cancel lands within a second.
  { leaseMs: 3000, onCancel: () => undefined }, // onCancel: clean-up of a cancelled export (nothing to undo here)
);

manager.start();
process.send?.('ready');

// demo.ts (or Ctrl-C) stops us: finish or hand back running tasks, then exit cleanly.
let stopping = false;
const shutdown = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  await manager.stop({ graceMs: 2000 });
  // Exit without terminating the client: stop() bounds its waits, so a write whose answer was
  // lost may still be checking back, and on a terminated client that check would reject.
  process.exit(0);
};
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
