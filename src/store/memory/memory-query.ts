import { CODE, MemoryFirestoreError, unsupported } from './memory-errors.js';
import type { MemoryFirestore } from './memory-firestore.js';
import { effectiveOrders, executeQuery, type Cursor, type Filter, type Order, type QuerySpec, type WhereOp } from './memory-query-engine.js';
import { MemoryAggregateQuerySnapshot, MemoryDocumentChange, MemoryDocumentSnapshot, MemoryQueryDocumentSnapshot, MemoryQuerySnapshot } from './memory-snapshots.js';
import { encodeValue, NameValue, parseFieldPath, type Value } from './memory-values.js';

/**
 * Queries of the in-memory database, with the SDK's builder surface (`where`, `orderBy`,
 * `limit`, `offset`, cursors) and the SDK's client-side checks (thrown at the call). What the
 * server checks (the `in` limits) fails the `get()` or the listener instead, with
 * INVALID_ARGUMENT. Execution is in {@link executeQuery}.
 */

const NAME = '__name__';
const OPERATORS: readonly string[] = ['<', '<=', '==', '>', '>=', 'array-contains', 'in'];
const LEFT_OUT: readonly string[] = ['!=', 'not-in', 'array-contains-any'];

/** A query on one collection. Immutable: every builder call returns a new query. */
export class MemoryQuery {
  constructor(
    readonly firestore: MemoryFirestore,
    /** @internal What the query asks for. */
    readonly _spec: QuerySpec,
  ) {}

  /** Filters on a field (a dotted path reaches into maps; `__name__` is the document ID). */
  where(fieldPath: string, opStr: string, value: unknown): MemoryQuery {
    if (typeof fieldPath !== 'string') throw unsupported('A where() filter that is not (field, operator, value)');
    if (this._spec.startAt || this._spec.endAt) throw new Error('Cannot specify a where() filter after calling startAt(), startAfter(), endBefore() or endAt().');
    const op = opStr === '=' ? '==' : opStr;
    if (LEFT_OUT.includes(op)) throw unsupported(`The "${op}" operator`);
    if (!OPERATORS.includes(op)) throw new Error(`Value for argument "opStr" is invalid. Acceptable values are: <, <=, ==, !=, >, >=, array-contains, in, not-in, array-contains-any`);
    if (typeof value === 'number' && Number.isNaN(value) && op !== '==') throw new Error("Invalid query. You can only perform '==' and '!=' comparisons on NaN.");
    if (value === null && op !== '==') throw new Error("Invalid query. You can only perform '==' and '!=' comparisons on Null.");
    const field = fieldPath === NAME ? null : parseFieldPath(fieldPath);
    const filter: Filter = { field, op: op as WhereOp, value: this.filterValue(field, op as WhereOp, value) };
    return this.with({ filters: [...this._spec.filters, filter] });
  }

  private filterValue(field: readonly string[] | null, op: WhereOp, value: unknown): Value | Value[] | MemoryFirestoreError {
    const encode = (v: unknown): Value => (field === null ? this.nameValue(v) : encodeValue(v, this.firestore._encodeOptions, 'value', [], false));
    if (op !== 'in') return encode(value);
    // The server refuses a bad `in` list; the query fails when it runs.
    if (!Array.isArray(value) || value.length === 0) return new MemoryFirestoreError(CODE.INVALID_ARGUMENT, "'IN' requires an non-empty ArrayValue.");
    return value.map(encode);
  }

  /** Orders by a field (`__name__`: by document ID); documents without the field are left out of the result. */
  orderBy(fieldPath: string, directionStr: 'asc' | 'desc' = 'asc'): MemoryQuery {
    if (this._spec.startAt || this._spec.endAt) throw new Error('Cannot specify an orderBy() constraint after calling startAt(), startAfter(), endBefore() or endAt().');
    if (directionStr !== 'asc' && directionStr !== 'desc') throw new Error('Value for argument "directionStr" is invalid. Acceptable values are: asc, desc');
    const order: Order = { field: fieldPath === NAME ? null : parseFieldPath(fieldPath), direction: directionStr };
    return this.with({ orders: [...this._spec.orders, order] });
  }

  /** At most `limit` documents (0: no limit, as the SDK sends none). */
  limit(limit: number): MemoryQuery {
    if (!Number.isInteger(limit)) throw new Error('Value for argument "limit" is not a valid integer.');
    return this.with({ limit });
  }

  /** Skips the first `offset` documents. */
  offset(offset: number): MemoryQuery {
    if (!Number.isInteger(offset)) throw new Error('Value for argument "offset" is not a valid integer.');
    return this.with({ offset });
  }

  startAt(...fieldValuesOrDocumentSnapshot: unknown[]): MemoryQuery {
    return this.cursor('startAt', fieldValuesOrDocumentSnapshot, true);
  }

  /**
   * Starts after a document (its values of every ordered field, the implicit ones included, as
   * the SDK builds them) or after values of the `orderBy` fields (a `__name__` one: a document ID).
   */
  startAfter(...fieldValuesOrDocumentSnapshot: unknown[]): MemoryQuery {
    return this.cursor('startAt', fieldValuesOrDocumentSnapshot, false);
  }

