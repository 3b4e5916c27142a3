import type { MemoryEngine, StoredDoc } from './memory-engine.js';
import { CODE, MemoryFirestoreError } from './memory-errors.js';
import { compareStrings, compareValues, getField, NameValue, sameType, type Value } from './memory-values.js';

/**
 * Query execution of the in-memory database, with Firestore's semantics:
 * - filters compare values of their own type only (`<= 10` never matches a string), `in`
 *   matches any value of a list (never `null`, as the emulator answers), `array-contains` an
 *   element of an array; a missing field matches nothing;
 * - results are ordered by the `orderBy` fields, then by each inequality field not ordered yet
 *   (by field path), then by document name, these implicit orders in the direction of the last
 *   explicit one; a document missing an ordered field is not in the result;
 * - cursors compare a prefix of that order; `offset` and `limit` apply last.
 * A query scans its collection's documents once (a Map); with a small limit it keeps only the
 * best few while scanning instead of sorting all matches.
 */

/** The filter operators the backend supports. */
export type WhereOp = '<' | '<=' | '==' | '>' | '>=' | 'array-contains' | 'in';

/** A field path as segments, or `null` for the document name (`__name__`). */
export type FieldRef = readonly string[] | null;

/** One `where()` filter. */
export interface Filter {
  field: FieldRef;
  op: WhereOp;
  /** The operand (a list for `in`), or the error the server answers this filter with. */
  value: Value | Value[] | MemoryFirestoreError;
}

/** One `orderBy()` clause. */
export interface Order {
  field: FieldRef;
  direction: 'asc' | 'desc';
}

/** A cursor: values of the first orders; `before` puts the boundary before equal documents (startAt, endBefore). */
export interface Cursor {
  values: Value[];
  before: boolean;
}

/** What a query asks for, as data (queries are immutable; builders copy it). */
export interface QuerySpec {
  /** Path of the collection queried. */
  collection: string;
  filters: Filter[];
  /** Explicit orders (a snapshot cursor makes the implicit ones explicit, as the SDK does). */
  orders: Order[];
  startAt?: Cursor;
  endAt?: Cursor;
  limit?: number;
  offset?: number;
}

/** A matching document with its values of the effective orders. */
export interface QueryRow {
  doc: StoredDoc;
  key: Value[];
}

const INEQUALITIES: ReadonlySet<WhereOp> = new Set(['<', '<=', '>', '>=']);
/** Firestore's limit on disjunctions (`in` values, multiplied over the `in` filters). */
const MAX_DISJUNCTIONS = 30;
/** Up to this limit, a query keeps the best rows while scanning rather than sorting every match. */
const TOP_K_MAX = 128;

const fieldKey = (f: FieldRef): string => (f === null ? '__name__' : f.join('.'));

/** The orders results are sorted by: explicit, then unordered inequality fields, then `__name__`. */
export function effectiveOrders(spec: QuerySpec): Order[] {
  const orders = [...spec.orders];
  const seen = new Set(orders.map((o) => fieldKey(o.field)));
  const direction = orders[orders.length - 1]?.direction ?? 'asc';
  const inequalities = spec.filters.filter((f) => INEQUALITIES.has(f.op) && f.field !== null).map((f) => f.field!);
  inequalities.sort((a, b) => compareStrings(fieldKey(a), fieldKey(b)));
  for (const field of inequalities) {
    if (seen.has(fieldKey(field))) continue;
    seen.add(fieldKey(field));
    orders.push({ field, direction });
  }
  if (!seen.has('__name__')) orders.push({ field: null, direction });
  return orders;
}

/** What the server refuses about a query (a bad `in`, too many disjunctions); throws INVALID_ARGUMENT. */
export function validateQuery(spec: QuerySpec): void {
  let disjunctions = 1;
  for (const f of spec.filters) {
    if (f.value instanceof MemoryFirestoreError) throw f.value;
    if (f.op !== 'in') continue;
    const n = (f.value as Value[]).length;
    if (n > MAX_DISJUNCTIONS) throw new MemoryFirestoreError(CODE.INVALID_ARGUMENT, `'IN' supports up to ${MAX_DISJUNCTIONS} comparison values.`);
    disjunctions *= n;
  }
  if (disjunctions > MAX_DISJUNCTIONS) {
    throw new MemoryFirestoreError(CODE.INVALID_ARGUMENT, `Too many disjunctions after normalization. Result had ${disjunctions} disjunctions which is more than the maximum of ${MAX_DISJUNCTIONS}`);
  }
}

function fieldValue(doc: StoredDoc, field: FieldRef): Value | undefined {
  return field === null ? new NameValue(doc.path) : getField(doc.data, field);
}

