import type { DocumentData } from '@google-cloud/firestore';
import type { DecodeResult, TaskStatus } from '../task-document.js';
import type { OperationCounter } from './op-stats.js';
import type { QueryBuilder } from './query-builder.js';
import { byQueueOrder } from './queue-queries.js';
import type { MalformedDocument, VersionedTask } from './task-store.js';

/**
 * Called on every change of a queue's head: its due time (null: empty), the task, or the
 * document apart if malformed, and whether a document left the listened statuses since the last
 * call (`left`: a task was claimed, ended or deleted), and whether this is the listener's first
 * snapshot (`first`).
 */
export type HeadCallback = (dueAt: Date | null, head: VersionedTask | null, malformed: MalformedDocument | null, left: boolean, first: boolean) => void;

/** What the head listener uses of its store. */
export interface HeadAccess {
  readonly env: string;
  readonly queries: QueryBuilder;
  readonly ops: OperationCounter;
  decode(raw: DocumentData | undefined): DecodeResult;
}

/**
 * Listens to the head of a kind's queue (the next task to come due, a running one's lease
 * expiry included). Calls `onHead` on every change with its due time (null: empty queue) and
 * the task itself, or the document apart if it is malformed (a bad due time, say, which no
 * claim query would ever return), and `onError` if the listener dies. Returns the unsubscribe
 * function. A sharded queue takes one listener per group of shards (Firestore's disjunction
 * limit), and the head is the earliest of theirs.
 */
export function watchQueueHead(
  store: HeadAccess,
  kind: string,
  statuses: readonly TaskStatus[],
  onHead: HeadCallback,
  onError: (err: Error) => void,
): () => void {
  const groups = store.queries.wholeQueue(statuses.length);
  const heads: (VersionedTask | null)[] = groups.map(() => null);
  const unsubscribes: (() => void)[] = [];
  let failed = false;
  const stopAll = (): void => unsubscribes.forEach((u) => u());
  groups.forEach((shard, i) => {
    let first = true;
    unsubscribes.push(
      store.queries
        .build('nextDue', { env: store.env, kind, status: [...statuses] }, { shard })
        .limit(1)
        .onSnapshot(
          (snap) => {
            // Billed: the initial result (at least one read), then each document entering or changing.
            const changes = snap.docChanges();
            const isFirst = first;
            const changed = changes.filter((c) => c.type !== 'removed').length;
            store.ops.listener(first ? Math.max(1, snap.size) : changed);
            const left = changes.some((c) => c.type === 'removed');
            first = false;
            const doc = snap.docs[0];
            const decoded = doc ? store.decode(doc.data()) : null;
            heads[i] = doc && decoded?.ok ? { docId: doc.id, task: decoded.task, updateTime: doc.updateTime } : null;
            const malformed = doc && decoded && !decoded.ok ? { docId: doc.id, reason: decoded.reason, updateTime: doc.updateTime } : null;
            const head = heads.reduce<VersionedTask | null>((min, h) => (h !== null && (min === null || byQueueOrder(h, min) < 0) ? h : min), null);
            onHead(head?.task.waitUntil ?? null, head, malformed, left, isFirst);
          },
          (err) => {
            if (failed) return;
            failed = true;
            stopAll();
            onError(err);
          },
        ),
    );
  });
  return stopAll;
}
