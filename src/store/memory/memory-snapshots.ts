import type { StoredDoc } from './memory-engine.js';
import type { MemoryQuery } from './memory-query.js';
import type { MemoryDocumentReference } from './memory-reference.js';
import type { MemoryTimestamp } from './memory-timestamp.js';
import { copyOut, getField, parseFieldPath, type Value } from './memory-values.js';

/**
 * Read results of the in-memory database, with the SDK's surface: document snapshots, query
 * snapshots with their changes, write results, and count results. A snapshot holds the stored
 * (immutable) version it was taken of, and copies out on every `data()` / `get()`, so what a
 * caller changes in the returned objects never reaches the store or another snapshot.
 */

/** Document fields as a caller sees them. */
export type DocumentFields = Record<string, unknown>;

/** A document as read at `readTime`; `exists` false when it was absent. */
export class MemoryDocumentSnapshot {
  constructor(
    readonly ref: MemoryDocumentReference,
    /** @internal The stored version read (null: absent). */
    readonly _stored: StoredDoc | null,
    readonly readTime: MemoryTimestamp,
  ) {}

  get exists(): boolean {
    return this._stored !== null;
  }

  get id(): string {
    return this.ref.id;
  }

  /** When the document was created (undefined when absent). */
  get createTime(): MemoryTimestamp | undefined {
    return this._stored?.createTime;
  }

  /** The document's version: when it last changed (undefined when absent). */
  get updateTime(): MemoryTimestamp | undefined {
    return this._stored?.updateTime;
  }

  /** A deep copy of the fields (undefined when absent). */
  data(): DocumentFields | undefined {
    return this._stored ? (copyOut(this._stored.data) as DocumentFields) : undefined;
  }

  /** A deep copy of one field (a dotted path reaches into maps); undefined when absent. */
  get(field: string): unknown {
    const value = this._raw(parseFieldPath(field, 'field'));
    return value === undefined ? undefined : copyOut(value);
  }

  /** @internal The stored value of a field, uncopied (for cursors). */
  _raw(segments: readonly string[]): Value | undefined {
    return this._stored ? getField(this._stored.data, segments) : undefined;
  }

  /** Same document, same version, same fields (the SDK's definition). */
  isEqual(other: unknown): boolean {
    return (
      this === other ||
      (other instanceof MemoryDocumentSnapshot &&
        other.ref.isEqual(this.ref) &&
        other._stored?.updateTime.toMicros() === this._stored?.updateTime.toMicros() &&
        other.exists === this.exists)
    );
  }
}

/** A document of a query result: it always exists. */
export class MemoryQueryDocumentSnapshot extends MemoryDocumentSnapshot {
  constructor(ref: MemoryDocumentReference, stored: StoredDoc, readTime: MemoryTimestamp) {
    super(ref, stored, readTime);
  }

  override get createTime(): MemoryTimestamp {
    return this._stored!.createTime;
  }

  override get updateTime(): MemoryTimestamp {
    return this._stored!.updateTime;
  }

  override data(): DocumentFields {
    return copyOut(this._stored!.data) as DocumentFields;
  }
}

/** How a document's place in a query result changed between two snapshots. */
export type DocumentChangeType = 'added' | 'removed' | 'modified';

/** One change of a query result, with the SDK's index semantics (see {@link MemoryQuerySnapshot.docChanges}). */
export class MemoryDocumentChange {
  constructor(
    readonly type: DocumentChangeType,
    readonly doc: MemoryQueryDocumentSnapshot,
    /** Index in the result before this change (-1 for `added`), after the changes listed before it. */
    readonly oldIndex: number,
    /** Index after this change (-1 for `removed`). */
    readonly newIndex: number,
  ) {}

  isEqual(other: unknown): boolean {
    return this === other || (other instanceof MemoryDocumentChange && other.type === this.type && other.oldIndex === this.oldIndex && other.newIndex === this.newIndex && other.doc.isEqual(this.doc));
  }
}

/** A query result. */
export class MemoryQuerySnapshot {
  constructor(
    readonly query: MemoryQuery,
    readonly docs: MemoryQueryDocumentSnapshot[],
    readonly readTime: MemoryTimestamp,
    private readonly changes: MemoryDocumentChange[],
  ) {}

  get size(): number {
    return this.docs.length;
  }

  get empty(): boolean {
    return this.docs.length === 0;
  }

  /**
   * What changed since the previous snapshot of the same listener (for a `get()`, or a
   * listener's first snapshot: every document, `added`). Removals first, then additions,
   * then modifications, each in query order, with indexes that apply one after the other.
   */
  docChanges(): MemoryDocumentChange[] {
    return [...this.changes];
  }

  forEach(callback: (doc: MemoryQueryDocumentSnapshot) => void, thisArg?: unknown): void {
    for (const doc of this.docs) callback.call(thisArg, doc);
  }

  isEqual(other: unknown): boolean {
    return this === other || (other instanceof MemoryQuerySnapshot && other.size === this.size && other.docs.every((d, i) => d.isEqual(this.docs[i])));
  }
}

/** A write's result: when it was applied (its document's new version). */
export class MemoryWriteResult {
  constructor(readonly writeTime: MemoryTimestamp) {}

  isEqual(other: unknown): boolean {
    return this === other || (other instanceof MemoryWriteResult && other.writeTime.isEqual(this.writeTime));
  }
}

/** The result of `query.count().get()`. */
export class MemoryAggregateQuerySnapshot {
  constructor(
    readonly query: MemoryQuery,
    readonly readTime: MemoryTimestamp,
    private readonly count: number,
  ) {}

  data(): { count: number } {
    return { count: this.count };
  }
}
