import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { DocumentData, Timestamp } from '@google-cloud/firestore';
import { withDeadline } from './calls.js';
import type { TaskStore } from './task-store.js';
import { isTimestampLike } from '../values.js';

/**
 * Control documents in `<collection>_keys`, beside the key locks and listener roles:
 * - one per environment holding the pauses (`pause()`): every manager listens to it, so a pause
 *   reaches every process within a listener round trip, and an unchanged document costs nothing;
 * - one inbox per worker process, where `cancel()` in another process posts the cancellation of
 *   a task that process runs, so its signal is aborted at once rather than at its next renewal.
 */

const timestamp = z.custom<Date>((v) => isTimestampLike(v) || v instanceof Date, 'expected a Timestamp').transform(
  (v) => (v instanceof Date ? v : (v as unknown as { toDate(): Date }).toDate()),
);

/** One pause: since when, and until when (null: until `resume`). */
export interface PauseEntry {
  at: Date;
  until: Date | null;
}

/** The key of a pause of every kind. */
export const ALL_KINDS = '*';

const controlSchema = z.object({ pauses: z.record(z.string(), z.object({ at: timestamp, until: timestamp.nullable() })).default({}) });
const inboxSchema = z.object({ cancels: z.record(z.string(), timestamp).default({}) });

/** Inbox entries older than this are dropped when the next one is posted. */
const INBOX_KEEP_MS = 10 * 60_000;
/** Conflicting writers: how many times a control write is re-read and tried again. */
const MAX_TRIES = 20;

export class ControlStore {
  constructor(private readonly store: TaskStore) {}

  private hash(...parts: string[]): string {
    const h = createHash('sha256');
    for (const p of parts) h.update(p).update('\u0000');
    return h.digest('hex').slice(0, 40);
  }

  /** The environment's control document (prefixed: never a key lock's bare-hex ID). */
  controlDocId(): string {
    return `control-${this.hash(this.store.env)}`;
  }

  /** A worker process's inbox document. */
  inboxDocId(workerId: string): string {
    return `inbox-${this.hash(this.store.env, workerId)}`;
  }

  /** Listens to the pauses: `onChange` with each version (one billed read each; none while it is unchanged). */
  watchPauses(onChange: (pauses: Map<string, PauseEntry>) => void, onError: (err: Error) => void): () => void {
    return this.watch(this.controlDocId(), (data) => onChange(decodePauses(data)), onError);
  }

  /** Reads the pauses (one read). */
  async readPauses(): Promise<Map<string, PauseEntry>> {
    const snap = await withDeadline(this.store.locks.ref(this.controlDocId()).get(), this.store.callTimeoutMs, 'read pauses');
    this.store.ops.read();
    return decodePauses(snap.exists ? snap.data() : undefined);
  }

  /** Changes the pauses: a read and a conditional write (re-read and tried again if another writer came first). */
  async updatePauses(change: (pauses: Map<string, PauseEntry>) => Map<string, PauseEntry>): Promise<Map<string, PauseEntry>> {
    return this.update(this.controlDocId(), 'pause', (data) => {
      const next = change(decodePauses(data));
      return { pauses: Object.fromEntries(next), result: next };
    });
  }

  /** Listens to a worker's inbox: `onCancels` with the task document IDs posted to it (and when). */
  watchInbox(workerId: string, onCancels: (cancels: Map<string, Date>) => void, onError: (err: Error) => void): () => void {
    return this.watch(this.inboxDocId(workerId), (data) => {
      const parsed = inboxSchema.safeParse(data ?? {});
      onCancels(new Map(parsed.success ? Object.entries(parsed.data.cancels) : []));
    }, onError);
  }

  /** Posts the cancellation of a task to the inbox of the worker running it: a read and a write. */
  async postCancel(workerId: string, taskDocId: string, now: Date): Promise<void> {
    await this.update(this.inboxDocId(workerId), 'post cancel', (data) => {
      const parsed = inboxSchema.safeParse(data ?? {});
      const kept = Object.entries(parsed.success ? parsed.data.cancels : {}).filter(([, at]) => now.getTime() - at.getTime() < INBOX_KEEP_MS);
      // The inbox goes with its process: the TTL policy deletes it once nothing is posted.
      return { cancels: { ...Object.fromEntries(kept), [taskDocId]: now }, expireAt: new Date(now.getTime() + INBOX_KEEP_MS), result: undefined };
    });
  }

  private watch(docId: string, onData: (data: DocumentData | undefined) => void, onError: (err: Error) => void): () => void {
    const unsubscribe = this.store.locks.ref(docId).onSnapshot((snap) => {
      this.store.ops.listener(1);
      onData(snap.exists ? snap.data() : undefined);
    }, onError);
    return unsubscribe;
  }

  /** Read-decide-write on one control document, conditional on the version read; a mutation ID resolves a lost answer. */
  private async update<R>(docId: string, what: string, decide: (data: DocumentData | undefined) => Record<string, unknown> & { result: R }): Promise<R> {
    const ref = this.store.locks.ref(docId);
    for (let i = 0; ; i++) {
      const snap = await withDeadline(ref.get(), this.store.callTimeoutMs, what);
      this.store.ops.read();
      const { result, ...fields } = decide(snap.exists ? snap.data() : undefined);
      const mutationId = randomUUID();
      const written = await this.store.commitConditional(
        [{ target: 'lock', docId, fields: { ...fields, env: this.store.env, mutationId, updatedAt: new Date() }, precondition: snap.exists ? (snap.updateTime as Timestamp) : 'absent' }],
        { witness: (data) => data.mutationId === mutationId, what },
      );
      if (Array.isArray(written)) return result;
      if (i >= MAX_TRIES) throw new Error(`${what}: the control document kept changing`);
    }
  }
}

function decodePauses(data: DocumentData | undefined): Map<string, PauseEntry> {
  const parsed = controlSchema.safeParse(data ?? {});
  return new Map(parsed.success ? Object.entries(parsed.data.pauses) : []);
}
