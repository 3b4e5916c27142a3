import { HandlerTimeoutError, ShutdownError, toError } from '../errors.js';
import type { LeaseKeeper } from '../lease/keeper.js';
import type { Lease } from '../lease/lease.js';
import type { OnceTaskLogger } from '../logger.js';
import { monotonicNow } from '../store/calls.js';

/**
 * One call of a handler (or `beforeRun`, or `onCancel`), raced against its signal. JavaScript
 * cannot stop a handler, so after an abort the call still waits for the handler to return —
 * keeping its lease meanwhile — and only then answers with the abort; only shutdown stops
 * waiting, at its write deadline, and lets the lease lapse.
 */

/** What an attempt ended with. */
export type AttemptOutcome = { kind: 'ok'; value: unknown } | { kind: 'error'; err: Error } | { kind: 'aborted'; reason: Error };

/** A handler still running this long after its signal aborted is reported. */
export const STUBBORN_HANDLER_WARN_MS = 3000;

/** The limits of a handler call. */
export interface HandlerCallLimits {
  /** The handler's `timeoutMs`, if set: the signal aborts after this long. */
  timeoutMs: number | undefined;
  /** Once handlers were aborted for shutdown: the time (Date.now()) by which writes give up (else null). */
  writeDeadline: () => number | null;
}

/**
 * Calls a handler, racing it against its signal (which `timeoutMs` aborts too). After an
 * abort, waits for the handler to return anyway, keeping the lease meanwhile, and only then
 * answers with the abort. Returns null when there is nothing left to write: the lease ended
 * (expired or lost) or shutdown gave up on a handler that would not return.
 */
export async function callHandler(
  call: () => unknown,
  controller: AbortController,
  lease: Lease,
  keeper: LeaseKeeper,
  log: OnceTaskLogger,
  limits: HandlerCallLimits,
): Promise<AttemptOutcome | null> {
  const aborted = new Promise<AttemptOutcome>((resolve) => {
    const onAbort = (): void => resolve({ kind: 'aborted', reason: toError(controller.signal.reason) });
    if (controller.signal.aborted) onAbort();
    else controller.signal.addEventListener('abort', onAbort, { once: true });
  });
  const { timeoutMs } = limits;
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => controller.abort(new HandlerTimeoutError(timeoutMs)), timeoutMs);
  const handled = (async () => call())().then(
    (value): AttemptOutcome => ({ kind: 'ok', value }),
    (err: unknown): AttemptOutcome => ({ kind: 'error', err: toError(err) }),
  );
  let outcome: AttemptOutcome;
  try {
    outcome = await Promise.race([handled, aborted]);
  } finally {
    clearTimeout(timer);
  }
  if (outcome.kind !== 'aborted') return lease.ended ? null : outcome;
  if (!(await outlive(handled, lease, keeper, outcome.reason, log, limits.writeDeadline))) return null;
  return lease.ended ? null : outcome;
}

/**
 * Waits for an aborted handler to return. Its lease stays renewed meanwhile (unless it was
 * lost or expired); on shutdown the wait ends at the write deadline, after which the lease is
 * left to lapse. Returns whether the handler returned in time for an outcome to be written.
 */
async function outlive(
  handled: Promise<AttemptOutcome>,
  lease: Lease,
  keeper: LeaseKeeper,
  reason: Error,
  log: OnceTaskLogger,
  writeDeadline: () => number | null,
): Promise<boolean> {
  const abortedAt = monotonicNow();
  let returned = false;
  void handled.then(() => (returned = true));
  await Promise.resolve(); // a handler that returns on abort has done so by now
  await Promise.resolve();
  const warn = setTimeout(
    () => log.warn({ taskIds: lease.tasks.map((t) => t.taskId), reason: (reason as { code?: unknown }).code ?? reason.message }, 'oncetask: handler ignores its aborted signal; its task, key and slot stay held until it returns'),
    STUBBORN_HANDLER_WARN_MS,
  );
  try {
    if (reason instanceof ShutdownError && !returned) {
      const deadline = writeDeadline();
      const inTime = await Promise.race([handled.then(() => true), sleep(deadline === null ? 0 : deadline - Date.now() - 250).then(() => returned)]);
      if (!inTime) {
        keeper.end(); // stop() is about to return: stop renewing, let the lease lapse
        await handled;
        log.warn({ outlivedMs: Math.round(monotonicNow() - abortedAt) }, 'oncetask: handler returned long after shutdown; its lease had lapsed');
        return false;
      }
      return true;
    }
    await handled;
    return true;
  } finally {
    clearTimeout(warn);
    if (monotonicNow() - abortedAt > STUBBORN_HANDLER_WARN_MS) log.info({ outlivedMs: Math.round(monotonicNow() - abortedAt) }, 'oncetask: stubborn handler returned');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
