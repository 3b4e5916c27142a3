import { InvalidOptionsError, InvalidStateError } from '../errors.js';
import { assertKnownOptions, optionNames } from '../known-options.js';
import { kindOf } from '../task-definition.js';
import type { HookRunner, TaskOutcome } from './hooks.js';
import type { KindWorker } from './kind-worker.js';
import type { z } from 'zod';

/**
 * Serverless mode: run due tasks until the queue is empty or the time is up, then hand back
 * what is left — for a Cloud Run job, a Cloud Scheduler ping, or a function triggered by a new
 * task document, so work runs on scale-to-zero infrastructure.
 */

/** Options of {@link OnceTaskManager.drain}. */
export interface DrainOptions {
  /** Longest run, in ms: past it, running handlers get `graceMs` and are then handed back. Default 60 000. */
  maxMs?: number;
  /** Only these kinds (definitions or names; each needs a registered handler). Default: every registered kind. */
  kinds?: readonly ({ kind: string } | string)[];
  /** Grace period of the final `stop()`, in ms. Default 5000. */
  graceMs?: number;
}

/** What {@link OnceTaskManager.drain} did. */
export interface DrainResult {
  /** Attempts that ran to a recorded outcome (handed-back ones not included). */
  ran: number;
  /** Recorded outcomes, by kind of outcome (`released`: handed back unfinished at the end). */
  outcomes: Record<TaskOutcome, number>;
  /** Whether it ended because nothing was left due (false: `maxMs` ran out first). */
  emptied: boolean;
  /** How long it took, in ms. */
  durationMs: number;
}

const DRAIN_OPTIONS = optionNames<DrainOptions>()(['maxMs', 'kinds', 'graceMs']);
const DEFAULT_DRAIN_MS = 60_000;
const DEFAULT_DRAIN_GRACE_MS = 5000;
/** How often a drain checks whether the queue is empty. */
const CHECK_INTERVAL_MS = 100;

/** What `drain()` needs from the manager. */
export interface DrainHost {
  started: boolean;
  workers: ReadonlyMap<string, KindWorker<z.ZodType>>;
  hooks: HookRunner;
  clock: () => number;
  startKinds(kinds: readonly string[]): void;
  stop(graceMs: number): Promise<void>;
}

/** Runs the drain (see {@link DrainOptions}). */
export async function drain(host: DrainHost, options: DrainOptions = {}): Promise<DrainResult> {
  assertKnownOptions(options, DRAIN_OPTIONS, 'drain');
  const maxMs = options.maxMs ?? DEFAULT_DRAIN_MS;
  const graceMs = options.graceMs ?? DEFAULT_DRAIN_GRACE_MS;
  for (const [name, value] of [['maxMs', maxMs], ['graceMs', graceMs]] as const) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new InvalidOptionsError(`drain: option "${name}" must be a number >= 0`);
  }
  const kinds = (options.kinds ?? [...host.workers.keys()]).map((k) => kindOf(k, 'drain: option "kinds"'));
  if (kinds.length === 0) throw new InvalidOptionsError('drain: no handler is registered');
  for (const kind of kinds) {
    if (!host.workers.has(kind)) throw new InvalidOptionsError(`drain: no handler is registered for kind ${JSON.stringify(kind)}`);
  }
  if (host.started) throw new InvalidStateError('drain: the manager is already started (drain() starts the workers and stops them when done)');
  const outcomes: Record<TaskOutcome, number> = { succeeded: 0, retrying: 0, failed: 0, cancelled: 0, cancelling: 0, released: 0 };
  const unobserve = host.hooks.observe((outcome) => outcomes[outcome]++);
  const t0 = Date.now();
  const workers = kinds.map((k) => host.workers.get(k)!);
  let emptied = false;
  try {
    host.startKinds(kinds);
    // Empty twice in a row: a claim answered between the two looks shows up as busy in the second.
    let emptyLooks = 0;
    while (Date.now() - t0 < maxMs) {
      await sleep(Math.min(CHECK_INTERVAL_MS, maxMs - (Date.now() - t0)));
      if (workers.some((w) => w.busy)) {
        emptyLooks = 0;
        continue;
      }
      const now = host.clock();
      const due = await Promise.all(workers.map((w) => w.nextDueAt()));
      emptyLooks = due.every((d) => d === null || d.getTime() > now) && !workers.some((w) => w.busy) ? emptyLooks + 1 : 0;
      if (emptyLooks >= 2) {
        emptied = true;
        break;
      }
    }
  } finally {
    await host.stop(graceMs);
    unobserve();
  }
  const ran = outcomes.succeeded + outcomes.retrying + outcomes.failed + outcomes.cancelled + outcomes.cancelling;
  return { ran, outcomes, emptied, durationMs: Date.now() - t0 };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
