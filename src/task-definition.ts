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
  if (input.resourceKey !== undefined && typeof input.resourceKey !== 'function') {
    throw new InvalidOptionsError(`defineTask(${input.kind}): resourceKey must be a function`);
  }
  return Object.freeze({ ...input, __oncetask: 'TaskDefinition' as const });
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
