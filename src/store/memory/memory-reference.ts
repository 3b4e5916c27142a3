import { randomBytes } from 'node:crypto';
import { unsupported } from './memory-errors.js';
import type { MemoryFirestore } from './memory-firestore.js';
import { encodeWriteData, parsePrecondition, parseUpdateData, parseUpdatePairs, prepareWrite, type WriteOp } from './memory-mutations.js';
import { MemoryQuery } from './memory-query.js';
import type { MemoryDocumentSnapshot, MemoryWriteResult } from './memory-snapshots.js';

/**
 * Document and collection references of the in-memory database, with the SDK's surface. Each
 * write method is a commit of one write (validated at the call, as the SDK validates before
 * sending; a refusal comes back as the promise's coded error).
 */

/** Checks a slash-separated path as the SDK does: no empty segments, and the parity asked for. */
export function checkPath(path: string, kind: 'document' | 'collection', arg: string): string {
  if (typeof path !== 'string' || path === '') throw new Error(`Value for argument "${arg}" is not a valid resource path. Path must be a non-empty string.`);
  const segments = path.split('/');
  if (segments.some((s) => s === '')) throw new Error(`Value for argument "${arg}" is not a valid resource path. Paths must not contain //.`);
  const wantEven = kind === 'document';
  if ((segments.length % 2 === 0) !== wantEven) {
    throw new Error(`Value for argument "${arg}" must point to a ${kind}, but was "${path}". Your path does not contain an ${wantEven ? 'even' : 'odd'} number of components.`);
  }
  return path;
}

/** A 20-character random document ID, as the SDK's `doc()` makes. */
export function autoId(): string {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(40);
  let id = '';
  for (let i = 0; i < bytes.length && id.length < 20; i++) if (bytes[i]! < 248) id += chars[bytes[i]! % 62]; // (no modulo bias)
  while (id.length < 20) id += chars[randomBytes(1)[0]! % 62];
  return id;
}

/** The options of `set()`. */
export interface SetOptions {
  merge?: boolean;
  mergeFields?: unknown[];
}

/** Builds the write of `set(data, options)` (shared with batches, bulk writers and transactions). */
export function setWrite(firestore: MemoryFirestore, path: string, data: unknown, options?: SetOptions): WriteOp {
  if (options?.mergeFields !== undefined) throw unsupported('set() with mergeFields');
  return prepareWrite(path, () => ({ kind: 'set', path, data: encodeWriteData(data, firestore._encodeOptions), merge: options?.merge === true }));
}

/** Builds the write of `create(data)`. */
export function createWrite(firestore: MemoryFirestore, path: string, data: unknown): WriteOp {
  return prepareWrite(path, () => ({ kind: 'create', path, data: encodeWriteData(data, firestore._encodeOptions) }));
}

/**
 * Builds the write of `update(data, precondition?)` or `update(field, value, ..., precondition?)`.
 * An update without a `lastUpdateTime` requires the document to exist.
 */
export function updateWrite(firestore: MemoryFirestore, path: string, dataOrField: unknown, rest: readonly unknown[]): WriteOp {
  const options = firestore._encodeOptions;
  return prepareWrite(path, () => {
    if (typeof dataOrField === 'string') {
      const args = [dataOrField, ...rest];
      const precondition = args.length % 2 === 1 ? parsePrecondition(args.pop(), false) : {};
      return { kind: 'update', path, fields: parseUpdatePairs(args, options), precondition };
    }
    if (rest.length > 1) throw new Error('Function "update()" takes at most 2 arguments when given an object.');
    return { kind: 'update', path, fields: parseUpdateData(dataOrField, options), precondition: parsePrecondition(rest[0], false) };
  });
}

/** Builds the write of `delete(precondition?)`: `{ exists: true }` or `{ lastUpdateTime }` make it conditional. */
export function deleteWrite(path: string, precondition: unknown): WriteOp {
  return { kind: 'delete', path, precondition: parsePrecondition(precondition, true) };
}

/** A document's place in the database (it may or may not exist). */
export class MemoryDocumentReference {
  constructor(
    readonly firestore: MemoryFirestore,
    /** Slash-separated path, e.g. `tasks/abc`. */
    readonly path: string,
  ) {}

  get id(): string {
    return this.path.slice(this.path.lastIndexOf('/') + 1);
  }

