import { z } from 'zod';
import { InvalidOptionsError } from './errors.js';
import { assertKnownOptions, optionNames } from './known-options.js';
import type { GroupHandlerOptions, HandlerOptions } from './handlers.js';
import type { CreateManyOptions, CreateOptions, OnceTaskManagerOptions, StopOptions, WaitForOptions } from './manager-options.js';
import type { TaskHooks } from './worker/hooks.js';
import { MAX_SHARDS } from './store/shards.js';
import { assertRetryPolicy, exponentialBackoff } from './retry.js';
import type { ResolvedHandlerOptions } from './handlers.js';
import type { RetryPolicy } from './retry.js';

/**
 * Validation and defaults of every option object the public API takes. A bad option fails
 * with {@link InvalidOptionsError} naming the option, before anything is written or started.
 */

/** Default lease: long enough for most handlers; renewed at a third of it while they run. */
export const DEFAULT_LEASE_MS = 10 * 60_000;
/** Default retention of terminal tasks before the TTL policy may delete them. */
export const DEFAULT_RETENTION_MS = 30 * 24 * 3600_000;
/** Default idle poll interval without a listener, and re-check interval behind busy keys. */
export const DEFAULT_POLL_INTERVAL_MS = 1000;
/** Default idle poll interval on the emulator, where `listen: 'auto'` polls. */
export const DEFAULT_EMULATOR_POLL_INTERVAL_MS = 250;
/** Default safety sweep of a listening idle worker. */
export const DEFAULT_SWEEP_INTERVAL_MS = 5 * 60_000;
/** Default lease of a kind's listener role (one listening process per kind). */
export const DEFAULT_LISTENER_ROLE_MS = 30_000;
/** Default grace period of `stop()`: fits inside Cloud Run's 10 s between SIGTERM and SIGKILL. */
export const DEFAULT_GRACE_MS = 5000;

const ENV_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const COLLECTION_PATTERN = /^[A-Za-z0-9_-]{1,100}$/;

const positiveMs = z.number().finite().positive();

/** Options of `new OnceTaskManager()` beyond the Firestore instance, as validated. */
export const managerOptionsSchema = z.object({
  env: z.string().regex(ENV_PATTERN, 'must be 1-64 letters, digits, "_", "-", "."').optional(),
  collection: z.string().regex(COLLECTION_PATTERN, 'must be 1-100 letters, digits, "_", "-"').optional(),
  retentionMs: z.number().finite().min(0).optional(),
  failedRetentionMs: z.number().finite().min(0).optional(),
  pollIntervalMs: z.number().finite().min(10).optional(),
  sweepIntervalMs: z.number().finite().min(10).optional(),
  listen: z.union([z.boolean(), z.literal('auto')]).optional(),
  listenerRoleMs: z.union([z.literal(0), z.number().finite().min(1000).max(3_600_000)]).optional(),
  workerId: z.string().min(1).max(200).optional(),
  maxClockSkewMs: z.number().finite().min(0).max(3_600_000).optional(),
  callTimeoutMs: z.number().finite().min(100).optional(),
  hookTimeoutMs: z.number().finite().min(1).max(600_000).optional(),
  traceParenting: z.enum(['link', 'child']).optional(),
  queueMetricsIntervalMs: z.union([z.literal(0), z.number().finite().min(1000)]).optional(),
  shards: z.number().int().min(1).max(MAX_SHARDS).optional(),
  writeBatching: z
    .union([z.literal(false), z.object({ windowMs: z.number().finite().min(0).max(1000).optional(), maxWrites: z.number().int().min(1).max(500).optional() }).strict()])
    .optional(),
});

const handlerOptionsSchema = z.object({
  retry: z.unknown().optional(),
  cancelRetry: z.unknown().optional(),
  onCancel: z.custom<(...args: never[]) => unknown>((v) => typeof v === 'function', 'must be a function').optional(),
  leaseMs: z.number().finite().min(100).optional(),
  concurrency: z.number().int().min(1).max(1000).optional(),
  timeoutMs: positiveMs.optional(),
  maxBatchSize: z.number().int().min(1).max(500).optional(),
  cooldownMs: z.number().finite().min(0).optional(),
});

/** Default `onCancel` retry policy: 5 attempts, backoff capped at 10 minutes. */
export const DEFAULT_CANCEL_RETRY = { maxAttempts: 5, maxMs: 10 * 60_000 } as const;
/** Default most tasks per grouped handler call. */
export const DEFAULT_MAX_BATCH_SIZE = 100;

