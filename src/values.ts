import { UnencodableValueError } from './errors.js';

/**
 * Payloads and results are stored as native Firestore values (not JSON strings), so dates stay
 * Timestamps and nested maps stay queryable. This module makes the conversion explicit: it
 * rejects what Firestore cannot store with the path of the bad value, and turns stored
 * Timestamps back into `Date`s so schemas that expect dates parse what they wrote.
 */

const MAX_DEPTH = 20;

/** Structural check for a Firestore Timestamp from any copy of the SDK. */
export function isTimestampLike(value: unknown): value is { toDate(): Date; seconds: number; nanoseconds: number } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { toDate?: unknown }).toDate === 'function' &&
    typeof (value as { seconds?: unknown }).seconds === 'number' &&
    typeof (value as { nanoseconds?: unknown }).nanoseconds === 'number'
  );
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Returns a copy of `value` that Firestore can store: `undefined` properties are dropped
 * (as JSON would), `undefined` at the top becomes `null`. Throws {@link UnencodableValueError}
 * naming the path of the first value Firestore cannot store (functions, symbols, class
 * instances, Maps, nested arrays, cycles, bigints outside int64).
 */
export function toFirestoreValue(value: unknown, what: string): unknown {
  const seen = new Set<object>();
  const visit = (v: unknown, path: string, depth: number, inArray: boolean): unknown => {
    if (v === undefined) return null;
    if (v === null || typeof v === 'string' || typeof v === 'boolean' || typeof v === 'number') return v;
    if (typeof v === 'bigint') {
      if (v > 9223372036854775807n || v < -9223372036854775808n) fail(path, 'bigint outside the 64-bit range');
      return v;
    }
    if (typeof v === 'function' || typeof v === 'symbol') fail(path, `a ${typeof v} cannot be stored`);
    const obj = v as object;
    if (v instanceof Date) {
      if (Number.isNaN(v.getTime())) fail(path, 'invalid Date');
      return v;
    }
    if (obj instanceof Uint8Array || isTimestampLike(obj)) return obj;
    if (depth >= MAX_DEPTH) fail(path, `nested deeper than ${MAX_DEPTH} levels`);
    if (seen.has(obj)) fail(path, 'circular reference');
    seen.add(obj);
    try {
      if (Array.isArray(obj)) {
        if (inArray) fail(path, 'arrays of arrays cannot be stored in Firestore');
        return obj.map((item, i) => visit(item, `${path}[${i}]`, depth + 1, true));
      }
      if (!isPlainObject(obj)) fail(path, `an instance of ${obj.constructor?.name ?? 'a class'} cannot be stored`);
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(obj)) {
        if (item === undefined) continue;
        out[key] = visit(item, path === '' ? key : `${path}.${key}`, depth + 1, false);
      }
      return out;
    } finally {
      seen.delete(obj);
    }
  };
  const fail = (path: string, detail: string): never => {
    throw new UnencodableValueError(`${what}${path === '' ? '' : ` at "${path}"`}: ${detail}`);
  };
  return visit(value, '', 0, false);
}

/**
 * Converts stored Firestore values back to plain JS: Timestamps become Dates, recursively.
 * With a Firestore instance created with `useBigInt: true`, integers arrive as bigints: safe
 * ones become numbers again (what schemas expect), larger ones stay bigints (no precision lost).
 */
export function fromFirestoreValue(value: unknown): unknown {
  if (typeof value === 'bigint') return value >= Number.MIN_SAFE_INTEGER && value <= Number.MAX_SAFE_INTEGER ? Number(value) : value;
  if (value === null || typeof value !== 'object') return value;
  if (isTimestampLike(value)) return value.toDate();
  if (value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(fromFirestoreValue);
  if (!isPlainObject(value)) return value; // GeoPoint, DocumentReference: handed over as they are
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = fromFirestoreValue(item);
  return out;
}
