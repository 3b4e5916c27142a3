import { InvalidOptionsError } from '../errors.js';
import { parseDuration } from '../cli/duration.js';

/**
 * A clock that moves only when told: pass `clock.now` as a manager's `clock`, and every due
 * time, retry delay, lease expiry and schedule slot is read from it. The kit's `advance` moves it
 * and runs what comes due on the way.
 */
export class ManualClock {
  private ms: number;

  constructor(start: Date | number = Date.now()) {
    this.ms = typeof start === 'number' ? start : start.getTime();
    if (!Number.isFinite(this.ms)) throw new InvalidOptionsError('ManualClock: start must be a valid Date or ms since the epoch');
  }

  /** The current time in ms since the epoch (a manager's `clock`). */
  readonly now = (): number => this.ms;

  /** The current time as a Date. */
  date(): Date {
    return new Date(this.ms);
  }

  /** Sets the time; it never goes back. */
  set(to: Date | number): void {
    const ms = typeof to === 'number' ? to : to.getTime();
    if (ms > this.ms) this.ms = ms;
  }
}

/** A duration as ms: a number of ms, or `90s`, `15m`, `25h`, `7d`, `2w`. */
export function durationMs(duration: string | number, where: string): number {
  if (typeof duration === 'number') {
    if (!Number.isFinite(duration) || duration < 0) throw new InvalidOptionsError(`${where}: a duration must be a number of ms >= 0`);
    return duration;
  }
  if (typeof duration !== 'string') throw new InvalidOptionsError(`${where}: a duration must be a number of ms or a string such as "25h"`);
  return parseDuration(duration);
}
