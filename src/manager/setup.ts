import { hostname } from 'node:os';
import type { z } from 'zod';
import { TaskAdmin } from '../admin/task-admin.js';
import { TaskReads } from '../admin/task-reads.js';
import { TaskWaiting } from '../admin/waiting.js';
import { Pauses } from '../admin/pauses.js';
import { ScheduleAdmin } from '../admin/schedules.js';
import { DEFAULT_MAX_CLOCK_SKEW_MS, systemClock, type Clock } from '../clock.js';
import { InvalidOptionsError, TaskNotFoundError } from '../errors.js';
import { assertKnownOptions } from '../known-options.js';
import { newWorkerId, type Retention } from '../lease/protocol.js';
import { defaultLogger } from '../logger.js';
import type { OnceTaskManagerOptions } from '../manager-options.js';
import {
  checkHooks,
  DEFAULT_EMULATOR_POLL_INTERVAL_MS,
  DEFAULT_LISTENER_ROLE_MS,
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_RETENTION_MS,
  DEFAULT_SWEEP_INTERVAL_MS,
  MANAGER_OPTIONS,
  managerOptionsSchema,
  parseOptions,
} from '../options.js';
import { DEFAULT_CALL_TIMEOUT_MS } from '../store/calls.js';
import { ControlStore } from '../store/control-store.js';
import { databaseOf } from '../store/backend.js';
import { TaskStore } from '../store/task-store.js';
import { DEFAULT_WRITE_BATCHING } from '../store/write-batcher.js';
import { QueueGauges, type QueueSource } from '../telemetry/queue-gauges.js';
import { Telemetry } from '../telemetry/telemetry.js';
import { DEFAULT_HOOK_TIMEOUT_MS, HookRunner } from '../worker/hooks.js';
import type { KindWorker } from '../worker/kind-worker.js';
import { LocalWake } from '../worker/local-wake.js';
import { WorkerPool } from '../worker/pool.js';
import { ProcessControl } from '../worker/process-control.js';
import { TaskCreation } from './creation.js';

/**
 * The composition root of a manager: validates `new OnceTaskManager()`'s options, resolves
 * their defaults, and builds the parts the public methods delegate to, wired to one another.
 */

/** What one manager is made of. */
export interface ManagerParts {
  /** The environment this manager works in. */
  env: string;
  /** The task collection's name. */
  collection: string;
  /** This process's identity in leases. */
  workerId: string;
  clock: Clock;
  store: TaskStore;
  creation: TaskCreation;
  pool: WorkerPool;
  reads: TaskReads;
  waiting: TaskWaiting;
  pauses: Pauses;
  schedules: ScheduleAdmin;
  admin: TaskAdmin;
}

/** The manager's own reads the queue gauges refresh from (`queueMetricsIntervalMs`). */
export type GaugeReads = Pick<QueueSource, 'countByStatus' | 'queueDepth'>;

