/**
 * Counts of the Firestore operations the library causes, as Firestore bills them: a query
 * costs one read per returned document and at least one; a COUNT one read per 1000 index
 * entries; a listener one read per document that enters or changes in its result set.
 */

/** A snapshot of the counters (see `OnceTaskManager.stats()`). */
export interface OperationStats {
  /** Billed document reads, listener deliveries included. */
  reads: number;
  /** Of `reads`: those delivered to listeners. */
  listenerReads: number;
  /** Document writes (creates and updates, single or in batches). */
  writes: number;
  /** Document deletes. */
  deletes: number;
  /** Queries run (each also counted in `reads`). */
  queries: number;
  /** Conditional writes Firestore refused (another worker changed the document first); not billed. */
  refusedWrites: number;
}

/** A billed operation type, as reported to telemetry. */
export type OperationType = 'read' | 'write' | 'delete' | 'listener_read';

/** Mutable counters owned by the store. */
export class OperationCounter {
  private readonly counts: OperationStats = { reads: 0, listenerReads: 0, writes: 0, deletes: 0, queries: 0, refusedWrites: 0 };
  /** Told of every billed operation (the manager's telemetry). */
  observer: ((type: OperationType, count: number) => void) | null = null;

  /** A query that returned `docs` documents. */
  query(docs: number): void {
    this.counts.queries += 1;
    this.counts.reads += Math.max(1, docs);
    this.observer?.('read', Math.max(1, docs));
  }

  read(docs = 1): void {
    this.counts.reads += docs;
    this.observer?.('read', docs);
  }

  listener(docs: number): void {
    this.counts.reads += docs;
    this.counts.listenerReads += docs;
    this.observer?.('listener_read', docs);
  }

  write(docs = 1): void {
    this.counts.writes += docs;
    this.observer?.('write', docs);
  }

  delete(): void {
    this.counts.deletes += 1;
    this.observer?.('delete', 1);
  }

  refused(): void {
    this.counts.refusedWrites += 1;
  }

  snapshot(): OperationStats {
    return { ...this.counts };
  }
}