const equal = (a: Value, b: Value): boolean => sameType(a, b) && compareValues(a, b) === 0;
const isNaNValue = (v: Value): boolean => typeof v === 'number' && Number.isNaN(v);

function matchesFilter(doc: StoredDoc, f: Filter): boolean {
  const v = fieldValue(doc, f.field);
  if (v === undefined) return false;
  const operand = f.value as Value;
  switch (f.op) {
    case '==':
      return equal(v, operand);
    case 'in':
      return (operand as Value[]).some((item) => item !== null && equal(v, item));
    case 'array-contains':
      return Array.isArray(v) && v.some((item) => equal(item, operand));
    default: {
      // Range filters match values of the operand's type only, and never NaN.
      if (!sameType(v, operand) || isNaNValue(v) || isNaNValue(operand)) return false;
      const c = compareValues(v, operand);
      return f.op === '<' ? c < 0 : f.op === '<=' ? c <= 0 : f.op === '>' ? c > 0 : c >= 0;
    }
  }
}

/** Whether a document passes every filter and has every ordered field (cursors and limit aside). */
export function matchesQuery(spec: QuerySpec, doc: StoredDoc): boolean {
  if (doc.collection !== spec.collection) return false;
  for (const f of spec.filters) if (!matchesFilter(doc, f)) return false;
  for (const o of spec.orders) if (o.field !== null && getField(doc.data, o.field) === undefined) return false;
  return true;
}

/** Compares two rows by the effective orders. */
export function rowComparator(orders: readonly Order[]): (a: QueryRow, b: QueryRow) => number {
  return (a, b) => {
    for (let i = 0; i < orders.length; i++) {
      const c = compareValues(a.key[i]!, b.key[i]!);
      if (c !== 0) return orders[i]!.direction === 'desc' ? -c : c;
    }
    return 0;
  };
}

/** Where a row lies relative to a cursor: <0 before it, 0 on it (its prefix equal), >0 after it. */
function relativeToCursor(key: readonly Value[], cursor: Cursor, orders: readonly Order[]): number {
  for (let i = 0; i < cursor.values.length; i++) {
    const c = compareValues(key[i]!, cursor.values[i]!);
    if (c !== 0) return orders[i]!.direction === 'desc' ? -c : c;
  }
  return 0;
}

/** The row of a document if it is in the query's result range (filters, ordered fields, cursors), else null. */
export function rowOf(spec: QuerySpec, orders: readonly Order[], doc: StoredDoc): QueryRow | null {
  if (!matchesQuery(spec, doc)) return null;
  const key: Value[] = [];
  for (const o of orders) {
    const v = fieldValue(doc, o.field);
    if (v === undefined) return null; // an implicit (inequality) order's field: absent docs failed the filter already
    key.push(v);
  }
  if (spec.startAt) {
    const c = relativeToCursor(key, spec.startAt, orders);
    if (spec.startAt.before ? c < 0 : c <= 0) return null;
  }
  if (spec.endAt) {
    const c = relativeToCursor(key, spec.endAt, orders);
    if (spec.endAt.before ? c >= 0 : c > 0) return null;
  }
  return { doc, key };
}

/** Inserts `row` into the sorted `rows` (binary search). */
export function insertSorted(rows: QueryRow[], row: QueryRow, compare: (a: QueryRow, b: QueryRow) => number): number {
  let lo = 0;
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(rows[mid]!, row) <= 0) lo = mid + 1;
    else hi = mid;
  }
  rows.splice(lo, 0, row);
  return lo;
}

/** Runs a query against the stored documents: its result rows, in order. Throws the server's refusal of a bad query. */
export function executeQuery(spec: QuerySpec, engine: MemoryEngine): QueryRow[] {
  validateQuery(spec);
  const orders = effectiveOrders(spec);
  const compare = rowComparator(orders);
  const offset = Math.max(0, spec.offset ?? 0);
  // limit 0 means none: the SDK sends no limit then.
  const limit = spec.limit !== undefined && spec.limit > 0 ? spec.limit : Infinity;
  const keep = offset + limit;
  let rows: QueryRow[] = [];
  if (keep <= TOP_K_MAX) {
    for (const doc of engine.list(spec.collection)) {
      const row = rowOf(spec, orders, doc);
      if (row === null) continue;
      if (rows.length < keep) insertSorted(rows, row, compare);
      else if (compare(row, rows[rows.length - 1]!) < 0) {
        insertSorted(rows, row, compare);
        rows.pop();
      }
    }
  } else {
    for (const doc of engine.list(spec.collection)) {
      const row = rowOf(spec, orders, doc);
      if (row !== null) rows.push(row);
    }
    rows.sort(compare);
  }
  rows = rows.slice(offset, offset + limit);
  return rows;
}
