import { randomBytes } from 'node:crypto';
import type { Firestore } from '@google-cloud/firestore';
import { InvalidOptionsError, WaitTimeoutError } from '../errors.js';
import { OnceTaskManager } from '../manager.js';
import type { OnceTaskManagerOptions } from '../manager-options.js';
import { memoryBackend, type StorageBackend } from '../store/backend.js';
import { OPEN_STATUSES, type TaskInfo, type TaskStatus } from '../task-document.js';
import type { TaskOutcome } from '../worker/hooks.js';
import { internalsOf, type ManagerInternals } from './internals.js';
import { durationMs, ManualClock } from './manual-clock.js';

/**
 * The testing kit: managers on a backend of their own (in memory, or the emulator), with time
 * under the test's control. No test-runner imports: call `teardown()` after each test (e.g. in
 * `afterEach`) with vitest, jest or node:test alike.
 */

/** Options of {@link createTestKit}. */
export interface TestKitOptions {
  /** `'memory'` (default): an in-process database, no Java; `'emulator'`: the Firestore emulator at `FIRESTORE_EMULATOR_HOST` (or `emulatorHost`). */
  backend?: 'memory' | 'emulator';
  /** `'manual'` (default): time moves only with {@link TestKit.advance}; `'real'`: the system clock. */
  clock?: 'manual' | 'real';
  /** Where a manual clock starts. Default: now. */
  start?: Date;
  /** With `backend: 'emulator'`: its `host:port`. Default `FIRESTORE_EMULATOR_HOST`. */
  emulatorHost?: string;
  /** The environment of the kit's managers. Default: a fresh one (`kit-<random>`). */
  env?: string;
}

/** Manager options a test may set; the kit sets the backend, environment and clock. */
export type KitManagerOptions = Omit<OnceTaskManagerOptions, 'firestore' | 'backend' | 'env' | 'clock'>;

/** One recorded outcome of an attempt, as the kit saw it. */
export interface TaskRun {
  id: string;
  kind: string;
  /** `succeeded`, `retrying`, `failed`, `cancelled`, `cancelling` or `released`. */
  outcome: TaskOutcome;
  /** The attempt (1-based). */
  attempt: number;
  /** When it was recorded, on the kit's clock. */
  at: Date;
  /** The failure, for `retrying` and `failed`. */
  error?: Error;
}

/** Options of {@link TestKit.waitFor}. */
export interface KitWaitOptions {
  /** Real time to wait at most, in ms. Default 10 000. */
  timeoutMs?: number;
}

/** See {@link createTestKit}. */
export interface TestKit {
  /** The kit's environment. */
  readonly env: string;
  /** The manual clock (null with `clock: 'real'`). */
  readonly clock: ManualClock | null;
  /** Every outcome recorded by the kit's managers, in order. */
  readonly runs: readonly TaskRun[];
  /** The kit's current time. */
  now(): Date;
  /** A new manager on the kit's backend, environment and clock; stopped by `teardown()`. Start it, or let `drain`/`advance` start it (they start every kit manager never started; one the test stopped stays stopped). */
  manager(options?: KitManagerOptions): OnceTaskManager;
  /**
   * Moves a manual clock forward by `duration` (ms, or `90s`, `25h`, `7d`...), stopping at every
   * moment something comes due on the way — delays, retries, lease expiries, schedule slots —
   * and running it before going on. Resolves with what ran, once nothing due is left.
   */
  advance(duration: string | number): Promise<TaskRun[]>;
  /** Runs until no task is due now (graphile-worker's `runOnce`); resolves with what ran. */
  drain(): Promise<TaskRun[]>;
  /**
   * Resolves with the task once `target` (an ID, or a predicate over tasks of the kit's
   * environment) is in `status` (or one of them) — at once if it already is.
   */
  waitFor(target: string | ((task: TaskInfo) => boolean), status: TaskStatus | readonly TaskStatus[], options?: KitWaitOptions): Promise<TaskInfo>;
  /** Makes a kit manager die like a killed process mid-handler: nothing more is written for its tasks; their leases are left to expire. */
  crashWorker(manager: OnceTaskManager): Promise<void>;
  /** Stops every kit manager (and closes the emulator client). */
  teardown(): Promise<void>;
}

/** Most steps one `advance` takes (each stops at a moment something comes due). */
const MAX_STEPS = 100_000;
/** How long the kit waits for its workers to go idle before it reports them stuck (real ms). */
const SETTLE_TIMEOUT_MS = 30_000;