  endBefore(...fieldValuesOrDocumentSnapshot: unknown[]): MemoryQuery {
    return this.cursor('endAt', fieldValuesOrDocumentSnapshot, true);
  }

  endAt(...fieldValuesOrDocumentSnapshot: unknown[]): MemoryQuery {
    return this.cursor('endAt', fieldValuesOrDocumentSnapshot, false);
  }

  private cursor(which: 'startAt' | 'endAt', args: unknown[], before: boolean): MemoryQuery {
    if (args.length === 0) throw new Error(`Function "Query.${which}()" requires at least 1 argument.`);
    const snapshot = args.length === 1 && args[0] instanceof MemoryDocumentSnapshot ? args[0] : null;
    // A snapshot cursor makes the implicit orders explicit (the SDK's createImplicitOrderBy).
    const orders = snapshot ? effectiveOrders(this._spec) : this._spec.orders;
    let values: Value[];
    if (snapshot) {
      values = orders.map((o) => {
        if (o.field === null) return new NameValue(snapshot.ref.path);
        const v = snapshot._raw(o.field);
        if (v === undefined) {
          throw new Error(`Field "${o.field.join('.')}" is missing in the provided DocumentSnapshot. Please provide a document that contains values for all specified orderBy() and where() constraints.`);
        }
        return v;
      });
    } else {
      if (args.length > orders.length) throw new Error('Too many cursor values specified. The specified values must match the orderBy() constraints of the query.');
      values = args.map((v, i) => (orders[i]!.field === null ? this.nameValue(v) : encodeValue(v, this.firestore._encodeOptions, 'value', [], false)));
    }
    const cursor: Cursor = { values, before };
    return this.with(which === 'startAt' ? { orders, startAt: cursor } : { orders, endAt: cursor });
  }

  /** A document-ID value: a plain ID in this collection, or a reference to a document of it. */
  private nameValue(value: unknown): NameValue {
    const collection = this._spec.collection;
    if (typeof value === 'string') {
      if (value.includes('/')) throw new Error(`When querying a collection and ordering by FieldPath.documentId(), the corresponding value must be a plain document ID, but '${value}' contains a slash.`);
      return new NameValue(`${collection}/${value}`);
    }
    if (this.firestore._isReference(value)) {
      if (value.parent.path !== collection) throw new Error(`"${value.path}" is not part of the query result set and cannot be used as a query boundary.`);
      return new NameValue(value.path);
    }
    throw new Error('The corresponding value for FieldPath.documentId() must be a string or a DocumentReference.');
  }

  private with(change: Partial<QuerySpec>): MemoryQuery {
    return new MemoryQuery(this.firestore, { ...this._spec, ...change });
  }

  /** Runs the query: the matching documents in order. */
  get(): Promise<MemoryQuerySnapshot> {
    try {
      this.firestore._checkOpen();
      const readTime = this.firestore._engine.clock.now();
      const docs = executeQuery(this._spec, this.firestore._engine).map((r) => new MemoryQueryDocumentSnapshot(this.firestore.doc(r.doc.path), r.doc, readTime));
      return Promise.resolve(new MemoryQuerySnapshot(this, docs, readTime, docs.map((d, i) => new MemoryDocumentChange('added', d, -1, i))));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** A count of what the query matches (limit, offset and cursors applied, as Firestore's aggregation). */
  count(): MemoryAggregateQuery {
    return new MemoryAggregateQuery(this);
  }

  /**
   * Listens to the result: a first snapshot soon after (even when empty), then one after each
   * commit that changes it, with `docChanges()` against the previous one. Returns the
   * function that stops it (at once: nothing is delivered after it returns).
   */
  onSnapshot(onNext: (snapshot: MemoryQuerySnapshot) => void, onError?: (error: Error) => void): () => void {
    return this.firestore._listeners.listenQuery(this, onNext, onError);
  }

  /** Whether `other` is the same query on the same database. */
  isEqual(other: unknown): boolean {
    return other instanceof MemoryQuery && other.firestore === this.firestore && JSON.stringify(other._spec) === JSON.stringify(this._spec);
  }

  limitToLast(): never {
    throw unsupported('limitToLast()');
  }

  select(): never {
    throw unsupported('select()');
  }

  withConverter(): never {
    throw unsupported('withConverter()');
  }

  stream(): never {
    throw unsupported('stream()');
  }
}

/** `query.count()`: the number of documents the query returns. */
export class MemoryAggregateQuery {
  constructor(readonly query: MemoryQuery) {}

  get(): Promise<MemoryAggregateQuerySnapshot> {
    const { firestore } = this.query;
    try {
      firestore._checkOpen();
      return Promise.resolve(new MemoryAggregateQuerySnapshot(this.query, firestore._engine.clock.now(), executeQuery(this.query._spec, firestore._engine).length));
    } catch (err) {
      return Promise.reject(err);
    }
  }
}
