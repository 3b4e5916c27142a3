/**
 * Task definitions shared by the demo's producer (demo.ts) and workers (demo-worker.ts).
 * Producers and workers must agree on a kind's name, schema and ID, so they import one module.
 */
import { Firestore } from '@google-cloud/firestore';
import { z } from 'zod';
import { defineTask } from '../src/index.js';

/** Any `demo-*` project ID works with the emulator; no real project is touched. */
export const DEMO_PROJECT_ID = 'demo-oncetask';

/** One welcome email per user, however often the signup event is delivered. */
export const sendWelcomeEmail = defineTask({
  kind: 'send-welcome-email',
  schema: z.object({ userId: z.string(), email: z.email() }),
  id: (d) => `welcome:${d.userId}`,
});

/** Changes to sync to an account's CRM record: never two syncs of one account at once (its resource key), and a grouped handler takes an account's pending changes together. */
export const syncAccount = defineTask({
  kind: 'sync-account',
  schema: z.object({ accountId: z.string(), change: z.number().int() }),
  id: (d) => `sync:${d.accountId}:${d.change}`,
  resourceKey: (d) => d.accountId,
});

/** A recurring report: a generator spawns one occurrence per slot of its rule (every 2 s in the demo; FREQ=WEEKLY in real life). */
export const buildReport = defineTask({
  kind: 'build-report',
  schema: z.object({ name: z.string() }),
  id: (d) => `report:${d.name}`,
});

/** An import whose upstream fails twice before it answers: it succeeds on its third attempt. */
export const importFeed = defineTask({
  kind: 'import-feed',
  schema: z.object({ feed: z.string() }),
  id: (d) => `import:${d.feed}`,
});

/** A long export that is cancelled while it runs: its handler sees its signal abort. */
export const exportArchive = defineTask({
  kind: 'export-archive',
  schema: z.object({ archive: z.string() }),
  id: (d) => `export:${d.archive}`,
});

/** Firestore client; FIRESTORE_EMULATOR_HOST must be set before this is called. */
export function demoFirestore(): Firestore {
  return new Firestore({ projectId: DEMO_PROJECT_ID });
}
