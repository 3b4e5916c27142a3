import type { z } from 'zod';
import { InvalidIdError, InvalidOptionsError, InvalidPayloadError, type ValidationIssue } from './errors.js';

/** What {@link defineTask} takes. */
export interface TaskDefinitionInput<S extends z.ZodType> {
  /** Name of the kind; stored on every task. Letters, digits, `_`, `-`, `.`, `:`; at most 100 chars. */
  kind: string;
  /** zod schema of the payload. Checked at create time and again when a worker claims the task. */
  schema: S;
  /**
   * Deterministic idempotent ID from the (parsed) payload: creating a task whose ID exists
   * already is a no-op. Must not contain `/`; at most 500 bytes.
   */
  id: (data: z.output<S>) => string;
  /**
   * Optional resource key: tasks of one kind and environment that share a key never run at the
   * same time, in any number of processes; within a key they start in queue order.
   */
  resourceKey?: (data: z.output<S>) => string;
  /** Labels of each task, from its payload (merged under a `labels` option of `create`); at most 10. */
  labels?: (data: z.output<S>) => Record<string, string>;
  /** Priority of each task (0-1000, higher runs sooner among due tasks; a `priority` option of `create` wins). */
  priority?: (data: z.output<S>) => number;
  /**
   * With a `resourceKey`: a key's tasks run strictly in queue order (pg-boss's `key_strict_fifo`):
   * a failed attempt that will be retried blocks its key until that task succeeds or fails for
   * good. Default false (a retry waits while the key's later tasks run).
   */
  strictOrder?: boolean;
  /**
   * At most one task per ID per window: a `create` of an ID whose task was created less than
   * `windowMs` ago is a no-op (`outcome: 'throttled'`); after the window a finished task of
   * the ID is replaced by a new one. Not with `debounce`.
   */
  throttle?: { windowMs: number };
  /**
   * A `create` of an ID whose task is still pending (not started) moves its due time to
   * `delayMs` from now and replaces its payload (`outcome: 'debounced'`), but never past
   * `maxDelayMs` after the first of those creates. A new task is due `delayMs` after its create.
   * While the task runs, creates of its ID are no-ops (`outcome: 'exists'`). Not with `throttle`.
   * Also `'exists'`: a pending task that has started before (a retry waiting) or is cancelling.
   * A create of an ID whose task has finished (succeeded, failed, cancelled) replaces it by a new
   * task (`outcome: 'created'`). Only the payload moves with a debounce; the resource key,
   * labels and priority stay those of the task's first create.
   */
  debounce?: { delayMs: number; maxDelayMs?: number };
}

/** A typed task kind, made by {@link defineTask}. Pass it to `create` and `handle`. */
export interface TaskDefinition<S extends z.ZodType = z.ZodType> extends Readonly<TaskDefinitionInput<S>> {
  /** Brand so plain objects are not mistaken for definitions. */
  readonly __oncetask: 'TaskDefinition';
}

/** Payload type accepted by `create` for a definition. */
export type TaskInput<D> = D extends TaskDefinition<infer S> ? z.input<S> : never;
/** Payload type a handler receives for a definition. */
export type TaskData<D> = D extends TaskDefinition<infer S> ? z.output<S> : never;

const KIND_PATTERN = /^[A-Za-z0-9_.:-]{1,100}$/;

/**
 * Defines a typed task kind.
 *
 * @example
 * const sendEmail = defineTask({
 *   kind: 'send-email',
 *   schema: z.object({ to: z.string().email(), template: z.string() }),
 *   id: (d) => `welcome:${d.to}`,
 * });
 */
