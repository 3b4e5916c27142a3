import type { CommitWatcher, DocChange, StoredDoc } from './memory-engine.js';
import { TERMINATED_MESSAGE } from './memory-errors.js';
import type { MemoryFirestore } from './memory-firestore.js';
import { effectiveOrders, executeQuery, insertSorted, matchesQuery, rowComparator, rowOf, type Order, type QueryRow } from './memory-query-engine.js';
import type { MemoryQuery } from './memory-query.js';
import type { MemoryDocumentReference } from './memory-reference.js';
import { MemoryDocumentChange, MemoryDocumentSnapshot, MemoryQueryDocumentSnapshot, MemoryQuerySnapshot } from './memory-snapshots.js';

/**
 * Snapshot listeners of the in-memory database. As with Firestore, a snapshot arrives
 * asynchronously — never inside the call stack of the write that caused it — and shows the
 * state as of its read time: commits that land in the same turn of the event loop reach a
 * listener as one snapshot (Firestore may likewise skip intermediate states). A listener hears
 * nothing when a commit leaves its result as it was (a no-op write, a change to a document it
 * does not return). Unsubscribing stops delivery at once, even of a snapshot already due.
 */

/** `setImmediate` as it was when this module loaded: snapshots come from the "network", which a test's fake timers do not stop. */
const defer: (fn: () => void) => void = ((immediate) => (fn: () => void) => void immediate(fn))(setImmediate);

/** A listener the registry delivers to. */
interface Listener {
  readonly active: boolean;
  deliver(): void;
}

/** The listeners of one database: their scheduling, and how many are open (`terminate()` refuses while any is). */
export class ListenerRegistry {
  private readonly due = new Set<Listener>();
  private scheduled = false;
  /** Listeners open now. */
  open = 0;

  constructor(private readonly firestore: MemoryFirestore) {}

  /** Listens to one document. */
  listenDocument(ref: MemoryDocumentReference, onNext: (snapshot: MemoryDocumentSnapshot) => void, onError?: (error: Error) => void): () => void {
    checkCallbacks(onNext, onError);
    if (this.firestore._terminated) return this.refuse(onError);
    const listener = new DocumentListener(this, this.firestore, ref, onNext);
    return () => listener.close();
  }

  /** Listens to a query's result. */
  listenQuery(query: MemoryQuery, onNext: (snapshot: MemoryQuerySnapshot) => void, onError?: (error: Error) => void): () => void {
    checkCallbacks(onNext, onError);
    if (this.firestore._terminated) return this.refuse(onError);
    const listener = new QueryListener(this, this.firestore, query, onNext, onError ?? ((err) => console.error(err)));
    return () => listener.close();
  }

  /** A listener on a terminated client: it fails, asynchronously, as the SDK's does. */
  private refuse(onError: ((error: Error) => void) | undefined): () => void {
    let open = true;
    defer(() => {
      if (open) (onError ?? ((err) => console.error(err)))(new Error(TERMINATED_MESSAGE));
    });
    return () => {
      open = false;
    };
  }

  /** Delivers to `listener` at the next turn (once, however often it is asked before then). */
  schedule(listener: Listener): void {
    this.due.add(listener);
    if (this.scheduled) return;
    this.scheduled = true;
    defer(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const due = [...this.due];
    this.due.clear();
    let failure: { err: unknown } | null = null;
    for (const listener of due) {
      if (!listener.active) continue;
      try {
        listener.deliver();
      } catch (err) {
        failure ??= { err }; // a callback threw: the others still get theirs; then it surfaces
      }
    }
    if (failure) throw failure.err;
  }
}

function checkCallbacks(onNext: unknown, onError: unknown): void {
  if (typeof onNext !== 'function') throw new Error('Value for argument "onNext" is not a valid function.');
  if (onError !== undefined && typeof onError !== 'function') throw new Error('Value for argument "onError" is not a valid function.');
}

/** A document listener: delivers when the document's version (or existence) changes. */
class DocumentListener implements Listener, CommitWatcher {
  active = true;
  /** The version last delivered (micros), null for "absent", undefined before the first snapshot. */
  private delivered: number | null | undefined = undefined;
  private readonly unwatch: () => void;

  constructor(
    private readonly registry: ListenerRegistry,
    private readonly firestore: MemoryFirestore,
    private readonly ref: MemoryDocumentReference,
    private readonly onNext: (snapshot: MemoryDocumentSnapshot) => void,
  ) {
    this.unwatch = firestore._engine.watch(ref.path, this);
    registry.open++;
    registry.schedule(this);
  }

  onCommit(): void {
    if (this.active) this.registry.schedule(this);
  }

  deliver(): void {
    const stored = this.firestore._engine.read(this.ref.path);
    const version = stored ? stored.updateTime.toMicros() : null;
    if (this.delivered !== undefined && this.delivered === version) return;
    this.delivered = version;
    this.onNext(new MemoryDocumentSnapshot(this.ref, stored, this.firestore._engine.clock.now()));
  }