/** Validates the options (throwing {@link InvalidOptionsError}) and builds the manager's parts. */
export function setUpManager(options: OnceTaskManagerOptions, gaugeReads: GaugeReads): ManagerParts {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionsError('OnceTaskManager: expected an options object');
  assertKnownOptions(options, MANAGER_OPTIONS, 'OnceTaskManager');
  const { firestore: givenFirestore, backend, logger: givenLogger, clock: givenClock, hooks: givenHooks, ...rest } = options;
  if (givenClock !== undefined && typeof givenClock !== 'function') throw new InvalidOptionsError('OnceTaskManager: option "clock" must be a function returning ms since the epoch');
  if (givenFirestore !== undefined && backend !== undefined) throw new InvalidOptionsError('OnceTaskManager: pass either "firestore" or "backend", not both');
  const inMemory = backend !== undefined;
  const firestore = inMemory ? databaseOf(backend) : givenFirestore;
  if (inMemory && firestore === undefined) throw new InvalidOptionsError('OnceTaskManager: option "backend" must be made by memoryBackend()');
  if (typeof firestore !== 'object' || firestore === null || typeof firestore.collection !== 'function') {
    throw new InvalidOptionsError('OnceTaskManager: option "firestore" must be a Firestore instance (or pass "backend": memoryBackend())');
  }
  const parsed = parseOptions(managerOptionsSchema, rest, 'OnceTaskManager');
  const env = parsed.env ?? parseOptions(managerOptionsSchema, { env: process.env.ONCE_TASK_ENV || 'default' }, 'ONCE_TASK_ENV').env!;
  const collection = parsed.collection ?? 'onceTasks';
  const workerId = parsed.workerId ?? newWorkerId(hostname());
  const retentionMs = parsed.retentionMs ?? DEFAULT_RETENTION_MS;
  const retention: Retention = { retentionMs, failedRetentionMs: parsed.failedRetentionMs ?? (retentionMs > 0 ? retentionMs : DEFAULT_RETENTION_MS) };
  const sweepIntervalMs = parsed.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
  // 'auto': listen in production; poll on the emulator, whose listeners scan the collection per commit.
  const auto = parsed.listen === 'auto' || parsed.listen === undefined;
  const onEmulator = !inMemory && Boolean(process.env.FIRESTORE_EMULATOR_HOST);
  const listen = auto ? !onEmulator : parsed.listen === true;
  const listenerRoleMs = parsed.listenerRoleMs ?? DEFAULT_LISTENER_ROLE_MS;
  const pollIntervalMs = parsed.pollIntervalMs ?? (auto && onEmulator ? DEFAULT_EMULATOR_POLL_INTERVAL_MS : DEFAULT_POLL_INTERVAL_MS);
  const logger = (givenLogger ?? defaultLogger()).child({ env, workerId });
  const clock = givenClock ?? systemClock;
  const maxClockSkewMs = parsed.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;
  const batching = parsed.writeBatching === false ? { windowMs: 0, maxWrites: 1 } : { ...DEFAULT_WRITE_BATCHING, ...parsed.writeBatching };

  const workers = new Map<string, KindWorker<z.ZodType>>();
  const local = new LocalWake(collection, env);
  const store = new TaskStore(firestore, collection, env, parsed.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS, batching, parsed.shards ?? 1);
  const controlStore = new ControlStore(store);
  const control = new ProcessControl(controlStore, workerId, clock, logger, (docId) => {
    for (const worker of workers.values()) void worker.cancelPosted(docId);
  });
  const pauses = new Pauses(controlStore, control, clock);
  const admin = new TaskAdmin(store, retention.retentionMs, clock, {
    postCancel: (holder, docId) => {
      // The holder sees the request at its next renewal anyway; the inbox makes it immediate.
      if (holder === workerId) return;
      controlStore.postCancel(holder, docId, new Date(clock())).catch((err: unknown) => logger.warn({ err, docId }, 'oncetask: could not post the cancellation to the worker running the task; it sees it at its next lease renewal'));
    },
    wake: (kind) => local.wake(kind),
    cancelLocal: (kind, docId) => workers.get(kind)?.cancelLocal(docId),
    endsCancelledAtOnce: (kind) => {
      const worker = workers.get(kind);
      return worker !== undefined && !worker.hasCancelHandler;
    },
  });
  const reads = new TaskReads(store, logger);
  const schedules = new ScheduleAdmin(store, clock, {
    wake: (kind) => local.wake(kind),
    missing: async (id) => {
      await admin.assertNotElsewhere(id);
      throw new TaskNotFoundError(id, env);
    },
  });
  const hooks = new HookRunner(checkHooks(givenHooks), parsed.hookTimeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS, logger);
  const telemetry = new Telemetry(env, parsed.traceParenting ?? 'link');
  store.ops.observer = (type, count) => telemetry.firestoreOperations(type, count);
  const gaugeMs = parsed.queueMetricsIntervalMs ?? 0;
  const gauges =
    gaugeMs > 0
      ? new QueueGauges(
          { kinds: () => [...workers.keys()], countByStatus: (kind) => gaugeReads.countByStatus(kind), queueDepth: (kind) => gaugeReads.queueDepth(kind), now: clock },
          env,
          gaugeMs,
          logger,
        )
      : null;
  const pool = new WorkerPool(
    { store, workerId, retention, logger, pollIntervalMs, sweepIntervalMs, listen, listenerRoleMs, clock, maxClockSkewMs, hooks, telemetry, control, gauges, wake: local },
    workers,
  );
  const creation = new TaskCreation(env, store, clock, telemetry, local);
  const waiting = new TaskWaiting(store, env, logger);
  return { env, collection, workerId, clock, store, creation, pool, reads, waiting, pauses, schedules, admin };
}
