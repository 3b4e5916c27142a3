/**
 * Wall time, injectable. Every place the library reads the current time (due times, lease
 * expiry written to documents, lock freedom, schedules) asks a {@link Clock}, so tests can skew
 * one worker's clock. Deadlines inside one process are measured on the monotonic clock instead
 * (`performance.now()`), which no skew or NTP step moves.
 */

/** Returns the current time in ms since the epoch, like `Date.now`. */
export type Clock = () => number;

/** The system clock. */
export const systemClock: Clock = () => Date.now();

/** Default allowance for clock differences between processes, in ms. */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 2000;

/**
 * How long before its stored expiry a holder gives up its lease (measured on the monotonic
 * clock from when the claim or renewal was sent): a tenth of the lease, between 50 ms and 2 s.
 * It covers the time from the deadline timer to the aborted signal and timer lateness.
 */
export function leaseSafetyMarginMs(leaseMs: number): number {
  return Math.min(2000, Math.max(50, leaseMs / 10));
}
