import type { TaskStore } from '../store/task-store.js';

/**
 * What the testing kit may see of a manager beyond its public API: its store and its workers'
 * state, to tell when everything due has run and what comes due next, and a way to make it die
 * like a crashed process. Registered by each manager; never part of the public types.
 */

/** One kind's worker, as the kit observes it. */
export interface WorkerProbe {
  /** The kind. */
  readonly kind: string;
  /** Running a task, or in the middle of a claim round. */
  readonly busy: boolean;
  /** Claim rounds completed so far. */
  readonly rounds: number;
  /** What the last completed round claimed (or lost to another worker). */
  readonly lastRound: { claimed: number; conflicts: number } | null;
  /** When (wall time, ms) the loop means to look again because something comes due then; null: not known. */
  readonly plannedLookAt: number | null;
}

/** A manager's internals, for the kit. */
export interface ManagerInternals {
  readonly store: TaskStore;
  /** Whether its workers are started. */
  started(): boolean;
  /** Its workers, by kind. */
  workers(): readonly WorkerProbe[];
  /** Makes every worker of the manager look at its queue now. */
  wakeAll(): void;
  /** Dies like a killed process: nothing more is written (no renewals, outcomes or releases); leases expire. */
  crash(): Promise<void>;
}

const registry = new WeakMap<object, ManagerInternals>();

/** Called by each manager at construction. */
export function registerInternals(manager: object, internals: ManagerInternals): void {
  registry.set(manager, internals);
}

/** The internals of a manager made by this library. */
export function internalsOf(manager: object): ManagerInternals {
  const found = registry.get(manager);
  if (!found) throw new TypeError('not an OnceTaskManager');
  return found;
}
