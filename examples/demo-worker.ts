/**
 * A demo worker process. demo.ts starts two of these, so tasks are really shared between
 * processes through Firestore (nothing in memory is shared).
 *
 * Environment (set by demo.ts): FIRESTORE_EMULATOR_HOST, ONCE_TASK_ENV, ONCE_TASK_LOG_LEVEL.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { exponentialBackoff, NonRetryableError, OnceTaskManager } from '../src/index.js';
import { demoFirestore, sendWelcomeEmail } from './demo-tasks.js';

const firestore = demoFirestore();
// No `env` option: it comes from ONCE_TASK_ENV, the same value the producer uses.
// A short poll interval because the producer is another process (no in-process wake-up).
const manager = new OnceTaskManager({ firestore, pollIntervalMs: 250 });

manager.handle(
  sendWelcomeEmail,
  async (task, ctx) => {
    // Pretend to talk to a mail server; honour the signal (timeout, lost lease, shutdown).
    await sleep(20 + Math.random() * 30, undefined, { signal: ctx.signal });
    if (task.data.simulate === 'broken') {
      // NonRetryableError ends the task at once, whatever the retry policy says.
      throw new NonRetryableError(`mailbox ${task.data.email} does not exist`);
    }
    if (task.data.simulate === 'flaky' && task.attempt === 1) throw new Error('SMTP server timed out');
    // Stored as the task's `result`; demo.ts counts tasks per worker from it.
    return { worker: process.pid };
  },
  // Short backoff so the demo's retries happen within a second.
  { concurrency: 4, retry: exponentialBackoff({ maxAttempts: 3, baseMs: 500 }) },
);

manager.start();
process.send?.('ready');

// demo.ts (or Ctrl-C) stops us: finish or hand back running tasks, then exit cleanly.
let stopping = false;
const shutdown = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  await manager.stop({ graceMs: 3000 });
  await firestore.terminate();
  process.exit(0);
};
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
