import type { VersionedTask } from '../store/task-store.js';

/**
 * Wake-ups within one process: a task created (or made due) here is announced at once to this
 * process's started workers of its kind — of any manager on the same collection and
 * environment — instead of waiting for their next poll or listener event.
 */

/** A started worker, as the registry wakes it. */
export interface Wakeable {
  /** A task of the worker's kind became due; `dueHead` is it as just written, when it is due now. */
  wake(dueHead?: VersionedTask): void;
}

/** Wakes local workers of (collection, env, kind) when a task is created in this process. */
const localWorkers = new Map<string, Set<Wakeable>>();

/** One manager's view of the process-wide registry: its collection and environment. */
export class LocalWake {
  constructor(
    private readonly collection: string,
    private readonly env: string,
  ) {}

  /** Wakes every registered worker of `kind` in this process. */
  wake(kind: string, dueHead?: VersionedTask): void {
    for (const worker of localWorkers.get(this.key(kind)) ?? []) worker.wake(dueHead);
  }

  /** Registers a started worker of `kind`. */
  add(kind: string, worker: Wakeable): void {
    const key = this.key(kind);
    let set = localWorkers.get(key);
    if (!set) localWorkers.set(key, (set = new Set()));
    set.add(worker);
  }

  /** Unregisters a worker of `kind` (it is stopping). */
  remove(kind: string, worker: Wakeable): void {
    localWorkers.get(this.key(kind))?.delete(worker);
  }

  private key(kind: string): string {
    return `${this.collection}\u0000${this.env}\u0000${kind}`;
  }
}
