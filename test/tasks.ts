/** Task kinds shared by the tests and the worker processes they spawn (no vitest imports here). */
import { z } from 'zod';
import { defineTask } from '../src/index.js';

/** A kind whose payload says how to behave. */
export const jobTask = defineTask({
  kind: 'job',
  schema: z.object({
    n: z.number().int(),
    failTimes: z.number().int().default(0),
    sleepMs: z.number().int().default(0),
  }),
  id: (d) => `job-${d.n}`,
});

/** A kind serialized per resource key `key`. */
export const keyedTask = defineTask({
  kind: 'keyed',
  schema: z.object({ n: z.number().int(), key: z.string(), sleepMs: z.number().int().default(0) }),
  id: (d) => `keyed-${d.n}`,
  resourceKey: (d) => d.key,
});
