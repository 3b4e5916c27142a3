import { MemoryFirestoreError, CODE } from './memory-errors.js';
import { isTimestampLikeValue, MemoryTimestamp } from './memory-timestamp.js';

/**
 * Values as the in-memory database stores them, and the rules Firestore applies to them:
 * what a document may hold (checked on every write, with the SDK's messages), how a write is
 * copied in and a read copied out (so no caller ever shares an object with the store), and
 * Firestore's total order over values of every type (which queries, ordering and cursors use).
 */

/** The document name (`__name__`) as a value: its path. Orders as Firestore's reference type. */
export class NameValue {
  constructor(readonly path: string) {}
}

/** A stored value. Containers are never mutated once stored: a write builds new ones. */
export type Value = null | boolean | number | string | MemoryTimestamp | Buffer | NameValue | Value[] | MapValue;

/** A stored map (and a document's fields). */
export interface MapValue {
  [field: string]: Value;
}

/** Options of the write-side conversion. */
export interface EncodeOptions {
  /** Drop `undefined` properties (the SDK's `ignoreUndefinedProperties`); otherwise they are refused. */
  ignoreUndefinedProperties: boolean;
}

/** The SDK refuses values nested deeper than this many field-path segments (or cycles, which reach it). */
const MAX_DEPTH = 20;

/** As the SDK judges it: no prototype, `Object.prototype`, or any object whose constructor is named `Object` (e.g. a parsed `__proto__` key made a plain object the prototype). */
function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null || (value as { constructor?: { name?: unknown } }).constructor?.name === 'Object';
}

/** Sets `key` on `target` even when it is `__proto__` (a plain assignment would change the prototype). */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/**
 * Converts a document's data as a caller wrote it into stored form, a deep copy: `Date`s and
 * Timestamp-likes become {@link MemoryTimestamp}s (microsecond precision, as the server keeps),
 * bigints numbers (what the SDK reads back without `useBigInt`), byte arrays `Buffer` copies.
 * Throws the SDK's error (no code) for what the SDK refuses before sending, and an
 * INVALID_ARGUMENT {@link MemoryFirestoreError} for what the server refuses (nested arrays).
 */
export function encodeDocument(data: unknown, options: EncodeOptions, arg = 'data'): MapValue {
  if (typeof data !== 'object' || data === null || Array.isArray(data) || !isPlainObject(data)) {
    throw new Error(`Value for argument "${arg}" is not a valid Firestore document. Input is not a plain JavaScript object.`);
  }
  return encodeValue(data, options, arg, [], false) as MapValue;
}

