import { describe, expect, it } from 'vitest';
import { InvalidOptionsError, NonRetryableError } from '../src/errors.js';
import { decideRetry, exponentialBackoff, fixedDelay, noRetry, type RetryPolicy } from '../src/retry.js';

const boom = new Error('boom');

describe('exponentialBackoff', () => {
  it('allows maxAttempts attempts in total', () => {
    const policy = exponentialBackoff({ maxAttempts: 3 });
    expect([1, 2, 3].map((a) => policy.shouldRetry(a, boom))).toEqual([true, true, false]);
  });

  it('grows by the multiplier from baseMs and caps at maxMs without jitter', () => {
    const policy = exponentialBackoff({ baseMs: 100, multiplier: 3, maxMs: 1000, jitter: false, maxAttempts: 10 });
    expect([1, 2, 3, 4].map((a) => policy.nextDelayMs(a, boom))).toEqual([100, 300, 900, 1000]);
  });

  it('keeps equal jitter within [delay/2, delay] and full jitter within [0, delay]', () => {
    const equal = exponentialBackoff({ baseMs: 1000, jitter: 'equal', maxAttempts: 10 });
    const full = exponentialBackoff({ baseMs: 1000, jitter: 'full', maxAttempts: 10 });
    const equalDelays = Array.from({ length: 200 }, () => equal.nextDelayMs(2, boom));
    const fullDelays = Array.from({ length: 200 }, () => full.nextDelayMs(2, boom));
    expect(Math.min(...equalDelays)).toBeGreaterThanOrEqual(1000);
    expect(Math.max(...equalDelays)).toBeLessThanOrEqual(2000);
    expect(Math.min(...fullDelays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...fullDelays)).toBeLessThanOrEqual(2000);
    expect(new Set(fullDelays).size).toBeGreaterThan(100); // actually random
  });

  it('rejects invalid options with InvalidOptionsError', () => {
    expect(() => exponentialBackoff({ maxAttempts: 0 })).toThrow(InvalidOptionsError);
    expect(() => exponentialBackoff({ baseMs: -1 })).toThrow(/baseMs/);
    expect(() => exponentialBackoff({ multiplier: 0.5 })).toThrow(/multiplier/);
    expect(() => exponentialBackoff({ jitter: 'sometimes' as never })).toThrow(/jitter/);
  });
});

describe('fixedDelay and noRetry', () => {
  it('fixedDelay waits delayMs between attempts up to maxAttempts', () => {
    const policy = fixedDelay({ maxAttempts: 2, delayMs: 250 });
    expect(policy.shouldRetry(1, boom)).toBe(true);
    expect(policy.shouldRetry(2, boom)).toBe(false);
    expect(policy.nextDelayMs(1, boom)).toBe(250);
    expect(() => fixedDelay({ delayMs: Number.NaN })).toThrow(InvalidOptionsError);
  });

  it('noRetry never retries', () => {
    expect(noRetry().shouldRetry(1, boom)).toBe(false);
  });
});

describe('decideRetry', () => {
  it('never retries a NonRetryableError, whatever the policy says', () => {
    const always: RetryPolicy = { shouldRetry: () => true, nextDelayMs: () => 5 };
    expect(decideRetry(always, 1, new NonRetryableError('bad input'))).toEqual({ retry: false });
    expect(decideRetry(always, 1, boom)).toEqual({ retry: true, delayMs: 5 });
  });

  it('survives policies that throw or return nonsense delays', () => {
    const throwing: RetryPolicy = { shouldRetry: () => { throw new Error('x'); }, nextDelayMs: () => 1 };
    const nonsense: RetryPolicy = { shouldRetry: () => true, nextDelayMs: () => Number.NaN };
    const negative: RetryPolicy = { shouldRetry: () => true, nextDelayMs: () => -100 };
    expect(decideRetry(throwing, 1, boom)).toEqual({ retry: false });
    expect(decideRetry(nonsense, 1, boom)).toEqual({ retry: true, delayMs: 0 });
    expect(decideRetry(negative, 1, boom)).toEqual({ retry: true, delayMs: 0 });
  });
});
