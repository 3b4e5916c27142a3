import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';

/**
 * What every Firestore call of the store goes through: a deadline of our own, and the gRPC
 * codes that tell a refused write from one whose outcome is unknown.
 *
 * The SDK retries on its own (a commit on UNAVAILABLE for up to 10 minutes), so a call sent
 * into a partition neither succeeds nor fails. Each call is raced against a deadline instead;
 * when it passes, the call is abandoned (its late answer is ignored) and treated as ambiguous.
 * An abandoned write may still land later; every write is conditional (a version precondition
 * or `create`), so a late one lands only if nobody wrote the document since.
 */

/** gRPC status codes the store reacts to. */
export const GRPC = {
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  FAILED_PRECONDITION: 9,
  UNAVAILABLE: 14,
} as const;

/**
 * Codes after which a write may or may not have been applied (CANCELLED, UNKNOWN,
 * DEADLINE_EXCEEDED, UNAVAILABLE). The emulator answers UNKNOWN or CANCELLED to writes it did
 * apply when a listener closes meanwhile.
 */
export const AMBIGUOUS_CODES: ReadonlySet<number> = new Set([GRPC.CANCELLED, GRPC.UNKNOWN, GRPC.DEADLINE_EXCEEDED, GRPC.UNAVAILABLE]);

/** Default deadline of one Firestore call, in ms (the SDK's own is up to 10 minutes). */
export const DEFAULT_CALL_TIMEOUT_MS = 20_000;

/** The gRPC status code of an SDK error, if it has one. */
export function grpcCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Whether a write that failed with `err` may have been applied. */
export function isAmbiguous(err: unknown): boolean {
  return AMBIGUOUS_CODES.has(grpcCode(err) ?? -1);
}

/** A monotonic clock in ms: deadlines and lease expiry are measured on it, never on wall time. */
export function monotonicNow(): number {
  return performance.now();
}

/** A call that did not settle before its deadline. Its gRPC-like code marks it ambiguous. */
export class CallDeadlineError extends Error {
  readonly code = GRPC.DEADLINE_EXCEEDED;

  constructor(readonly what: string, readonly timeoutMs: number) {
    super(`${what}: no answer from Firestore within ${Math.round(timeoutMs)} ms`);
    this.name = 'CallDeadlineError';
  }
}

/**
 * Waits for `call` at most `timeoutMs`; then rejects with {@link CallDeadlineError}. The
 * abandoned call's own late rejection is swallowed (it would otherwise be unhandled).
 */
export function withDeadline<T>(call: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  if (timeoutMs <= 0) {
    call.catch(() => undefined);
    return Promise.reject(new CallDeadlineError(what, 0));
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      call.catch(() => undefined);
      reject(new CallDeadlineError(what, timeoutMs));
    }, Math.min(timeoutMs, MAX_TIMER_MS));
  });
  return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
}

/** setTimeout's longest delay (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A random revision stamped on every write, so an ambiguous outcome can be checked at once. */
export function newRev(): string {
  return randomUUID();
}
