import { InvalidOptionsError, NonRetryableError } from './errors.js';
import { assertKnownOptions, optionNames } from './known-options.js';

/**
 * Retry policies decide, after a failed attempt, whether the task runs again and when.
 * Any object with these two methods is a policy; the helpers below cover the usual ones.
 */
export interface RetryPolicy {
  /** Whether to run again after `attempt` (1-based) failed with `err`. */
  shouldRetry(attempt: number, err: Error): boolean;
  /** How long to wait before the next attempt, after `attempt` failed with `err`. */
  nextDelayMs(attempt: number, err: Error): number;
}

/** Options of {@link exponentialBackoff}. */
export interface ExponentialBackoffOptions {
  /** Total attempts, the first included. Default 3. */
  maxAttempts?: number;
  /** Delay after the first failure. Default 1000 ms. */
  baseMs?: number;
  /** Upper bound of any delay. Default 5 minutes. */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  multiplier?: number;
  /**
   * Randomization so failures that happened together do not retry together: `true` or `"full"`
   * picks uniformly in [0, delay]; `"equal"` in [delay/2, delay]; `false` none. Default `"equal"`.
   */
  jitter?: boolean | 'full' | 'equal';
}

function checkCount(name: string, value: number | undefined, min: number): void {
  if (value !== undefined && (!Number.isInteger(value) || value < min)) {
    throw new InvalidOptionsError(`${name} must be an integer >= ${min} (got ${String(value)})`);
  }
}

function checkMs(name: string, value: number | undefined): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value < 0)) {
    throw new InvalidOptionsError(`${name} must be a finite number >= 0 (got ${String(value)})`);
  }
}

/** A {@link NonRetryableError} ends retries under every built-in policy. */
function retryable(err: Error): boolean {
  return !(err instanceof NonRetryableError);
}

/** Exponential backoff: `baseMs * multiplier^(attempt-1)`, capped at `maxMs`, with jitter. */
export function exponentialBackoff(options: ExponentialBackoffOptions = {}): RetryPolicy {
  assertKnownOptions(options, optionNames<ExponentialBackoffOptions>()(['maxAttempts', 'baseMs', 'maxMs', 'multiplier', 'jitter']), 'exponentialBackoff');
  const { maxAttempts = 3, baseMs = 1000, maxMs = 5 * 60_000, multiplier = 2, jitter = 'equal' } = options;
  checkCount('exponentialBackoff: maxAttempts', maxAttempts, 1);
  checkMs('exponentialBackoff: baseMs', baseMs);
  checkMs('exponentialBackoff: maxMs', maxMs);
  if (typeof multiplier !== 'number' || !Number.isFinite(multiplier) || multiplier < 1) {
    throw new InvalidOptionsError(`exponentialBackoff: multiplier must be a number >= 1 (got ${String(multiplier)})`);
  }
  if (![true, false, 'full', 'equal'].includes(jitter)) {
    throw new InvalidOptionsError(`exponentialBackoff: jitter must be true, false, "full" or "equal"`);
  }
  return {
    shouldRetry: (attempt, err) => retryable(err) && attempt < maxAttempts,
    nextDelayMs: (attempt) => {
      const delay = Math.min(maxMs, baseMs * multiplier ** Math.max(0, attempt - 1));
      if (jitter === true || jitter === 'full') return Math.random() * delay;
      if (jitter === 'equal') return delay / 2 + Math.random() * (delay / 2);
      return delay;
    },
  };
}

/** Options of {@link fixedDelay}. */
export interface FixedDelayOptions {
  /** Total attempts, the first included. Default 3. */
  maxAttempts?: number;
  /** Delay before every retry. Default 1000 ms. */
  delayMs?: number;
}

/** The same delay before every retry. */
export function fixedDelay(options: FixedDelayOptions = {}): RetryPolicy {
  assertKnownOptions(options, optionNames<FixedDelayOptions>()(['maxAttempts', 'delayMs']), 'fixedDelay');
  const { maxAttempts = 3, delayMs = 1000 } = options;
  checkCount('fixedDelay: maxAttempts', maxAttempts, 1);
  checkMs('fixedDelay: delayMs', delayMs);
  return {
    shouldRetry: (attempt, err) => retryable(err) && attempt < maxAttempts,
    nextDelayMs: () => delayMs,
  };
}

/** Fail on the first error. */
export function noRetry(): RetryPolicy {
  return { shouldRetry: () => false, nextDelayMs: () => 0 };
}

/** Checks that a user-supplied policy has both methods. */
export function assertRetryPolicy(policy: unknown, name: string): asserts policy is RetryPolicy {
  const p = policy as Partial<RetryPolicy> | null;
  if (typeof p !== 'object' || p === null || typeof p.shouldRetry !== 'function' || typeof p.nextDelayMs !== 'function') {
    throw new InvalidOptionsError(`${name} must be an object with shouldRetry(attempt, err) and nextDelayMs(attempt, err)`);
  }
}

/**
 * Asks a policy what to do, defending against policies that throw or return nonsense:
 * a `NonRetryableError` always ends the task, and a bad delay counts as 0.
 */
export function decideRetry(policy: RetryPolicy, attempt: number, err: Error): { retry: false } | { retry: true; delayMs: number } {
  if (err instanceof NonRetryableError) return { retry: false };
  let retry: boolean;
  try {
    retry = policy.shouldRetry(attempt, err) === true;
  } catch {
    retry = false;
  }
  if (!retry) return { retry: false };
  let delayMs: number;
  try {
    delayMs = policy.nextDelayMs(attempt, err);
  } catch {
    delayMs = 0;
  }
  if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0) delayMs = 0;
  return { retry: true, delayMs };
}
