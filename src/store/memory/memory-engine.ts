import { CODE, MemoryFirestoreError, resourceName } from './memory-errors.js';
import { applyWrite, type Precondition, type WriteOp } from './memory-mutations.js';
import { MemoryClock, type MemoryTimestamp } from './memory-timestamp.js';
import { documentSize, MAX_DOCUMENT_BYTES, valuesEqual, type MapValue } from './memory-values.js';

/**
 * The storage of the in-memory database: documents by collection, and atomic commits with
 * Firestore's preconditions and versions. Everything above it (references, queries, batches,
 * bulk writers, transactions, listeners) is a way of calling {@link MemoryEngine.commit} or of
 * reading what it stored.
 *
 * One commit is applied synchronously, in one call: checked in full first, then applied all at
 * once, so no reader ever sees half of it, and a refused commit changes nothing. All its
 * writes share one commit time, which becomes the `updateTime` of every document it changes;
 * commit times strictly increase. A write that leaves a document's fields exactly as they were
 * does not change its version (Firestore's rule: its write time is the old `updateTime`), and
 * is not a change that listeners hear of.
 */

/** A stored document version. Never mutated: a write stores a new one. */
export interface StoredDoc {
  readonly path: string;
  readonly id: string;
  /** Path of its collection. */
  readonly collection: string;
  readonly data: MapValue;
  readonly createTime: MemoryTimestamp;
  readonly updateTime: MemoryTimestamp;
}

/** A document a commit changed: its version before and after (`null`: absent). */
export interface DocChange {
  readonly path: string;
  readonly collection: string;
  readonly before: StoredDoc | null;
  readonly after: StoredDoc | null;
}

/** Told (synchronously, inside the commit) of every change to what it watches. Must not call back into user code. */
export interface CommitWatcher {
  onCommit(change: DocChange): void;
}

/** Splits a document path into its collection's path and its ID. */
export function splitDocPath(path: string): { collection: string; id: string } {
  const cut = path.lastIndexOf('/');
  return { collection: path.slice(0, cut), id: path.slice(cut + 1) };
}

/** The staged state of one document inside a commit. */
interface Staged {
  /** Fields after the writes so far (`null`: absent). */
  data: MapValue | null;
  /** The version a precondition compares with: the stored one while no write of this commit created it. */
  version: MemoryTimestamp | null;
}

/** The documents of one database, and the commit that changes them (see the module comment). */
export class MemoryEngine {
  private readonly collections = new Map<string, Map<string, StoredDoc>>();
  private readonly watchers = new Map<string, Set<CommitWatcher>>();
  readonly clock = new MemoryClock();

  /** The stored document at `path`, or null. */
  read(path: string): StoredDoc | null {
    const { collection, id } = splitDocPath(path);
    return this.collections.get(collection)?.get(id) ?? null;
  }

  /** The documents of a collection (a live view: copy it before writing). */
  list(collection: string): Iterable<StoredDoc> {
    return this.collections.get(collection)?.values() ?? [];
  }

  /** Number of documents in a collection. */
  size(collection: string): number {
    return this.collections.get(collection)?.size ?? 0;
  }

  /**
   * Watches a document (`key` = its path) or a collection (`key` = `collection:` + its path).
   * Returns the function that stops it.
   */
  watch(key: string, watcher: CommitWatcher): () => void {
    let set = this.watchers.get(key);
    if (!set) this.watchers.set(key, (set = new Set()));
    set.add(watcher);
    return () => {
      set.delete(watcher);
      if (set.size === 0 && this.watchers.get(key) === set) this.watchers.delete(key);
    };
  }

