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
  /** Whether it knows the environment's pauses (until then it claims nothing). */
  readonly ready: boolean;
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
  /** Whether they were ever started (a manager the test stopped stays stopped). */
  everStarted(): boolean;
  /** Its workers, by kind. */
  workers(): readonly WorkerProbe[];
  /** Makes every worker of the manager look at its queue now. */
  wakeAll(): void;
  /** Dies like a killed process: nothing more is written (no renewals, outcomes or releases); leases expire. */
  crash(): Promise<void>;
}

/** Where a manager keeps its internals: a registered symbol, so they are found across builds of the package (ESM and CommonJS bundles). */
const INTERNALS = Symbol.for('oncetask.manager.internals');

/** Called by each manager at construction. */
export function registerInternals(manager: object, internals: ManagerInternals): void {
  Object.defineProperty(manager, INTERNALS, { value: internals, enumerable: false });
}

/** The internals of a manager made by this library. */
export function internalsOf(manager: object): ManagerInternals {
  const found = (manager as Record<symbol, ManagerInternals | undefined>)[INTERNALS];
  if (!found) throw new TypeError('not an OnceTaskManager');
  return found;
}
