import type { OnceTaskLogger } from '../logger.js';

/** Time limits of the worker loop: a look at the queue that hangs, a wait with a cap. */

/** A claim round slower than this is reported as a backend outage. */
const SLOW_BACKEND_MS = 5000;

/**
 * Awaits a look at the queue, watched: against an unreachable backend the SDK either fails
 * calls (the loop logs those, with backoff) or keeps retrying them without failing. A look that
 * hangs is then the only sign of the outage: say so after 5 s, and say when Firestore answers again.
 */
export async function watchSlow<T>(look: Promise<T>, log: OnceTaskLogger): Promise<T> {
  const started = Date.now();
  let warned = false;
  const timer = setTimeout(() => {
    warned = true;
    log.warn({ waitedMs: Date.now() - started }, 'oncetask: Firestore is not answering; still trying');
  }, SLOW_BACKEND_MS);
  try {
    return await look;
  } finally {
    clearTimeout(timer);
    if (warned) log.info({ downMs: Date.now() - started }, 'oncetask: Firestore answers again');
  }
}

/** Waits for `promise`, but no longer than `ms`. */
export async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, ms))))]);
  clearTimeout(timer);
}