/** {@link encodeDocument} for one value at field path `path` (segments). */
export function encodeValue(value: unknown, options: EncodeOptions, arg: string, path: readonly string[], inArray: boolean): Value {
  const where = path.length > 0 ? ` (found in field "${path.join('.')}")` : '';
  const refuse = (detail: string): never => {
    throw new Error(`Value for argument "${arg}" is not a valid Firestore document. ${detail}`);
  };
  if (path.length - 1 > MAX_DEPTH) refuse(`Input object is deeper than ${MAX_DEPTH} levels or contains a cycle.`);
  if (value === null || typeof value === 'string' || typeof value === 'boolean' || typeof value === 'number') return value;
  if (value === undefined) {
    return refuse(`Cannot use "undefined" as a Firestore value${where}. If you want to ignore undefined values, enable \`ignoreUndefinedProperties\`.`);
  }
  if (typeof value === 'bigint') return Number(value);
  if (typeof value !== 'object') return refuse(`Cannot encode a value of type "${typeof value}"${where}.`);
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) refuse(`Invalid Date${where}.`);
    return MemoryTimestamp.fromDate(value);
  }
  if (value instanceof MemoryTimestamp) return value; // immutable: shared safely
  if (isTimestampLikeValue(value)) return MemoryTimestamp.from(value);
  if (value instanceof Uint8Array) return Buffer.from(value); // (a copy)
  if (Array.isArray(value)) {
    // The SDK sends these; the server refuses them.
    if (inArray) throw new MemoryFirestoreError(CODE.INVALID_ARGUMENT, `Cannot have nested arrays${where}.`);
    const out: Value[] = [];
    value.forEach((item: unknown, i) => {
      if (item === undefined && options.ignoreUndefinedProperties) return;
      out.push(encodeValue(item, options, arg, [...path, String(i)], true));
    });
    return out;
  }
  if (!isPlainObject(value)) {
    const name = (value as { constructor?: { name?: string } }).constructor?.name ?? 'Object';
    if (name.endsWith('Transform') || name === 'FieldValue') throw new Error(`FieldValue sentinels (found in field "${path.join('.')}") are not supported by the memory backend`);
    return refuse(`Couldn't serialize object of type "${name}"${where}. Firestore doesn't support JavaScript objects with custom prototypes (i.e. objects that were created via the "new" operator).`);
  }
  const out: MapValue = {};
  for (const [key, item] of Object.entries(value)) {
    if (item === undefined && options.ignoreUndefinedProperties) continue;
    // The SDK refuses an empty field name; a map inside an array may hold arrays again.
    if (key === '') refuse(`Element at index ${path.length} should not be an empty string.`);
    setOwn(out as Record<string, unknown>, key, encodeValue(item, options, arg, [...path, key], false));
  }
  return out;
}

/** A deep copy of a stored value for a caller (timestamps are immutable and shared; bytes are copied). */
export function copyOut(value: Value): unknown {
  if (value === null || typeof value !== 'object' || value instanceof MemoryTimestamp) return value;
  if (value instanceof NameValue) return value.path;
  if (Buffer.isBuffer(value)) return Buffer.from(value);
  if (Array.isArray(value)) return value.map(copyOut);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) setOwn(out, key, copyOut(item));
  return out;
}

/** The value at a field path (segments) of a map, or undefined when absent (or not under a map). */
export function getField(data: MapValue, segments: readonly string[]): Value | undefined {
  let current: Value | undefined = data;
  for (const segment of segments) {
    if (!isMap(current) || !Object.prototype.hasOwnProperty.call(current, segment)) return undefined;
    current = current[segment];
  }
  return current;
}

/** Whether a stored value is a map. */
export function isMap(value: Value | undefined): value is MapValue {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof MemoryTimestamp) && !(value instanceof NameValue) && !Buffer.isBuffer(value);
}

/**
 * Splits a field path string (`a.b.c`) into segments, with the SDK's checks. Backquoted
 * segments are not supported (the SDK does not parse them in strings either).
 */
export function parseFieldPath(path: unknown, arg = 'fieldPath'): string[] {
  if (typeof path !== 'string') throw new Error(`Value for argument "${arg}" is not a valid field path. Paths can only be specified as strings.`);
  if (path.includes('..')) throw new Error(`Value for argument "${arg}" is not a valid field path. Paths must not contain ".." in them.`);
  if (path.startsWith('.') || path.endsWith('.')) throw new Error(`Value for argument "${arg}" is not a valid field path. Paths must not start or end with ".".`);
  if (path === '' || /[~*/[\]]/.test(path)) {
    throw new Error(`Value for argument "${arg}" is not a valid field path. Paths can't be empty and must not contain "*~/[]".`);
  }
  return path.split('.');
}

/** Firestore's order of value types: null, booleans, numbers, timestamps, strings, bytes, references, arrays, maps. */
function typeOrder(value: Value): number {
  if (value === null) return 0;
  if (typeof value === 'boolean') return 1;
  if (typeof value === 'number') return 2;
  if (value instanceof MemoryTimestamp) return 3;
  if (typeof value === 'string') return 4;
  if (Buffer.isBuffer(value)) return 5;
  if (value instanceof NameValue) return 6;
  if (Array.isArray(value)) return 8;
  return 9;
}

