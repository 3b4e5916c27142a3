import type { z } from 'zod';
import { assertDefinition } from '../admin/task-admin.js';
import type { Clock } from '../clock.js';
import { InvalidIdError, InvalidOptionsError, InvalidPayloadError } from '../errors.js';
import { assertKnownOptions } from '../known-options.js';
import { checkLabels } from '../labels.js';
import type { CreateManyOptions, CreateManyResult, CreateOptions, CreateOutcome, CreateResult } from '../manager-options.js';
import { assertDate, CREATE_MANY_OPTIONS, CREATE_OPTIONS } from '../options.js';
import { assertPriority } from '../priority.js';
import { prepareRecurrence, type RecurrenceOptions } from '../schedule/recurrence.js';
import type { CreatePolicy, TaskFields, TaskStore, VersionedTask } from '../store/task-store.js';
import { identify, parsePayload, type TaskDefinition } from '../task-definition.js';
import { newTaskFields } from '../task-document.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import { toFirestoreValue } from '../values.js';
import type { LocalWake } from '../worker/local-wake.js';

/**
 * Creating tasks: validating a payload and its options into a new task's fields, writing them
 * (plainly, in a transaction or batch, or by the kind's throttle or debounce rule) inside the
 * producer's trace, and waking this process's workers of the kind.
 */

/** Longest ID of a recurring generator, so its occurrence IDs stay within 500 bytes. */
const MAX_GENERATOR_ID_BYTES = 470;

/** What {@link TaskCreation.prepare} takes beyond the payload and due time. */
export interface PrepareExtra {
  recurrence?: RecurrenceOptions;
  labels?: Record<string, string>;
  priority?: number;
  now: Date;
  /** The public call, for error messages. */
  where: string;
}

export class TaskCreation {
  constructor(
    /** The environment new tasks belong to. */
    private readonly env: string,
    private readonly store: TaskStore,
    private readonly clock: Clock,
    private readonly telemetry: Telemetry,
    private readonly local: LocalWake,
  ) {}

  /** {@link OnceTaskManager.create}. */
  async create<S extends z.ZodType>(def: TaskDefinition<S>, data: z.input<S>, options: CreateOptions = {}): Promise<CreateResult> {
    assertDefinition(def);
    assertKnownOptions(options, CREATE_OPTIONS, 'create');
    const { transaction, batch, waitUntil, recurrence, labels, priority } = options;
    if (transaction && batch) throw new InvalidOptionsError('create: pass either "transaction" or "batch", not both');
    if (recurrence !== undefined && waitUntil !== undefined) {
      throw new InvalidOptionsError('create: a recurring task starts at its first slot; pass "recurrence" or "waitUntil", not both');
    }
    const policy = creationPolicy(def);
    if (policy) {
      const where = `create(${def.kind})`;
      if (transaction || batch) throw new InvalidOptionsError(`${where}: a ${policy.kind} kind cannot be created in a transaction or batch`);
      if (recurrence !== undefined) throw new InvalidOptionsError(`${where}: a ${policy.kind} kind cannot be recurring`);
      if (policy.kind === 'debounce' && waitUntil !== undefined) throw new InvalidOptionsError(`${where}: a debounce kind is due delayMs after its create; "waitUntil" does not apply`);
    }
    const now = new Date(this.clock());
    const { id, fields } = this.prepare(def, data, waitUntil ?? now, { recurrence, labels, priority, now, where: 'create' });
    let head = null as VersionedTask | null; // (set inside the callback; the cast keeps TypeScript from narrowing it to null)
    const outcome = await this.telemetry.send(def.kind, [id], async (traceContext): Promise<CreateOutcome> => {
      fields.traceContext = traceContext;
      if (policy) {
        const result = await this.store.createWithPolicy(id, fields, policy, now);
        head = result.head;
        return result.outcome;
      }
      if (transaction) return (await this.store.createInTransaction(transaction, id, fields)) ? 'created' : 'exists';
      if (batch) return (await this.store.createInBatch(batch, id, fields)) ? 'created' : 'exists';
      const result = await this.store.create(id, fields);
      head = result?.head ?? null;
      return result !== null ? 'created' : 'exists';
    });
    const created = outcome === 'created';
    // A task due now is handed to local workers as it was written: they claim it without a read.
    if (created) this.local.wake(def.kind, head && head.task.waitUntil.getTime() <= this.clock() && (head.task.notBefore === null || head.task.notBefore.getTime() <= this.clock()) ? head : undefined);
    return { id, created, outcome };
  }

