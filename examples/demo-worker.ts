/**
 * A demo worker process. demo.ts starts two of these, so tasks are really shared between
 * processes through Firestore (nothing in memory is shared).
 *
 * Environment (set by demo.ts): FIRESTORE_EMULATOR_HOST, ONCE_TASK_ENV, ONCE_TASK_LOG_LEVEL.
 */
import { OnceTaskManager } from '../src/index.js';
import { registerDemoHandlers } from './demo-handlers.js';
import { demoFirestore } from './demo-tasks.js';

const firestore = demoFirestore();
// No `env` option: it comes from ONCE_TASK_ENV, the same value the producer uses.
// A short poll interval because the producer is another process (no in-process wake-up).
const manager = new OnceTaskManager({ firestore, pollIntervalMs: 100 });
registerDemoHandlers(manager, process.pid);

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
