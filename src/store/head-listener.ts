import type { DocumentData } from '@google-cloud/firestore';
import type { DecodeResult, TaskStatus } from '../task-document.js';
import type { OperationCounter } from './op-stats.js';
import type { QueryBuilder } from './query-builder.js';
import { byQueueOrder } from './queue-queries.js';
import type { MalformedDocument, VersionedTask } from './task-store.js';

/**
 * What a queue listener shows on every change: the first tasks of the listened queue in queue
 * order (its window), the malformed documents among them apart, whether the window holds the
 * whole listened queue, whether a document left the listened statuses since the last call
 * (`left`: a task was claimed, ended or deleted), and whether this is the listener's first
 * snapshot (`first`).
 */
export interface QueueWindow {
  /** The window's tasks, in queue order (of every shard group, merged). */
  tasks: VersionedTask[];
  /** Malformed documents in the window (no claim query would ever return some of them). */
  malformed: MalformedDocument[];
  /** No group's window is full: every listened task is in `tasks`. */
  complete: boolean;
  left: boolean;
  first: boolean;
}

/** Called with the queue's window on every change; see {@link QueueWindow}. */
export type WindowCallback = (window: QueueWindow) => void;

/** What the head listener uses of its store. */
export interface HeadAccess {
  readonly env: string;
  readonly queries: QueryBuilder;
  readonly ops: OperationCounter;
  decode(raw: DocumentData | undefined): DecodeResult;
}

/**
 * Listens to the head of a kind's queue: its first `size` tasks by due time (a running one's
 * lease expiry included when running tasks are listened to). Calls `onWindow` on every change
 * with those tasks, and `onError` if the listener dies. Returns the unsubscribe function. A
 * sharded queue takes one listener per group of shards (Firestore's disjunction limit), each
 * with a window of `size`; their windows are merged.
 *
 * A window rather than the head alone: with the head alone, a worker learns of the next task
 * only after its claim of the head went out and the listener answered, one task per round trip
 * (about 60 tasks/s on the emulator, fewer against a distant Firestore); a trickle faster than
 * that piles up, and the worker falls back to reading pages of what the listener shows anyway.
 * Each task still costs one listener read: it enters the window once.
 */
export function watchQueueHead(
  store: HeadAccess,
  kind: string,
  statuses: readonly TaskStatus[],
  size: number,
  onWindow: WindowCallback,
  onError: (err: Error) => void,
): () => void {
  const groups = store.queries.wholeQueue(statuses.length);
  const windows: { tasks: VersionedTask[]; malformed: MalformedDocument[]; full: boolean }[] = groups.map(() => ({ tasks: [], malformed: [], full: false }));
  const unsubscribes: (() => void)[] = [];
  let failed = false;
  const stopAll = (): void => unsubscribes.forEach((u) => u());
  groups.forEach((shard, i) => {
    let first = true;
    unsubscribes.push(
      store.queries
        .build('nextDue', { env: store.env, kind, status: [...statuses] }, { shard })
        .limit(size)
        .onSnapshot(
          (snap) => {
            // Billed: the initial result (at least one read), then each document entering or changing.
            const changes = snap.docChanges();
            const isFirst = first;
            const changed = changes.filter((c) => c.type !== 'removed').length;
            store.ops.listener(first ? Math.max(1, snap.size) : changed);
            const left = changes.some((c) => c.type === 'removed');
            first = false;
            const window: (typeof windows)[number] = { tasks: [], malformed: [], full: snap.size >= size };
            for (const doc of snap.docs) {
              const decoded = store.decode(doc.data());
              if (decoded.ok) window.tasks.push({ docId: doc.id, task: decoded.task, updateTime: doc.updateTime });
              else window.malformed.push({ docId: doc.id, reason: decoded.reason, updateTime: doc.updateTime });
            }
            windows[i] = window;
            onWindow({
              tasks: windows.flatMap((w) => w.tasks).sort(byQueueOrder),
              malformed: window.malformed,
              complete: windows.every((w) => !w.full),
              left,
              first: isFirst,
            });
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
