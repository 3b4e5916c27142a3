import { isTimestampLike } from '../../values.js';
/**
 * Timestamps of the in-memory database: the value type of stored dates and of document
 * versions (`updateTime`, `createTime`, `readTime`, `writeTime`). Shaped like the SDK's
 * `Timestamp` (`seconds`, `nanoseconds`, `toDate()`, `toMillis()`, `isEqual()`, `valueOf()`),
 * so code that checks timestamps structurally (`isTimestampLike` in src/values.ts) treats it
 * as one. Immutable, so stored documents and snapshots can share instances without aliasing.
 */

/** Smallest `seconds` Firestore accepts: 0001-01-01T00:00:00Z. */
const MIN_SECONDS = -62135596800;
/** Largest `seconds` Firestore accepts: 9999-12-31T23:59:59Z. */
const MAX_SECONDS = 253402300799;

/** Anything with the shape of a Firestore Timestamp (from any copy of the SDK, or ours). */
export interface TimestampLike {
  readonly seconds: number;
  readonly nanoseconds: number;
  toDate(): Date;
}

/** Structural check for a Timestamp: the library's own (from any copy of the SDK, or this database). */
export const isTimestampLikeValue: (value: unknown) => value is TimestampLike = isTimestampLike;

/** A point in time with nanosecond fields, as Firestore's `Timestamp`. */
export class MemoryTimestamp implements TimestampLike {
  // Own fields named as the SDK's, so deep equality (a test's `toEqual`) compares instants.
  private readonly _seconds: number;
  private readonly _nanoseconds: number;

  constructor(seconds: number, nanoseconds: number) {
    if (!Number.isInteger(seconds) || seconds < MIN_SECONDS || seconds > MAX_SECONDS) {
      throw new Error(`Value for argument "seconds" must be within [${MIN_SECONDS}, ${MAX_SECONDS}] inclusive, but was: ${seconds}`);
    }
    if (!Number.isInteger(nanoseconds) || nanoseconds < 0 || nanoseconds > 999_999_999) {
      throw new Error(`Value for argument "nanoseconds" must be within [0, 999999999] inclusive, but was: ${nanoseconds}`);
    }
    this._seconds = seconds;
    this._nanoseconds = nanoseconds;
  }

  /** The current wall time (millisecond precision, as the SDK's `Timestamp.now()`). */
  static now(): MemoryTimestamp {
    return MemoryTimestamp.fromMillis(Date.now());
  }

  static fromDate(date: Date): MemoryTimestamp {
    return MemoryTimestamp.fromMillis(date.getTime());
  }

  static fromMillis(milliseconds: number): MemoryTimestamp {
    const seconds = Math.floor(milliseconds / 1000);
    return new MemoryTimestamp(seconds, Math.floor((milliseconds - seconds * 1000) * 1_000_000));
  }

  /** From microseconds since the epoch: the precision Firestore keeps. */
  static fromMicros(micros: number): MemoryTimestamp {
    const seconds = Math.floor(micros / 1_000_000);
    return new MemoryTimestamp(seconds, (micros - seconds * 1_000_000) * 1000);
  }

  /**
   * A stored copy of any Timestamp-like value. Firestore keeps microseconds, so finer
   * nanoseconds are dropped, as the server drops them.
   */
  static from(value: TimestampLike): MemoryTimestamp {
    return new MemoryTimestamp(value.seconds, Math.floor(value.nanoseconds / 1000) * 1000);
  }

  get seconds(): number {
    return this._seconds;
  }

  get nanoseconds(): number {
    return this._nanoseconds;
  }

  toDate(): Date {
    return new Date(this.toMillis());
  }

  toMillis(): number {
    return this._seconds * 1000 + Math.floor(this._nanoseconds / 1_000_000);
  }

  /** Microseconds since the epoch (exact for every stored timestamp). */
  toMicros(): number {
    return this._seconds * 1_000_000 + Math.floor(this._nanoseconds / 1000);
  }

  /**
   * Whether `other` is the same instant. Structural, unlike the SDK's (which also wants its own
   * class), so a precondition from another copy of the SDK still compares.
   */
  isEqual(other: unknown): boolean {
    return this === other || (isTimestampLikeValue(other) && other.seconds === this._seconds && other.nanoseconds === this._nanoseconds);
  }

  /** A string whose lexicographic order is the chronological order (as the SDK's), so `<` works on timestamps. */
  valueOf(): string {
    return `${String(this._seconds - MIN_SECONDS).padStart(12, '0')}.${String(this._nanoseconds).padStart(9, '0')}`;
  }

  toString(): string {
    return `Timestamp(seconds=${this._seconds}, nanoseconds=${this._nanoseconds})`;
  }
}

/**
 * The database's commit clock: wall time in microseconds, forced strictly increasing, so every
 * commit gets a version later than all before it even when the wall clock stands still or
 * steps back (or a test fakes `Date.now`).
 */
export class MemoryClock {
  private last = 0;

  /** The time of a new commit: later than every earlier one. */
  next(): MemoryTimestamp {
    this.last = Math.max(this.last + 1, Date.now() * 1000);
    return MemoryTimestamp.fromMicros(this.last);
  }

  /** A read time: now, but never before the last commit (what a read observes includes it). */
  now(): MemoryTimestamp {
    return MemoryTimestamp.fromMicros(Math.max(this.last, Date.now() * 1000));
  }
}