  /** {@link OnceTaskManager.createMany}. */
  async createMany<S extends z.ZodType>(def: TaskDefinition<S>, data: readonly z.input<S>[], options: CreateManyOptions = {}): Promise<CreateManyResult> {
    assertDefinition(def);
    assertKnownOptions(options, CREATE_MANY_OPTIONS, 'createMany');
    if (!Array.isArray(data)) throw new InvalidOptionsError('createMany: data must be an array');
    const policy = creationPolicy(def);
    if (policy?.kind === 'debounce' && options.waitUntil !== undefined) {
      throw new InvalidOptionsError(`createMany(${def.kind}): a debounce kind is due delayMs after its create; "waitUntil" does not apply`);
    }
    const now = new Date(this.clock());
    const waitUntil = options.waitUntil ?? now;
    const items = data.map((item, index) => {
      try {
        return this.prepare(def, item, waitUntil, { labels: options.labels, priority: options.priority, now, where: 'createMany' });
      } catch (err) {
        if (err instanceof InvalidPayloadError) {
          throw new InvalidPayloadError(def.kind, err.issues.map((i) => ({ ...i, path: `[${index}]${i.path ? `.${i.path}` : ''}` })));
        }
        throw err;
      }
    });
    const outcomes = await this.telemetry.send(def.kind, items.map((i) => i.id), async (traceContext): Promise<CreateOutcome[]> => {
      for (const item of items) item.fields.traceContext = traceContext;
      if (policy) return this.store.createManyWithPolicy(items, policy, now);
      return (await this.store.createMany(items)).map((created) => (created ? 'created' : 'exists'));
    });
    const count = (outcome: CreateOutcome): number => outcomes.filter((o) => o === outcome).length;
    const created = count('created');
    if (created > 0) this.local.wake(def.kind);
    return { ids: items.map((i) => i.id), created, throttled: count('throttled'), debounced: count('debounced') };
  }

  /**
   * A new task's ID and fields: the payload parsed by the definition's schema, the labels and
   * priority checked (the option's over the definition's), and, with `recurrence`, its first
   * slot as the due time. Throws before anything is written.
   */
  prepare<S extends z.ZodType>(def: TaskDefinition<S>, data: z.input<S>, waitUntil: Date, extra: PrepareExtra): { id: string; fields: TaskFields } {
    const { recurrence, where } = extra;
    assertDate(waitUntil, 'waitUntil');
    if (extra.priority !== undefined) assertPriority(extra.priority, `${where}: option "priority"`);
    const given = extra.labels === undefined ? {} : checkLabels(extra.labels, `${where}: option "labels"`);
    const parsed = parsePayload(def, data);
    const { id, resourceKey } = identify(def, parsed);
    // The definition's labels, with the option's over them (at most 10 in all).
    const labels = checkLabels({ ...(def.labels ? checkLabels(def.labels(parsed), `${def.kind}: labels()`) : {}), ...given }, `${where}(${def.kind})`);
    let priority = extra.priority;
    if (priority === undefined && def.priority) {
      const fromDefinition = def.priority(parsed);
      assertPriority(fromDefinition, `${def.kind}: priority()`);
      priority = fromDefinition;
    }
    if (recurrence !== undefined && Buffer.byteLength(id) > MAX_GENERATOR_ID_BYTES) {
      // Occurrence IDs append `_occ_<ISO slot>` (29 bytes) and must stay valid IDs.
      throw new InvalidIdError(`${def.kind}: a recurring task's id must be at most ${MAX_GENERATOR_ID_BYTES} bytes`);
    }
    const schedule = recurrence === undefined ? undefined : prepareRecurrence(recurrence, { now: extra.now });
    const fields = newTaskFields({
      id,
      kind: def.kind,
      env: this.env,
      data: toFirestoreValue(data, `${def.kind} payload`),
      resourceKey,
      waitUntil: schedule?.at ?? waitUntil,
      now: extra.now,
      labels,
      priority: priority ?? 0,
      ...(schedule ? { recurrence: { recurrence: schedule.recurrence, series: schedule.cursor } } : {}),
    });
    return { id, fields };
  }
}

/** How a kind's creates treat an existing task of the ID: its `throttle` or `debounce`, else null (a plain create). */
function creationPolicy(def: TaskDefinition): CreatePolicy | null {
  if (def.throttle) return { kind: 'throttle', windowMs: def.throttle.windowMs };
  if (def.debounce) return { kind: 'debounce', delayMs: def.debounce.delayMs, maxDelayMs: def.debounce.maxDelayMs ?? null };
  return null;
}
