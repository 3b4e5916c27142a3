/**
 * Workers as a Firestore-triggered function: every new task document wakes a function that
 * drains its kind. With firebase-functions (v2), deploy it like this:
 *
 *   import { onDocumentCreated } from 'firebase-functions/v2/firestore';
 *   import { onTaskCreated } from './on-task-created.js';
 *   export const runTasks = onDocumentCreated(
 *     { document: 'onceTasks/{docId}', timeoutSeconds: 300, maxInstances: 10 },
 *     onTaskCreated,
 *   );
 *
 * A burst of creates starts several invocations at once; that is safe (claims are fenced), and
 * the first ones usually drain what the later ones were woken for. Tasks that come due later
 * (`waitUntil`, retries) are not created then, so they need another wake-up: pair this with the
 * scheduled drain (`scheduler-drain.ts`) at a slower rate.
 */
import { initializeApp, getApps } from 'firebase-admin/app';
import { getFirestore } from 'firebase-admin/firestore';
import type { Firestore } from '@google-cloud/firestore';
import type { DrainResult } from '../../src/index.js';
import { KINDS, workerManager } from './tasks.js';

/** The part of a Firestore trigger's event this handler reads (firebase-functions' `FirestoreEvent`). */
export interface TaskCreatedEvent {
  data?: { data(): Record<string, unknown> | undefined };
}

/**
 * Drains the created task's kind for up to 4.5 minutes (under the function's timeout). Firestore
 * defaults to firebase-admin's, with Application Default Credentials.
 */
export async function onTaskCreated(event: TaskCreatedEvent, firestore?: Firestore, where: { env?: string; collection?: string } = {}): Promise<DrainResult | null> {
  const kind = event.data?.data()?.kind;
  // Not a task document, or a kind these workers do not run (key locks and other documents of
  // the collection's siblings never match `onceTasks/{docId}`).
  if (typeof kind !== 'string' || !KINDS.includes(kind)) return null;
  if (!firestore && getApps().length === 0) initializeApp();
  const manager = workerManager(firestore ?? getFirestore(), where);
  return manager.drain({ kinds: [kind], maxMs: 270_000 });
}