/** Whether two values are of one type for comparisons (`<` only matches values of the filter's type). */
export function sameType(a: Value, b: Value): boolean {
  return typeOrder(a) === typeOrder(b);
}

/**
 * Compares strings as Firestore does: by UTF-8 bytes, which is code-point order. JavaScript's
 * `<` compares UTF-16 units, which differs when a character beyond U+FFFF meets one in
 * U+E000..U+FFFF.
 */
export function compareStrings(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1; // a surrogate starts a code point above every BMP one
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

/** Compares document paths segment by segment. */
function comparePaths(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const c = compareStrings(x[i]!, y[i]!);
    if (c !== 0) return c;
  }
  return x.length - y.length;
}

/** Firestore's total order over values (types first, then within the type); 0 for equal values. */
export function compareValues(a: Value, b: Value): number {
  const ta = typeOrder(a);
  const tb = typeOrder(b);
  if (ta !== tb) return ta - tb;
  switch (ta) {
    case 0:
      return 0;
    case 1:
      return Number(a) - Number(b);
    case 2: {
      const x = a as number;
      const y = b as number;
      if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : -1; // NaN first, equal to itself
      if (Number.isNaN(y)) return 1;
      return x < y ? -1 : x > y ? 1 : 0;
    }
    case 3: {
      const x = a as MemoryTimestamp;
      const y = b as MemoryTimestamp;
      return x.seconds - y.seconds || x.nanoseconds - y.nanoseconds;
    }
    case 4:
      return compareStrings(a as string, b as string);
    case 5:
      return Buffer.compare(a as Buffer, b as Buffer);
    case 6:
      return comparePaths((a as NameValue).path, (b as NameValue).path);
    case 8: {
      const x = a as Value[];
      const y = b as Value[];
      for (let i = 0; i < Math.min(x.length, y.length); i++) {
        const c = compareValues(x[i]!, y[i]!);
        if (c !== 0) return c;
      }
      return x.length - y.length;
    }
    default: {
      const x = a as MapValue;
      const y = b as MapValue;
      const kx = Object.keys(x).sort(compareStrings);
      const ky = Object.keys(y).sort(compareStrings);
      for (let i = 0; i < Math.min(kx.length, ky.length); i++) {
        const c = compareStrings(kx[i]!, ky[i]!) || compareValues(x[kx[i]!]!, y[ky[i]!]!);
        if (c !== 0) return c;
      }
      return kx.length - ky.length;
    }
  }
}

/** Whether two stored values are equal (as Firestore's `==`, and for telling a no-op write). */
export function valuesEqual(a: Value, b: Value): boolean {
  return compareValues(a, b) === 0;
}

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');

/** Storage size of a value, by Firestore's documented rules. */
function valueSize(value: Value): number {
  if (value === null || typeof value === 'boolean') return 1;
  if (typeof value === 'number' || value instanceof MemoryTimestamp) return 8;
  if (typeof value === 'string') return utf8(value) + 1;
  if (Buffer.isBuffer(value)) return value.length;
  if (value instanceof NameValue) return nameSize(value.path);
  if (Array.isArray(value)) return value.reduce<number>((sum, item) => sum + valueSize(item), 0);
  let sum = 0;
  for (const [key, item] of Object.entries(value)) sum += utf8(key) + 1 + valueSize(item);
  return sum;
}

function nameSize(path: string): number {
  return path.split('/').reduce((sum, segment) => sum + utf8(segment) + 1, 16);
}

/** Firestore's limit on a document's size. */
export const MAX_DOCUMENT_BYTES = 1_048_576;

/** A document's storage size (name, fields, and 32 bytes of overhead), as Firestore counts it. */
export function documentSize(path: string, data: MapValue): number {
  return nameSize(path) + valueSize(data) + 32;
}
