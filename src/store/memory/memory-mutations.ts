import { isTimestampLikeValue, type TimestampLike } from './memory-timestamp.js';
import { encodeDocument, encodeValue, isMap, parseFieldPath, setOwn, type EncodeOptions, type MapValue, type Value } from './memory-values.js';
import { MemoryFirestoreError } from './memory-errors.js';

/**
 * The writes of the in-memory database, as data: what a `create`, `set`, `update` or `delete`
 * asks for (validated and copied in when the caller makes the call, as the SDK does), and the
 * pure functions that compute a document's next fields from its current ones. Stored maps are
 * never changed in place: a write copies the maps on the way to what it changes.
 */

/** A write's condition on the document's state, as the SDK's `Precondition`. */
export interface Precondition {
  exists?: boolean;
  lastUpdateTime?: TimestampLike;
}

/** One `update` field: its path (segments) and new value. */
export type UpdateField = readonly [segments: readonly string[], value: Value];

/** A write ready for a commit. */
export type WriteOp =
  | { kind: 'create'; path: string; data: MapValue }
  | { kind: 'set'; path: string; data: MapValue; merge: boolean }
  | { kind: 'update'; path: string; fields: readonly UpdateField[]; precondition: Precondition }
  | { kind: 'delete'; path: string; precondition: Precondition }
  /** A write the server refuses (e.g. a nested array): the whole commit fails with `error`. */
  | { kind: 'invalid'; path: string; error: MemoryFirestoreError };

/** Runs `prepare`; a refusal the server would make (a coded error) becomes an `invalid` write, failing at commit. */
export function prepareWrite(path: string, prepare: () => WriteOp): WriteOp {
  try {
    return prepare();
  } catch (err) {
    if (err instanceof MemoryFirestoreError) return { kind: 'invalid', path, error: err };
    throw err;
  }
}

/** Validates a precondition argument as the SDK does (one condition at most; `exists` only where allowed). */
export function parsePrecondition(input: unknown, allowExists: boolean): Precondition {
  if (input === undefined) return {};
  if (typeof input !== 'object' || input === null) throw new Error('Value for argument "precondition" is not a valid precondition. Input is not an object.');
  const { exists, lastUpdateTime, ...rest } = input as Record<string, unknown>;
  const unknownKey = Object.keys(rest)[0];
  if (unknownKey !== undefined) throw new Error(`Value for argument "precondition" is not a valid precondition. "${unknownKey}" is not a valid option.`);
  if (exists !== undefined && lastUpdateTime !== undefined) throw new Error('Value for argument "precondition" is not a valid precondition. Input specifies more than one precondition.');
  if (exists !== undefined) {
    if (!allowExists) throw new Error('Value for argument "precondition" is not a valid precondition. "exists" is not an allowed precondition.');
    if (typeof exists !== 'boolean') throw new Error('Value for argument "precondition" is not a valid precondition. "exists" is not a boolean.');
    return { exists };
  }
  if (lastUpdateTime !== undefined) {
    if (!isTimestampLikeValue(lastUpdateTime)) throw new Error('Value for argument "precondition" is not a valid precondition. "lastUpdateTime" is not a Firestore Timestamp.');
    return { lastUpdateTime };
  }
  return {};
}

/** The fields of `update(data)`: each key is a field path (dotted keys reach into maps, as in the SDK). */
export function parseUpdateData(data: unknown, options: EncodeOptions): UpdateField[] {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('Value for argument "dataOrField" is not a valid Firestore document. Input is not a plain JavaScript object.');
  const entries = Object.entries(data).filter(([, v]) => !(v === undefined && options.ignoreUndefinedProperties));
  return checkUpdateFields(entries.map(([key, value]) => [parseFieldPath(key, 'dataOrField'), value] as const), options);
}

/** The fields of `update(field, value, field2, value2, ...)`. */
export function parseUpdatePairs(args: readonly unknown[], options: EncodeOptions): UpdateField[] {
  if (args.length % 2 !== 0) throw new Error('Function "update()" needs to be called with an even number of arguments when fields and values are given.');
  const pairs: (readonly [string[], unknown])[] = [];
  for (let i = 0; i < args.length; i += 2) pairs.push([parseFieldPath(args[i], `field${i / 2}`), args[i + 1]]);
  return checkUpdateFields(pairs, options);
}

function checkUpdateFields(pairs: readonly (readonly [string[], unknown])[], options: EncodeOptions): UpdateField[] {
  if (pairs.length === 0) throw new Error('At least one field must be updated.');
  const keys = pairs.map(([segments]) => segments.join('.'));
  for (const [i, key] of keys.entries()) {
    // One field twice, or a field and one inside it, is ambiguous: the SDK refuses it.
    if (keys.some((other, j) => j !== i && (other === key || other.startsWith(`${key}.`)))) throw new Error(`Value for argument "dataOrField" is not a valid Firestore document. Field "${key}" was specified multiple times.`);
  }
  return pairs.map(([segments, value]) => [segments, encodeValue(value, options, 'dataOrField', segments, false)] as const);
}

/** Encodes `set`/`create` data (see {@link encodeDocument}). */
export function encodeWriteData(data: unknown, options: EncodeOptions): MapValue {
  return encodeDocument(data, options, 'data');
}

/** `map` with `value` at `segments`, copying the maps on the way; missing or non-map parents become maps. */
function setPath(map: MapValue, segments: readonly string[], value: Value): MapValue {
  const [head, ...rest] = segments;
  const out: MapValue = { ...map };
  if (rest.length === 0) {
    setOwn(out as Record<string, unknown>, head!, value);
    return out;
  }
  const child = map[head!];
  setOwn(out as Record<string, unknown>, head!, setPath(isMap(child) ? child : {}, rest, value));
  return out;
}

/**
 * `set(data, { merge: true })`: every leaf of `data` (a scalar, an array, or an empty map) is
 * written at its path; non-empty maps are merged into what is there, level by level.
 */
function mergeInto(base: MapValue, data: MapValue): MapValue {
  let out = base;
  for (const [key, value] of Object.entries(data)) {
    if (isMap(value) && Object.keys(value).length > 0) {
      const current = out[key];
      out = setPath(out, [key], mergeInto(isMap(current) ? current : {}, value));
    } else out = setPath(out, [key], value);
  }
  return out;
}

/** The fields after applying a non-delete write to the current fields (`null`: the document is absent). */
export function applyWrite(op: Extract<WriteOp, { kind: 'create' | 'set' | 'update' }>, current: MapValue | null): MapValue {
  switch (op.kind) {
    case 'create':
      return op.data;
    case 'set':
      return op.merge ? mergeInto(current ?? {}, op.data) : op.data;
    case 'update': {
      // Each field is replaced whole (a map value is not merged into the old map).
      let out = current ?? {};
      for (const [segments, value] of op.fields) out = setPath(out, segments, value);
      return out;
    }
  }
}
