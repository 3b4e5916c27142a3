import { randomUUID } from 'node:crypto';
import type { DocumentReference, Firestore, Timestamp, Transaction, WriteBatch } from '@google-cloud/firestore';
import { GRPC, grpcCode, isAmbiguous, newRev, withDeadline } from './calls.js';
import { publicTimeout, type ConditionalWriter, type TaskFields } from './conditional-writer.js';
import type { OperationCounter } from './op-stats.js';

/**
 * Creating task documents, exactly once per ID. Each create stamps a nonce (`createNonce`) that
 * no later write changes: a create whose answer was lost and whose re-send failed as "exists"
 * is recognised as ours by it, so `created` is exact.
 */

/** Field set once by `create` and never written again: the witness of an ambiguous create. */
export const CREATE_NONCE = 'createNonce';

export class TaskCreator {
  constructor(
    private readonly firestore: Firestore,
    /** The reference of a task's document, by task ID. */
    private readonly ref: (id: string) => DocumentReference,
    private readonly ops: OperationCounter,
    private readonly writer: ConditionalWriter,
    private readonly callTimeoutMs: number,
  ) {}

  /** Creates the task unless its document exists; its version when created, null when it existed (exact even if an answer was lost). */
  async create(id: string, fields: TaskFields): Promise<Timestamp | null> {
    const nonce = randomUUID();
    try {
      const result = await this.writer.commit([{ ref: this.ref(id), fields: { ...fields, [CREATE_NONCE]: nonce }, precondition: 'absent' }], {
        witness: (data) => data[CREATE_NONCE] === nonce,
        what: `create "${id}"`,
      });
      return Array.isArray(result) ? result[0]! : null;
    } catch (err) {
      throw publicTimeout(err, `create "${id}"`);
    }
  }

  /** Inside a caller's transaction: reads the document (reads must come first) and creates it if absent. */
  async createInTransaction(tx: Transaction, id: string, fields: TaskFields): Promise<boolean> {
    const ref = this.ref(id);
    const snap = await tx.get(ref);
    this.ops.read();
    if (snap.exists) return false;
    tx.create(ref, { ...fields, rev: newRev(), [CREATE_NONCE]: randomUUID() });
    this.ops.write();
    return true;
  }

  /**
   * Adds a create to a caller's batch unless the task exists now. A batch cannot read, so a
   * task created between this check and the commit makes the commit fail with ALREADY_EXISTS.
   */
  async createInBatch(batch: WriteBatch, id: string, fields: TaskFields): Promise<boolean> {
    const ref = this.ref(id);
    const snap = await withDeadline(ref.get(), this.callTimeoutMs, `read "${id}"`).catch((err: unknown) => Promise.reject(publicTimeout(err, `read "${id}"`)));
    this.ops.read();
    if (snap.exists) return false;
    batch.create(ref, { ...fields, rev: newRev(), [CREATE_NONCE]: randomUUID() });
    this.ops.write();
    return true;
  }

  /**
   * Creates many tasks with a BulkWriter; returns, per item, whether it was new. A create that
   * failed as "exists" or with an unknown outcome is checked against its nonce, so the count is
   * exact even when the BulkWriter re-sent a write whose answer was lost.
   */
  async createMany(items: readonly { id: string; fields: TaskFields }[]): Promise<boolean[]> {
    const writer = this.firestore.bulkWriter();
    const nonces = items.map(() => randomUUID());
    const unsure: number[] = [];
    const outcomes = items.map(({ id, fields }, i) =>
      writer.create(this.ref(id), { ...fields, rev: newRev(), [CREATE_NONCE]: nonces[i] }).then(
        () => {
          this.ops.write();
          return true;
        },
        (err: unknown) => {
          if (grpcCode(err) !== GRPC.ALREADY_EXISTS && !isAmbiguous(err)) throw err;
          unsure.push(i); // exists (maybe from our own re-sent write) or unknown: checked below
          return false;
        },
      ),
    );
    const settled = await Promise.allSettled([...outcomes, writer.close()]);
    const failure = settled.find((s) => s.status === 'rejected');
    if (failure && failure.status === 'rejected') throw failure.reason;
    const created = settled.slice(0, items.length).map((s) => (s as PromiseFulfilledResult<boolean>).value);
    if (unsure.length > 0) {
      const snaps = await withDeadline(this.firestore.getAll(...unsure.map((i) => this.ref(items[i]!.id))), this.callTimeoutMs, 'createMany: read back').catch((err: unknown) => Promise.reject(publicTimeout(err, 'createMany')));
      this.ops.read(snaps.length);
      for (const [k, i] of unsure.entries()) {
        const snap = snaps[k]!;
        if (!snap.exists) created[i] = (await this.create(items[i]!.id, items[i]!.fields)) !== null;
        else if (snap.get(CREATE_NONCE) === nonces[i]) {
          this.ops.write();
          created[i] = true;
        } else this.ops.refused();
      }
    }
    return created;
  }
}
