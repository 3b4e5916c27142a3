/** The kinds the Cloud Run worker runs; in a real app, a module shared with the code that creates the tasks. */
import { z } from 'zod';
// In your app: from 'oncetask'.
import { defineTask } from '../../src/index.js';

export const sendWelcomeEmail = defineTask({
  kind: 'send-welcome-email',
  schema: z.object({ userId: z.string(), email: z.email() }),
  id: (d) => `welcome:${d.userId}`,
});