export function defineTask<S extends z.ZodType>(input: TaskDefinitionInput<S>): TaskDefinition<S> {
  if (typeof input !== 'object' || input === null) throw new InvalidOptionsError('defineTask: expected an options object');
  if (typeof input.kind !== 'string' || !KIND_PATTERN.test(input.kind)) {
    throw new InvalidOptionsError(
      `defineTask: kind must be 1-100 characters of letters, digits, "_", "-", ".", ":" (got ${JSON.stringify(input.kind)})`,
    );
  }
  if (typeof input.schema !== 'object' || input.schema === null || typeof input.schema.safeParse !== 'function') {
    throw new InvalidOptionsError(`defineTask(${input.kind}): schema must be a zod schema`);
  }
  if (typeof input.id !== 'function') throw new InvalidOptionsError(`defineTask(${input.kind}): id must be a function`);
  for (const fn of ['resourceKey', 'labels', 'priority'] as const) {
    if (input[fn] !== undefined && typeof input[fn] !== 'function') throw new InvalidOptionsError(`defineTask(${input.kind}): ${fn} must be a function`);
  }
  if (input.strictOrder !== undefined && typeof input.strictOrder !== 'boolean') throw new InvalidOptionsError(`defineTask(${input.kind}): strictOrder must be a boolean`);
  if (input.strictOrder && input.resourceKey === undefined) throw new InvalidOptionsError(`defineTask(${input.kind}): strictOrder needs a resourceKey`);
  if (input.throttle !== undefined && input.debounce !== undefined) throw new InvalidOptionsError(`defineTask(${input.kind}): pass throttle or debounce, not both`);
  if (input.throttle !== undefined && !(typeof input.throttle === 'object' && input.throttle !== null && isPositiveMs(input.throttle.windowMs))) {
    throw new InvalidOptionsError(`defineTask(${input.kind}): throttle.windowMs must be a positive number of ms`);
  }
  if (input.debounce !== undefined) {
    const d = input.debounce as { delayMs?: unknown; maxDelayMs?: unknown } | null;
    if (typeof d !== 'object' || d === null || !isPositiveMs(d.delayMs) || (d.maxDelayMs !== undefined && (!isPositiveMs(d.maxDelayMs) || d.maxDelayMs < d.delayMs))) {
      throw new InvalidOptionsError(`defineTask(${input.kind}): debounce needs delayMs > 0 and, if given, maxDelayMs >= delayMs`);
    }
  }
  return Object.freeze({ ...input, __oncetask: 'TaskDefinition' as const });
}

function isPositiveMs(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0;
}

/** True when `value` was made by {@link defineTask}. */
export function isTaskDefinition(value: unknown): value is TaskDefinition {
  return typeof value === 'object' && value !== null && (value as { __oncetask?: unknown }).__oncetask === 'TaskDefinition';
}

/** A kind named by its definition or by its name; throws {@link InvalidOptionsError} (`where` leads the message) for anything else. */
export function kindOf(value: unknown, where: string): string {
  if (typeof value === 'string' && value.length > 0) return value;
  if (isTaskDefinition(value)) return value.kind;
  throw new InvalidOptionsError(`${where}: expected a task definition or kind name`);
}

/** Parses a payload with the kind's schema, or throws {@link InvalidPayloadError} naming the bad field. */
export function parsePayload<S extends z.ZodType>(def: TaskDefinition<S>, data: unknown): z.output<S> {
  const parsed = def.schema.safeParse(data);
  if (parsed.success) return parsed.data;
  const issues: ValidationIssue[] = parsed.error.issues.map((issue) => ({
    path: issue.path.map(String).join('.'),
    message: issue.message,
  }));
  throw new InvalidPayloadError(def.kind, issues);
}

const MAX_ID_BYTES = 500;

/** Checks an ID from a caller or an `id` function. */
export function assertValidId(id: unknown, what = 'task id'): asserts id is string {
  if (typeof id !== 'string' || id.length === 0) throw new InvalidIdError(`${what} must be a non-empty string`);
  if (id.includes('/')) throw new InvalidIdError(`${what} must not contain "/": ${JSON.stringify(id)}`);
  if (Buffer.byteLength(id) > MAX_ID_BYTES) throw new InvalidIdError(`${what} is longer than ${MAX_ID_BYTES} bytes`);
}

/** Computes and checks the task ID and resource key of a parsed payload. */
export function identify<S extends z.ZodType>(
  def: TaskDefinition<S>,
  parsed: z.output<S>,
): { id: string; resourceKey: string | null } {
  const id = def.id(parsed);
  assertValidId(id, `${def.kind}: id()`);
  let resourceKey: string | null = null;
  if (def.resourceKey) {
    const key = def.resourceKey(parsed);
    if (typeof key !== 'string' || key.length === 0 || Buffer.byteLength(key) > 1000) {
      throw new InvalidIdError(`${def.kind}: resourceKey() must return a non-empty string of at most 1000 bytes`);
    }
    resourceKey = key;
  }
  return { id, resourceKey };
}
