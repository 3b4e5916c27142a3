import type { WorkerProbe } from '../testing/internals.js';

/**
 * What a worker's loop records for the testing kit (see `src/testing/internals.ts`), which uses
 * it to tell when everything due has run and what comes due next.
 */
export class LoopRecord {
  /** Looks at the queue so far: each one ends in a sleep of the loop. */
  looks = 0;
  /** What the last completed round claimed (or lost to another worker). */
  lastRound: { claimed: number; conflicts: number } | null = null;
  /** When (wall time, ms) the loop means to look again because something comes due then; null: not known. */
  plannedLookAt: number | null = null;

  /** The kit's view of a worker: this record, and its live state. */
  probe(kind: string, ready: () => boolean, busy: () => boolean): WorkerProbe {
    const record = this;
    return {
      kind,
      get ready() {
        return ready();
      },
      get busy() {
        return busy();
      },
      get rounds() {
        return record.looks;
      },
      get lastRound() {
        return record.lastRound;
      },
      get plannedLookAt() {
        return record.plannedLookAt;
      },
    };
  }
}