  /** The collection the document is in. */
  get parent(): MemoryCollectionReference {
    return this.firestore.collection(this.path.slice(0, this.path.lastIndexOf('/')));
  }

  /** A subcollection of this document. */
  collection(collectionPath: string): MemoryCollectionReference {
    if (typeof collectionPath !== 'string' || collectionPath === '') throw new Error('Value for argument "collectionPath" is not a valid resource path. Path must be a non-empty string.');
    return this.firestore.collection(`${this.path}/${collectionPath}`);
  }

  /** Reads the document (a snapshot with `exists` false when absent). */
  get(): Promise<MemoryDocumentSnapshot> {
    return this.firestore._read([this]).then((snaps) => snaps[0]!);
  }

  /** Creates the document; fails with ALREADY_EXISTS (code 6) if it exists. */
  create(data: unknown): Promise<MemoryWriteResult> {
    return this.firestore._commitOne(createWrite(this.firestore, this.path, data));
  }

  /** Replaces the document (or, with `{ merge: true }`, deep-merges maps into it); creates it if absent. */
  set(data: unknown, options?: SetOptions): Promise<MemoryWriteResult> {
    return this.firestore._commitOne(setWrite(this.firestore, this.path, data, options));
  }

  /**
   * Replaces the given fields (keys are field paths). Fails with NOT_FOUND (5) when the document
   * is absent; with `{ lastUpdateTime }`, with FAILED_PRECONDITION (9) unless it is at that version.
   */
  update(dataOrField: unknown, ...preconditionOrValues: unknown[]): Promise<MemoryWriteResult> {
    return this.firestore._commitOne(updateWrite(this.firestore, this.path, dataOrField, preconditionOrValues));
  }

  /** Deletes the document (absent: a no-op success, unless a precondition says otherwise). */
  delete(precondition?: { exists?: boolean; lastUpdateTime?: unknown }): Promise<MemoryWriteResult> {
    return this.firestore._commitOne(deleteWrite(this.path, precondition));
  }

  /**
   * Listens to the document: a first snapshot soon after (also when absent), then one per new
   * version. Returns the function that stops it (at once).
   */
  onSnapshot(onNext: (snapshot: MemoryDocumentSnapshot) => void, onError?: (error: Error) => void): () => void {
    return this.firestore._listeners.listenDocument(this, onNext, onError);
  }

  isEqual(other: unknown): boolean {
    return other instanceof MemoryDocumentReference && other.firestore === this.firestore && other.path === this.path;
  }

  listCollections(): never {
    throw unsupported('listCollections()');
  }

  withConverter(): never {
    throw unsupported('withConverter()');
  }
}

/** A collection: a query over all its documents, and the factory of their references. */
export class MemoryCollectionReference extends MemoryQuery {
  constructor(
    firestore: MemoryFirestore,
    /** Slash-separated path, e.g. `tasks` or `tasks/abc/history`. */
    readonly path: string,
  ) {
    super(firestore, { collection: path, filters: [], orders: [] });
  }

  get id(): string {
    return this.path.slice(this.path.lastIndexOf('/') + 1);
  }

  /** The document this is a subcollection of, or null for a root collection. */
  get parent(): MemoryDocumentReference | null {
    const cut = this.path.lastIndexOf('/');
    return cut < 0 ? null : this.firestore.doc(this.path.slice(0, cut));
  }

  /** A document of the collection (a random ID when none is given). */
  doc(documentPath?: string): MemoryDocumentReference {
    if (documentPath === undefined) return this.firestore.doc(`${this.path}/${autoId()}`);
    if (typeof documentPath !== 'string' || documentPath === '') throw new Error('Value for argument "documentPath" is not a valid resource path. Path must be a non-empty string.');
    return this.firestore.doc(`${this.path}/${documentPath}`);
  }

  /** Creates a document with a random ID. */
  async add(data: unknown): Promise<MemoryDocumentReference> {
    const ref = this.doc();
    await ref.create(data);
    return ref;
  }

  /** References to the documents that exist now. */
  listDocuments(): Promise<MemoryDocumentReference[]> {
    try {
      this.firestore._checkOpen();
      return Promise.resolve([...this.firestore._engine.list(this.path)].map((d) => this.firestore.doc(d.path)));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  override isEqual(other: unknown): boolean {
    return other instanceof MemoryCollectionReference && other.firestore === this.firestore && other.path === this.path;
  }
}
