import type { Clock } from '../clock.js';
import type { LeaseProtocol } from '../lease/protocol.js';
import type { OnceTaskLogger } from '../logger.js';
import type { TaskStore } from '../store/task-store.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import type { HookRunner } from './hooks.js';
import type { ProcessControl } from './process-control.js';

/** Settings shared by every worker of a manager. */
export interface WorkerSettings {
  store: TaskStore;
  protocol: LeaseProtocol;
  logger: OnceTaskLogger;
  /** Wake up through a listener on the queue head instead of polling. */
  listen: boolean;
  /** With `listen`: the lease of the kind's listener role (one listening process at a time, see `ListenerRole`); 0: every process listens. */
  listenerRoleMs: number;
  /** Without a listener: longest idle sleep. With one: re-check interval while due tasks wait behind busy keys. */
  pollIntervalMs: number;
  /** With a listener: longest idle sleep (a safety sweep for anything the listener missed). */
  sweepIntervalMs: number;
  /** How long finished tasks are kept before TTL deletion. */
  retentionMs: number;
  /** Wall time of this process. */
  clock: Clock;
  /** A lease (or key lock) counts as expired for a claimer only this long after its stored expiry. */
  maxClockSkewMs: number;
  /** The manager's hooks around attempts. */
  hooks: HookRunner;
  /** The manager's OpenTelemetry instruments. */
  telemetry: Telemetry;
  /** The manager's control listeners: pauses (no claims while paused) and posted cancellations. */
  control: ProcessControl;
}

