/**
 * The demo's handlers, registered on a worker's manager: by each worker process (demo-worker.ts)
 * on Firestore, or by the in-process workers of `npm run demo -- --memory`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { fixedDelay, type OnceTaskManager } from '../src/index.js';
import { buildReport, exportArchive, importFeed, sendWelcomeEmail, syncAccount } from './demo-tasks.js';

/** Registers every demo kind's handler; results name `worker` (a pid, or a worker number in memory mode). */
export function registerDemoHandlers(manager: OnceTaskManager, worker: number): void {
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
    // A cancel from another process is posted to the process running the task, whose handler's
    // signal is aborted within about a second.
    { onCancel: () => undefined }, // onCancel: clean-up of a cancelled export (nothing to undo here)
  );
}
