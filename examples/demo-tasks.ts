/**
 * Task definitions shared by the demo's producer (demo.ts) and workers (demo-worker.ts).
 * Producers and workers must agree on a kind's name, schema and ID, so they import one module.
 */
import { Firestore } from '@google-cloud/firestore';
import { z } from 'zod';
import { defineTask } from '../src/index.js';

/** Any `demo-*` project ID works with the emulator; no real project is touched. */
export const DEMO_PROJECT_ID = 'demo-oncetask';

export const sendWelcomeEmail = defineTask({
  kind: 'send-welcome-email',
  schema: z.object({
    userId: z.string(),
    email: z.email(),
    // Demo knobs: 'flaky' fails its first attempt (and is retried), 'broken' fails for good.
    simulate: z.enum(['flaky', 'broken']).optional(),
  }),
  // One welcome email per user, however often the signup event is delivered.
  id: (d) => `welcome:${d.userId}`,
});

/** Firestore client; FIRESTORE_EMULATOR_HOST must be set before this is called. */
export function demoFirestore(): Firestore {
  return new Firestore({ projectId: DEMO_PROJECT_ID });
}
