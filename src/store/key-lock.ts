import { z } from 'zod';
import { isTimestampLike } from '../values.js';

/**
 * Resource-key locks. Tasks of one kind and environment that share a resource key run one at
 * a time: whoever runs one holds the key's lock document, claimed in the same atomic commit as
 * the task(s) and fenced by the same lease token. A lock whose holder's lease has expired is
 * free, so a dead worker's key is free again once its lease runs out.
 */

const timestamp = z.custom<Date>((v) => isTimestampLike(v) || v instanceof Date, 'expected a Timestamp').transform(
  (v) => (v instanceof Date ? v : (v as unknown as { toDate(): Date }).toDate()),
);

/** Schema of a stored key lock. */
export const keyLockSchema = z.object({
  env: z.string(),
  kind: z.string(),
  resourceKey: z.string(),
  /** The current holder, or null when released. */
  holder: z.object({ token: z.string(), workerId: z.string(), expiresAt: timestamp }).nullable(),
  updatedAt: timestamp,
  /** TTL field: an idle lock may be deleted after the retention period. */
  expireAt: timestamp.nullable(),
  /** Cooldown (`cooldownMs`): the key's next task starts no sooner than this (set by the release). */
  cooldownUntil: timestamp.nullable().default(null),
  /** The kind's `cooldownMs`, written with each claim: a holder that dies cools down from its lease's expiry. */
  cooldownMs: z.number().nonnegative().default(0),
  /**
   * Strict order (`strictOrder`): the task whose failed attempt blocks the key until it succeeds
   * or fails for good (its document ID), and when its retry comes due.
   */
  blockedBy: z.object({ docId: z.string(), until: timestamp }).nullable().default(null),
});

/** A decoded key lock. */
export type KeyLock = z.output<typeof keyLockSchema>;

/** Whether nobody holds the lock at `now` (released, or the holder's lease ran out). */
export function isLockFree(lock: KeyLock | null, now: number): boolean {
  return lock === null || lock.holder === null || lock.holder.expiresAt.getTime() <= now;
}

/**
 * When a key's next task may start, for a claimer at `now` whose clock-skew allowance is
 * `skewMs`: null if now. A holder's lease counts as expired `skewMs` after its stored expiry;
 * a cooldown runs from the release, or — the holder died — from that expiry.
 */
export function keyBusyUntil(lock: KeyLock | null, now: number, skewMs: number): number | null {
  if (lock === null) return null;
  let until: number;
  if (lock.holder === null) until = lock.cooldownUntil?.getTime() ?? 0;
  else {
    const expired = lock.holder.expiresAt.getTime() + skewMs;
    until = expired > now ? expired : expired + lock.cooldownMs;
  }
  return until > now ? until : null;
}
