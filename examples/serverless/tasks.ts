/** The kinds the serverless examples run (in a real app, a module shared with the code that creates tasks). */
import { z } from 'zod';
// In your app: from 'oncetask'.
import { defineTask, OnceTaskManager } from '../../src/index.js';
import type { Firestore } from '@google-cloud/firestore';

export const sendWelcomeEmail = defineTask({
  kind: 'send-welcome-email',
  schema: z.object({ userId: z.string(), email: z.string() }),
  id: (d) => `welcome:${d.userId}`,
});

/** The kinds `workerManager` has handlers for. */
export const KINDS: readonly string[] = [sendWelcomeEmail.kind];

/**
 * A manager with the handlers registered and not started: `drain()` starts and stops it.
 * `sent` collects the emails "sent"; `env` and `collection` default to the library's
 * (`ONCE_TASK_ENV`, `onceTasks`).
 */
export function workerManager(firestore: Firestore, options: { sent?: string[]; env?: string; collection?: string } = {}): OnceTaskManager {
  const { sent = [], ...where } = options;
  const manager = new OnceTaskManager({ firestore, listen: false, ...where });
  manager.handle(sendWelcomeEmail, (task) => void sent.push(task.data.email), { concurrency: 8 });
  return manager;
}
