/** Task kinds of the benchmark. */
import { z } from 'zod';
import { defineTask } from '../src/index.js';

/** A no-op task; `key` (optional) is its resource key. */
export const benchTask = defineTask({
  kind: 'bench',
  schema: z.object({ n: z.number().int(), key: z.string().optional() }),
  id: (d) => `t${d.n}`,
});

/** The same, serialized per `key`. */
export const keyedBenchTask = defineTask({
  kind: 'bench-keyed',
  schema: z.object({ n: z.number().int(), key: z.string() }),
  id: (d) => `k${d.n}`,
  resourceKey: (d) => d.key,
});

/** Two more kinds, for workers that run several kinds (each kind has its own queue listener). */
export const otherBenchTasks = ['bench-b', 'bench-c'].map((kind) =>
  defineTask({ kind, schema: z.object({ n: z.number().int() }), id: (d) => `${kind}-${d.n}` }),
);