/**
 * Creates a testing kit. With the defaults (`backend: 'memory'`, `clock: 'manual'`) a test of a
 * retrying task or a weekly schedule runs in milliseconds.
 *
 * @example
 * const kit = await createTestKit();
 * const tasks = kit.manager();
 * tasks.handle(sendEmail, handler);
 * await tasks.create(sendEmail, { to: 'a@example.com' });
 * await kit.drain();
 * await kit.teardown();
 */
export async function createTestKit(options: TestKitOptions = {}): Promise<TestKit> {
  const { backend = 'memory', clock = 'manual' } = options;
  if (backend !== 'memory' && backend !== 'emulator') throw new InvalidOptionsError('createTestKit: backend must be "memory" or "emulator"');
  if (clock !== 'manual' && clock !== 'real') throw new InvalidOptionsError('createTestKit: clock must be "manual" or "real"');
  let storage: { backend: StorageBackend } | { firestore: Firestore };
  let close = async (): Promise<void> => undefined;
  if (backend === 'memory') storage = { backend: memoryBackend() };
  else {
    const host = options.emulatorHost ?? process.env.FIRESTORE_EMULATOR_HOST;
    if (!host) throw new InvalidOptionsError('createTestKit: backend "emulator" needs FIRESTORE_EMULATOR_HOST (or emulatorHost); startFirestoreEmulator() starts one');
    const { Firestore: FirestoreClient } = await import('@google-cloud/firestore');
    const saved = process.env.FIRESTORE_EMULATOR_HOST;
    process.env.FIRESTORE_EMULATOR_HOST = host;
    const firestore = new FirestoreClient({ projectId: 'demo-oncetask' });
    if (saved === undefined) delete process.env.FIRESTORE_EMULATOR_HOST;
    storage = { firestore };
    // Closed listeners tear their streams down asynchronously; terminating the client in the middle
    // of that makes the SDK reject a request nobody awaits (an unhandled rejection). As test/fixture.ts does: wait first.
    close = async () => {
      await new Promise((resolve) => setTimeout(resolve, 250));
      await firestore.terminate();
    };
  }
  return new Kit(storage, clock === 'manual' ? new ManualClock(options.start ?? new Date()) : null, options.env ?? `kit-${randomBytes(5).toString('hex')}`, close);
}

class Kit implements TestKit {
  readonly runs: TaskRun[] = [];
  private readonly managers: OnceTaskManager[] = [];
  private readonly crashed = new Set<OnceTaskManager>();

  constructor(
    private readonly storage: { backend: StorageBackend } | { firestore: Firestore },
    readonly clock: ManualClock | null,
    readonly env: string,
    private readonly close: () => Promise<void>,
  ) {}

  now(): Date {
    return new Date(this.clock ? this.clock.now() : Date.now());
  }

  manager(options: KitManagerOptions = {}): OnceTaskManager {
    const hooks = options.hooks ?? {};
    // onTaskFailed is called before onTaskSettled: keep the error until its run is recorded.
    const failures = new Map<string, Error>();
    const manager = new OnceTaskManager({
      // Fast, event-driven defaults: listen (free in memory), re-check busy keys often, one clock for all.
      listen: true,
      listenerRoleMs: 0,
      pollIntervalMs: 20,
      ...(this.clock ? { maxClockSkewMs: 0, clock: this.clock.now } : {}),
      ...options,
      ...this.storage,
      env: this.env,
      hooks: {
        ...hooks,
        onTaskSettled: (task, outcome) => {
          const error = failures.get(`${task.id}#${task.attempt}`);
          failures.delete(`${task.id}#${task.attempt}`);
          this.runs.push({ id: task.id, kind: task.kind, outcome, attempt: task.attempt, at: this.now(), ...(error ? { error } : {}) });
          return hooks.onTaskSettled?.(task, outcome);
        },
        onTaskFailed: (task, error, info) => {
          failures.set(`${task.id}#${task.attempt}`, error);
          return hooks.onTaskFailed?.(task, error, info);
        },
      },
    } as OnceTaskManagerOptions);
    this.managers.push(manager);
    return manager;
  }

  /** The kit managers whose workers run (not crashed, not stopped by the test). */
  private live(): ManagerInternals[] {
    return this.managers.filter((m) => !this.crashed.has(m)).map((m) => internalsOf(m)).filter((m) => m.started());
  }

