import { randomUUID } from 'node:crypto';
import type { DocumentReference } from '@google-cloud/firestore';
import pLimit from 'p-limit';
import { MalformedTaskError } from '../errors.js';
import type { StoredTask } from '../task-document.js';
import { GRPC, grpcCode, isAmbiguous, monotonicNow, withDeadline } from './calls.js';
import { publicTimeout, type ConditionalWriteResult, type TaskFields } from './conditional-writer.js';
import type { OperationCounter } from './op-stats.js';
import type { TaskStore } from './task-store.js';

/**
 * The task collection as administration writes it: read-decide-write changes of one task
 * (reset, retryNow, cancel, schedule upserts, pauses and resumes, resharding) and deletes. The
 * worker path's writes stay in {@link TaskStore}; these go through its conditional writes and
 * call deadlines, so the store remains the one place that talks to Firestore.
 */

/** What the admin writes use of their store. */
export interface AdminWriteAccess {
  readonly ops: OperationCounter;
  readonly callTimeoutMs: number;
  docId(id: string): string;
  readDoc: TaskStore['readDoc'];
  updateIfUnchanged: TaskStore['updateIfUnchanged'];
  call<T>(promise: Promise<T>, what: string): Promise<T>;
}

/** What {@link AdminWrites.mutate} did. */
export type MutateResult = { outcome: 'updated'; task: StoredTask } | { outcome: 'unchanged'; task: StoredTask } | { outcome: 'missing' };

/** Field set by each admin change (`mutate`): the witness of an ambiguous admin write. */
const MUTATION_ID = 'mutationId';

export class AdminWrites {
  constructor(
    private readonly store: AdminWriteAccess,
    /** The reference of a task document. */
    private readonly ref: (docId: string) => DocumentReference,
  ) {}

  /**
   * Optimistic read-decide-write loop for admin operations. `decide` sees the current task and
   * returns the fields to write, or `null` to leave it. Each write carries its own mutation ID,
   * so a write whose answer was lost is still recognised as applied.
   */
  async mutate(id: string, decide: (task: StoredTask) => TaskFields | null): Promise<MutateResult> {
    const docId = this.store.docId(id);
    for (let attempt = 0; ; attempt++) {
      const current = await this.store.readDoc(docId);
      if (!current) return { outcome: 'missing' };
      if (!current.decoded.ok) throw new MalformedTaskError(docId, current.decoded.reason);
      const fields = decide(current.decoded.task);
      if (fields === null) return { outcome: 'unchanged', task: current.decoded.task };
      const mutationId = randomUUID();
      let written: ConditionalWriteResult;
      try {
        written = await this.store.updateIfUnchanged(docId, { ...fields, [MUTATION_ID]: mutationId }, current.updateTime, {
          witness: (data) => data[MUTATION_ID] === mutationId,
          what: `update "${id}"`,
        });
      } catch (err) {
        throw publicTimeout(err, `update "${id}"`);
      }
      if (written.ok) return { outcome: 'updated', task: current.decoded.task };
      if (written.reason === 'missing') return { outcome: 'missing' };
      if (attempt >= 20) throw new Error(`task "${id}" kept changing while being updated`);
    }
  }

  /** Deletes a task; true when it existed. */
  async delete(id: string): Promise<boolean> {
    const ref = this.ref(this.store.docId(id));
    const deadline = monotonicNow() + this.store.callTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await withDeadline(ref.delete({ exists: true }), deadline - monotonicNow(), `delete "${id}"`);
        this.store.ops.delete();
        return true;
      } catch (err) {
        // NOT_FOUND after an ambiguous first try: gone now, by our delete or a concurrent one.
        if (grpcCode(err) === GRPC.NOT_FOUND) return attempt > 0;
        if (!isAmbiguous(err) || attempt >= 3) throw publicTimeout(err, `delete "${id}"`);
        const snap = await this.store.call(ref.get(), `delete "${id}"`);
        this.store.ops.read();
        if (!snap.exists) {
          this.store.ops.delete();
          return true;
        }
      }
    }
  }

  /** Deletes many tasks (at most 16 requests in flight); returns how many existed. */
  async deleteMany(ids: readonly string[]): Promise<number> {
    const limit = pLimit(16);
    const deleted = await Promise.all([...new Set(ids)].map((id) => limit(() => this.delete(id))));
    return deleted.filter(Boolean).length;
  }
}
