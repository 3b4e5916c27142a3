/** Task kinds of the chaos run. */
import { z } from 'zod';
import { defineTask } from '../dist/index.js';

const payload = z.object({ n: z.number().int(), key: z.string().optional(), sleepMs: z.number().int().min(0), stubborn: z.boolean().optional() });

/** Plain tasks. */
export const plainTask = defineTask({ kind: 'chaos-plain', schema: payload, id: (d) => `p${d.n}` });
/** Tasks serialized per key, one at a time. */
export const keyedTask = defineTask({ kind: 'chaos-keyed', schema: payload, id: (d) => `k${d.n}`, resourceKey: (d) => d.key ?? 'none' });
/** Tasks serialized per key, handled in groups. */
export const groupTask = defineTask({ kind: 'chaos-group', schema: payload, id: (d) => `g${d.n}`, resourceKey: (d) => d.key ?? 'none' });
/** Tasks that outlive their lease (renewal must hold them); some get cancelled mid-run. */
export const longTask = defineTask({ kind: 'chaos-long', schema: payload, id: (d) => `l${d.n}` });

/** Lease of long tasks: shorter than their run, so only renewals keep them. */
export const LONG_LEASE_MS = 2000;
/** Lease of the other kinds. */
export const LEASE_MS = 3000;
/** Timeout of plain tasks; stubborn ones sleep past it, ignoring their signal. */
export const STUBBORN_TIMEOUT_MS = 1500;