  close(): void {
    if (!this.active) return;
    this.active = false;
    this.unwatch();
    this.registry.open--;
  }
}

/** A query listener: re-runs the query after commits that may change its result, and delivers what changed. */
class QueryListener implements Listener, CommitWatcher {
  active = true;
  /** The result last delivered (null before the first snapshot). */
  private rows: QueryRow[] | null = null;
  private paths = new Set<string>();
  private readonly orders: Order[];
  private readonly compare: (a: QueryRow, b: QueryRow) => number;
  private readonly unwatch: () => void;

  constructor(
    private readonly registry: ListenerRegistry,
    private readonly firestore: MemoryFirestore,
    private readonly query: MemoryQuery,
    private readonly onNext: (snapshot: MemoryQuerySnapshot) => void,
    private readonly onError: (error: Error) => void,
  ) {
    this.orders = effectiveOrders(query._spec);
    this.compare = rowComparator(this.orders);
    this.unwatch = firestore._engine.watch(`collection:${query._spec.collection}`, this);
    registry.open++;
    registry.schedule(this);
  }

  /**
   * A change matters if the document was in the result, or could enter it now: it matches, and
   * (when the result is full up to its limit) sorts before the last document of it. So a
   * head listener (`limit(1)`) is not re-run for every write behind the head.
   */
  onCommit(change: DocChange): void {
    if (!this.active || this.rows === null) return; // (the first snapshot is due anyway)
    if (this.paths.has(change.path)) {
      this.registry.schedule(this);
      return;
    }
    if (change.after === null || !matchesQuery(this.query._spec, change.after)) return;
    const { limit, offset } = this.query._spec;
    const last = this.rows[this.rows.length - 1];
    if (last !== undefined && limit !== undefined && limit > 0 && !offset && this.rows.length >= limit) {
      const row = rowOf(this.query._spec, this.orders, change.after);
      if (row === null || this.compare(row, last) > 0) return;
    }
    this.registry.schedule(this);
  }

  deliver(): void {
    let next: QueryRow[];
    try {
      next = executeQuery(this.query._spec, this.firestore._engine);
    } catch (err) {
      // The server refused the query (e.g. too many `in` values): the listener ends with that error.
      this.close();
      this.onError(err as Error);
      return;
    }
    const readTime = this.firestore._engine.clock.now();
    const snapshots = new Map<string, MemoryQueryDocumentSnapshot>();
    const snapshotOf = (doc: StoredDoc): MemoryQueryDocumentSnapshot => {
      let snap = snapshots.get(doc.path);
      if (!snap || snap._stored !== doc) snapshots.set(doc.path, (snap = new MemoryQueryDocumentSnapshot(this.firestore.doc(doc.path), doc, readTime)));
      return snap;
    };
    const docs = next.map((row) => snapshotOf(row.doc));
    const changes = this.rows === null ? docs.map((d, i) => new MemoryDocumentChange('added', d, -1, i)) : diff(this.rows, next, this.compare, (doc) => snapshotOf(doc));
    if (this.rows !== null && changes.length === 0) return;
    this.rows = next;
    this.paths = new Set(next.map((r) => r.doc.path));
    this.onNext(new MemoryQuerySnapshot(this.query, docs, readTime, changes));
  }

  close(): void {
    if (!this.active) return;
    this.active = false;
    this.unwatch();
    this.registry.open--;
  }
}

/**
 * The changes from one result to the next, as the SDK's watch computes them: removals (in the
 * old order), then additions, then modifications (a new version; in the new order), each
 * applied to the running result, which gives its indexes.
 */
function diff(prev: readonly QueryRow[], next: readonly QueryRow[], compare: (a: QueryRow, b: QueryRow) => number, snapshotOf: (doc: StoredDoc) => MemoryQueryDocumentSnapshot): MemoryDocumentChange[] {
  const prevByPath = new Map(prev.map((r) => [r.doc.path, r]));
  const nextPaths = new Set(next.map((r) => r.doc.path));
  const tree = [...prev];
  const indexOf = (path: string): number => tree.findIndex((r) => r.doc.path === path);
  const changes: MemoryDocumentChange[] = [];
  for (const row of prev) {
    if (nextPaths.has(row.doc.path)) continue;
    const oldIndex = indexOf(row.doc.path);
    tree.splice(oldIndex, 1);
    changes.push(new MemoryDocumentChange('removed', snapshotOf(row.doc), oldIndex, -1));
  }
  for (const row of next) {
    if (prevByPath.has(row.doc.path)) continue;
    changes.push(new MemoryDocumentChange('added', snapshotOf(row.doc), -1, insertSorted(tree, row, compare)));
  }
  for (const row of next) {
    const old = prevByPath.get(row.doc.path);
    if (!old || old.doc.updateTime.isEqual(row.doc.updateTime)) continue;
    const oldIndex = indexOf(row.doc.path);
    tree.splice(oldIndex, 1);
    changes.push(new MemoryDocumentChange('modified', snapshotOf(row.doc), oldIndex, insertSorted(tree, row, compare)));
  }
  return changes;
}
