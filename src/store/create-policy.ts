import { randomUUID } from 'node:crypto';
import type { DocumentData, DocumentReference, Timestamp } from '@google-cloud/firestore';
import { queuePosition } from '../priority.js';
import { TERMINAL_STATUSES, type DecodeResult, type StoredTask } from '../task-document.js';
import { publicTimeout, type ConditionalWriter, type CurrentDocument, type TaskFields } from './conditional-writer.js';
import { CREATE_NONCE } from './task-creator.js';

/**
 * Creates of `throttle` and `debounce` kinds (see their JSDoc in src/task-definition.ts): a
 * create that may also replace a finished task of its ID, or move a pending one. No
 * transaction: every write is conditional on the version read (a create on the document being
 * `absent`), and a refused one reads the document again and decides again, so two processes
 * creating one ID at once end with one task and the right outcome for each. Each write stamps
 * a witness of its own (a fresh `createNonce` for a new or replacing task, `debounceId` for a
 * move), so a write whose answer was lost is still recognised as ours and reports its outcome.
 *
 * Cost of one create: a new ID 1 write; an existing one a refused create (not billed) and
 * 1 read, plus 1 write if it replaces or moves the task; each lost race adds a read and a write.
 */

/** How a kind's creates treat an existing task of the same ID. */
export type CreatePolicy = { kind: 'throttle'; windowMs: number } | { kind: 'debounce'; delayMs: number; maxDelayMs: number | null };

/** What a policy create did (the public `CreateOutcome`). */
export type PolicyOutcome = 'created' | 'exists' | 'throttled' | 'debounced';

/** Field stamped by a debounce move (and by nothing else): the witness of an ambiguous move. */
export const DEBOUNCE_ID = 'debounceId';

/** Rounds of read-decide-write before giving up on a document that keeps changing. */
const MAX_ROUNDS = 20;

/** What the policy creator uses of its store. */
export interface PolicyAccess {
  ref(docId: string): DocumentReference;
  decode(raw: DocumentData | undefined): DecodeResult;
  readonly writer: ConditionalWriter;
}

/** The decision about an existing task. */
type Step = { type: 'noop'; outcome: PolicyOutcome } | { type: 'replace' } | { type: 'move'; fields: TaskFields };

export class PolicyCreator {
  constructor(private readonly access: PolicyAccess) {}

  /**
   * Creates task `id` (document `docId`) from `fields` (a new task's, shard included) under
   * `policy`, at wall time `now` (the caller's clock: throttle windows and debounce delays are
   * measured on it). Returns the outcome and, when a task was written anew, what was written
   * with its version (for a local worker to claim without reading it).
   */
  async create(docId: string, id: string, fields: TaskFields, policy: CreatePolicy, now: Date): Promise<{ outcome: PolicyOutcome; written: { fields: TaskFields; updateTime: Timestamp } | null }> {
    const what = `create "${id}"`;
    const fresh = policy.kind === 'debounce' ? debouncedNew(fields, policy, now) : fields;
    const ref = this.access.ref(docId);
    // null: not known to exist (try to create it); else the document as last read.
    let current: CurrentDocument | null = null;
    try {
      for (let round = 0; round < MAX_ROUNDS; round++) {
        if (current === null) {
          const nonce = randomUUID();
          const write = { ...fresh, [CREATE_NONCE]: nonce };
          const result = await this.access.writer.commit([{ ref, fields: write, precondition: 'absent' }], { witness: (d) => d[CREATE_NONCE] === nonce, what });
          if (Array.isArray(result)) return { outcome: 'created', written: { fields: write, updateTime: result[0]! } };
          current = result.current; // it exists (as read back); null: gone again, so create again
          continue;
        }
        const decoded = this.access.decode(current.data);
        // A document that is not a task of ours is left alone, as a plain create leaves it.
        if (!decoded.ok) return { outcome: 'exists', written: null };
        const step = decide(decoded.task, fresh, policy, now);
        if (step.type === 'noop') return { outcome: step.outcome, written: null };
        const mark = randomUUID();
        const write = step.type === 'replace' ? { ...fresh, [CREATE_NONCE]: mark } : { ...step.fields, [DEBOUNCE_ID]: mark };
        const field = step.type === 'replace' ? CREATE_NONCE : DEBOUNCE_ID;
        const result = await this.access.writer.commit([{ ref, fields: write, precondition: current.updateTime }], { witness: (d) => d[field] === mark, what });
        if (Array.isArray(result)) return step.type === 'replace' ? { outcome: 'created', written: { fields: write, updateTime: result[0]! } } : { outcome: 'debounced', written: null };
        // Changed since (read back: decide again on it) or deleted (create it).
        current = result.reason === 'missing' ? null : result.current;
      }
    } catch (err) {
      throw publicTimeout(err, what);
    }
    throw new Error(`task "${id}" kept changing while being created`);
  }
}

/** A debounce kind's new task: due `delayMs` from now, its first create now. */
function debouncedNew(fields: TaskFields, policy: Extract<CreatePolicy, { kind: 'debounce' }>, now: Date): TaskFields {
  const priority = typeof fields.priority === 'number' ? fields.priority : 0;
  const position = queuePosition(new Date(now.getTime() + policy.delayMs), priority, now.getTime());
  return { ...fields, waitUntil: position.waitUntil, notBefore: position.notBefore, debounceFirstAt: now };
}

/** What a create of `policy` does to the existing `task`, given the new task's `fresh` fields. */
function decide(task: StoredTask, fresh: TaskFields, policy: CreatePolicy, now: Date): Step {
  const finished = TERMINAL_STATUSES.includes(task.status);
  if (policy.kind === 'throttle') {
    // Within the window (a clock behind the creator's counts as within): a no-op whatever the status.
    if (now.getTime() - task.createdAt.getTime() < policy.windowMs) return { type: 'noop', outcome: 'throttled' };
    return finished ? { type: 'replace' } : { type: 'noop', outcome: 'exists' };
  }
  // Debounce: a pending task that has not started (no attempt, or its only one handed back).
  if (task.status === 'pending' && task.attempts === 0 && !task.cancelRequested && task.recurrence === null) {
    const firstAt = (task.debounceFirstAt ?? task.createdAt).getTime();
    let due = now.getTime() + policy.delayMs;
    if (policy.maxDelayMs !== null) due = Math.min(due, firstAt + policy.maxDelayMs);
    const position = queuePosition(new Date(due), task.priority, now.getTime());
    return {
      type: 'move',
      fields: { data: fresh.data, waitUntil: position.waitUntil, notBefore: position.notBefore, updatedAt: now, traceContext: fresh.traceContext ?? null, debounceFirstAt: new Date(firstAt) },
    };
  }
  return finished ? { type: 'replace' } : { type: 'noop', outcome: 'exists' };
}