  /** Starts every kit manager never started (advance and drain run what is due); one the test stopped stays stopped. */
  private startAll(): void {
    for (const m of this.managers) if (!this.crashed.has(m) && !internalsOf(m).everStarted()) m.start();
  }

  /**
   * Runs what is due now: wakes every worker and waits until each has looked at its queue since
   * and is idle, until a whole pass claimed nothing.
   */
  private async settle(): Promise<void> {
    this.startAll();
    const deadline = Date.now() + SETTLE_TIMEOUT_MS;
    for (;;) {
      const probes = this.live().flatMap((m) => m.workers());
      // A worker claims nothing until it knows the pauses (its first control snapshot).
      while (!probes.every((p) => p.ready)) {
        if (Date.now() > deadline) throw new Error(`testing kit: workers did not get ready within ${SETTLE_TIMEOUT_MS} ms`);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      const before = probes.map((p) => p.rounds);
      for (const m of this.live()) m.wakeAll();
      for (;;) {
        if (probes.every((p, i) => p.rounds > before[i]! && !p.busy)) break;
        if (Date.now() > deadline) throw new Error(`testing kit: workers still busy after ${SETTLE_TIMEOUT_MS} ms (a handler that never returns?)`);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      if (probes.every((p) => (p.lastRound?.claimed ?? 0) === 0 && (p.lastRound?.conflicts ?? 0) === 0)) return;
    }
  }

  /** The next moment after `now` at which something comes due, up to `limit`. */
  private async nextEvent(now: number, limit: number): Promise<number> {
    let next = limit;
    const consider = (t: number | null | undefined): void => {
      if (t !== null && t !== undefined && t > now && t < next) next = t;
    };
    for (const m of this.live()) for (const p of m.workers()) consider(p.plannedLookAt);
    const store = internalsOf(this.managers[0]!).store;
    for (const task of await store.listing.openTasks(OPEN_STATUSES)) {
      if (task.lease) consider(task.lease.expiresAt.getTime());
      else consider((task.notBefore ?? task.waitUntil).getTime());
    }
    return next;
  }

  async advance(duration: string | number): Promise<TaskRun[]> {
    if (!this.clock) throw new InvalidOptionsError('advance: the kit has a real clock (createTestKit({ clock: "manual" }) for one you can move)');
    const ms = durationMs(duration, 'advance');
    const from = this.runs.length;
    const target = this.clock.now() + ms;
    await this.settle();
    for (let step = 0; this.clock.now() < target && step < MAX_STEPS; step++) {
      this.clock.set(this.managers.length > 0 ? await this.nextEvent(this.clock.now(), target) : target);
      await this.settle();
    }
    this.clock.set(target);
    await this.settle();
    return this.runs.slice(from);
  }

  async drain(): Promise<TaskRun[]> {
    const from = this.runs.length;
    await this.settle();
    return this.runs.slice(from);
  }

  async waitFor(target: string | ((task: TaskInfo) => boolean), status: TaskStatus | readonly TaskStatus[], options: KitWaitOptions = {}): Promise<TaskInfo> {
    const wanted: readonly TaskStatus[] = typeof status === 'string' ? [status] : status;
    const timeoutMs = options.timeoutMs ?? 10_000;
    const reader = this.managers[0] ?? this.manager();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = typeof target === 'string' ? await reader.get(target) : await this.find(reader, target, wanted);
      if (found && wanted.includes(found.status)) return found;
      if (Date.now() > deadline) throw new WaitTimeoutError(typeof target === 'string' ? target : '(predicate)', timeoutMs);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  private async find(reader: OnceTaskManager, predicate: (task: TaskInfo) => boolean, statuses: readonly TaskStatus[]): Promise<TaskInfo | null> {
    for (const status of statuses) {
      let cursor: string | undefined;
      do {
        const page = await reader.list({ status, limit: 1000, ...(cursor ? { cursor } : {}) });
        const hit = page.tasks.find(predicate);
        if (hit) return hit;
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
    }
    return null;
  }

  async crashWorker(manager: OnceTaskManager): Promise<void> {
    if (!this.managers.includes(manager)) throw new InvalidOptionsError('crashWorker: not a manager of this kit');
    this.crashed.add(manager);
    await internalsOf(manager).crash();
  }

  async teardown(): Promise<void> {
    await Promise.all(this.managers.filter((m) => !this.crashed.has(m)).map((m) => m.stop({ graceMs: 0 })));
    await this.close();
  }
}
