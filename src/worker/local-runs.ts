import type { HeldTask, Lease } from '../lease/lease.js';
import type { TaskStore } from '../store/task-store.js';

/**
 * The runs of one kind's worker in this process, by lease token: which tasks and resource keys
 * they hold, and the local end of a cancellation (a run's handler sees its signal abort).
 */

/** A claimed lease running in a slot of its own. */
export interface ActiveRun {
  lease: Lease;
  controller: AbortController;
  done: Promise<void>;
}

export class LocalRuns {
  private readonly runs = new Map<string, ActiveRun>();
  /** Runs whose handler has returned and whose outcome is being written (see {@link handlerReturned}). */
  private readonly finishing = new Set<string>();

  constructor(private readonly store: Pick<TaskStore, 'readDoc'>) {}

  /** How many runs this process holds: handlers running, and outcomes being written. */
  get size(): number {
    return this.runs.size;
  }

  /**
   * Slots in use: runs whose handler has not returned yet, plus the outcomes being written beyond
   * `concurrency` of them. A handler's slot is free once it has returned, so the next claim goes
   * out with its outcome write in one round trip (as BullMQ fetches the next job when it
   * completes one); its task stays held here until the outcome is written, and at most
   * `concurrency` outcomes in writing are not counted, so a backend slow to take outcomes
   * still holds claims back.
   */
  slotsInUse(concurrency: number): number {
    return this.runs.size - Math.min(this.finishing.size, concurrency);
  }

  /** The run's handler has returned: its slot is free while its outcome is written. */
  handlerReturned(token: string): void {
    if (this.runs.has(token)) this.finishing.add(token);
  }

  values(): IterableIterator<ActiveRun> {
    return this.runs.values();
  }

  add(token: string, run: ActiveRun): void {
    this.runs.set(token, run);
  }

  delete(token: string): void {
    this.runs.delete(token);
    this.finishing.delete(token);
  }

  /** The task as held in this process (running, or its aborted handler has not returned yet), if it is. */
  heldHere(docId: string): HeldTask | undefined {
    for (const run of this.runs.values()) {
      const held = run.lease.tasks.find((t) => t.docId === docId);
      if (held) return held;
    }
    return undefined;
  }

  /**
   * Whether a run in this process holds the key. Normally the key lock says so; but a run whose
   * lease was lost or expired while its handler ignores the signal holds the key only here.
   */
  isKeyHeldHere(key: string): boolean {
    for (const run of this.runs.values()) if (run.lease.tasks.some((t) => t.task.resourceKey === key)) return true;
    return false;
  }

  /** Aborts the local run of a task whose cancellation was just requested in this process. */
  cancelLocal(docId: string): void {
    for (const run of this.runs.values()) {
      const held = run.lease.tasks.find((t) => t.docId === docId);
      if (held && !held.cancelRequested) {
        held.cancelRequested = true;
        run.lease.onCancelRequested?.(held);
      }
    }
  }

  /**
   * Another process cancelled a task and posted it to this process's inbox: if it runs here,
   * abort its signal now (after one read confirming the request is for this very attempt).
   */
  async cancelPosted(docId: string): Promise<void> {
    const held = this.heldHere(docId);
    if (!held || held.cancelRequested) return;
    const run = [...this.runs.values()].find((r) => r.lease.tasks.includes(held));
    const current = await this.store.readDoc(docId).catch(() => null);
    if (!run || !current?.decoded.ok) return;
    const { task } = current.decoded;
    if (task.cancelRequested && task.lease?.token === run.lease.token) this.cancelLocal(docId);
  }
}