  /**
   * Applies `writes` atomically, in order (several writes to one document apply one after the
   * other, as in Firestore). Throws a coded {@link MemoryFirestoreError} — and applies
   * nothing — when a precondition fails or the server would refuse a write; `verify` runs
   * first (a transaction's check that what it read is unchanged). Returns each write's time.
   */
  commit(writes: readonly WriteOp[], verify?: () => void): MemoryTimestamp[] {
    for (const w of writes) if (w.kind === 'invalid') throw w.error;
    checkSequences(writes);
    verify?.();
    const staged = new Map<string, Staged>();
    const stage = (path: string): Staged => {
      let s = staged.get(path);
      if (!s) {
        const stored = this.read(path);
        staged.set(path, (s = { data: stored?.data ?? null, version: stored?.updateTime ?? null }));
      }
      return s;
    };
    for (const w of writes) {
      if (w.kind === 'invalid') continue;
      const s = stage(w.path);
      if (w.kind === 'create') {
        if (s.data !== null) throw new MemoryFirestoreError(CODE.ALREADY_EXISTS, `Document already exists: ${resourceName(w.path)}`);
      } else if (w.kind === 'update' || w.kind === 'delete') {
        checkPrecondition(w.path, w.precondition, s, w.kind === 'update');
      }
      if (w.kind === 'delete') s.data = null;
      else {
        const wasAbsent = s.data === null;
        s.data = applyWrite(w, s.data);
        if (wasAbsent) s.version = null; // created by this commit: no earlier version to match
      }
    }
    for (const [path, s] of staged) {
      if (s.data === null) continue;
      const size = documentSize(path, s.data);
      if (size > MAX_DOCUMENT_BYTES) {
        throw new MemoryFirestoreError(CODE.INVALID_ARGUMENT, `Document "${resourceName(path)}" cannot be written because its size (${size.toLocaleString('en-US')} bytes) exceeds the maximum allowed size of 1,048,576 bytes.`);
      }
    }
    // Checked in full: apply.
    const commitTime = this.clock.next();
    const versions = new Map<string, MemoryTimestamp>();
    const changes: DocChange[] = [];
    for (const [path, s] of staged) {
      const before = this.read(path);
      const { collection, id } = splitDocPath(path);
      if (s.data === null) {
        versions.set(path, commitTime);
        if (before) {
          this.collections.get(collection)!.delete(id);
          changes.push({ path, collection, before, after: null });
        }
        continue;
      }
      if (before && valuesEqual(before.data, s.data)) {
        versions.set(path, before.updateTime); // a no-op: the version stays
        continue;
      }
      const after: StoredDoc = { path, id, collection, data: s.data, createTime: before?.createTime ?? commitTime, updateTime: commitTime };
      let docs = this.collections.get(collection);
      if (!docs) this.collections.set(collection, (docs = new Map()));
      docs.set(id, after);
      versions.set(path, commitTime);
      changes.push({ path, collection, before, after });
    }
    for (const change of changes) {
      for (const key of [change.path, `collection:${change.collection}`]) {
        for (const watcher of this.watchers.get(key) ?? []) watcher.onCommit(change);
      }
    }
    return writes.map((w) => versions.get(w.path) ?? commitTime);
  }
}

/** Checks an update's or delete's precondition against the staged document; throws Firestore's refusal. */
function checkPrecondition(path: string, precondition: Precondition, s: Staged, isUpdate: boolean): void {
  const { lastUpdateTime } = precondition;
  if (lastUpdateTime !== undefined) {
    // A missing document has version 0 (so this is FAILED_PRECONDITION too, as the emulator answers).
    const matches = s.data !== null && s.version !== null && s.version.isEqual(lastUpdateTime);
    if (!matches) {
      const stored = s.data === null ? 0 : (s.version?.toMicros() ?? 0);
      const wanted = lastUpdateTime.seconds * 1_000_000 + Math.floor(lastUpdateTime.nanoseconds / 1000);
      throw new MemoryFirestoreError(CODE.FAILED_PRECONDITION, `the stored version (${stored}) does not match the required base version (${wanted})`);
    }
    return;
  }
  // An update requires the document to exist unless told otherwise; a delete only if asked.
  const exists = precondition.exists ?? (isUpdate ? true : undefined);
  if (exists === true && s.data === null) throw new MemoryFirestoreError(CODE.NOT_FOUND, `No document to update: ${resourceName(path)}`);
  if (exists === false && s.data !== null) throw new MemoryFirestoreError(CODE.ALREADY_EXISTS, `Document already exists: ${resourceName(path)}`);
}

/** How Firestore names a write kind in its "same request" refusals. */
const VERBS: Record<string, string> = { create: 'insert', set: 'upsert', update: 'update', delete: 'delete' };

/**
 * Several writes to one document in one commit apply in order, except two sequences Firestore
 * refuses outright (INVALID_ARGUMENT, before any precondition is looked at): a create after
 * another create, set or update of the document, and an update after its delete.
 */
function checkSequences(writes: readonly WriteOp[]): void {
  const previous = new Map<string, WriteOp['kind']>();
  for (const w of writes) {
    const before = previous.get(w.path);
    previous.set(w.path, w.kind);
    if (before === undefined) continue;
    if ((w.kind === 'create' && before !== 'delete') || (w.kind === 'update' && before === 'delete')) {
      throw new MemoryFirestoreError(CODE.INVALID_ARGUMENT, `Cannot ${VERBS[before]} then ${VERBS[w.kind]} an entity in the same request.`);
    }
  }
}