/** Throws {@link InvalidOptionsError} naming the first bad option. */
export function parseOptions<T extends z.ZodType>(schema: T, value: unknown, where: string): z.output<T> {
  const parsed = schema.safeParse(value ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const path = issue?.path.map(String).join('.') ?? '';
  throw new InvalidOptionsError(`${where}: ${path === '' ? 'options' : `option "${path}"`}: ${issue?.message ?? 'invalid'}`);
}

const HANDLER_OPTIONS = optionNames<HandlerOptions>()(['retry', 'cancelRetry', 'onCancel', 'leaseMs', 'concurrency', 'timeoutMs', 'cooldownMs']);
const GROUP_HANDLER_OPTIONS = optionNames<GroupHandlerOptions>()([...HANDLER_OPTIONS as HandlerOptionName[], 'maxBatchSize']);
type HandlerOptionName = keyof HandlerOptions;

/** Validates `handle()` / `handleGroup()` options (`grouped`: the latter's) and applies defaults. */
export function resolveHandlerOptions(value: unknown, where: string, grouped = true): ResolvedHandlerOptions {
  assertKnownOptions(value, grouped ? GROUP_HANDLER_OPTIONS : HANDLER_OPTIONS, where);
  const options = parseOptions(handlerOptionsSchema, value, where);
  const retry: RetryPolicy = (options.retry as RetryPolicy | undefined) ?? exponentialBackoff();
  assertRetryPolicy(retry, `${where}: option "retry"`);
  const cancelRetry: RetryPolicy = (options.cancelRetry as RetryPolicy | undefined) ?? exponentialBackoff(DEFAULT_CANCEL_RETRY);
  assertRetryPolicy(cancelRetry, `${where}: option "cancelRetry"`);
  return {
    retry,
    cancelRetry,
    leaseMs: options.leaseMs ?? DEFAULT_LEASE_MS,
    concurrency: options.concurrency ?? 1,
    timeoutMs: options.timeoutMs,
    maxBatchSize: options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE,
    cooldownMs: options.cooldownMs ?? 0,
  };
}

/** Checks a `Date` option. */
export function assertDate(value: unknown, name: string): asserts value is Date {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw new InvalidOptionsError(`option "${name}" must be a valid Date`);
  }
}

/** The option names each public method knows (checked against its options type at compile time). */
export const MANAGER_OPTIONS = optionNames<OnceTaskManagerOptions>()([
  'firestore', 'backend', 'env', 'collection', 'shards', 'logger', 'retentionMs', 'failedRetentionMs', 'listen', 'listenerRoleMs',
  'pollIntervalMs', 'sweepIntervalMs', 'workerId', 'clock', 'maxClockSkewMs', 'callTimeoutMs', 'writeBatching', 'hooks', 'hookTimeoutMs', 'traceParenting', 'queueMetricsIntervalMs',
]);
const HOOK_NAMES = optionNames<TaskHooks>()(['beforeRun', 'onTaskFailed', 'onTaskSettled']);

/** Checks the `hooks` option: an object of functions with known names. */
export function checkHooks(hooks: unknown): TaskHooks {
  if (hooks === undefined) return {};
  if (typeof hooks !== 'object' || hooks === null) throw new InvalidOptionsError('OnceTaskManager: option "hooks" must be an object');
  assertKnownOptions(hooks, HOOK_NAMES, 'OnceTaskManager: option "hooks"');
  for (const [name, hook] of Object.entries(hooks)) {
    if (hook !== undefined && typeof hook !== 'function') throw new InvalidOptionsError(`OnceTaskManager: hook "${name}" must be a function`);
  }
  return hooks as TaskHooks;
}
export const CREATE_OPTIONS = optionNames<CreateOptions>()(['waitUntil', 'transaction', 'batch', 'recurrence', 'labels', 'priority']);
export const CREATE_MANY_OPTIONS = optionNames<CreateManyOptions>()(['waitUntil', 'labels', 'priority']);
export const WAIT_FOR_OPTIONS = optionNames<WaitForOptions>()(['timeoutMs', 'signal']);
export const STOP_OPTIONS = optionNames<StopOptions>()(['graceMs']);
export const LIMIT_OPTIONS = optionNames<{ limit?: number }>()(['limit']);
