import { MalformedTaskError, toError } from '../errors.js';
import type { OnceTaskLogger } from '../logger.js';
import { planSpawn, type SpawnPlan } from './spawn-plan.js';
import type { ConditionalWrite, TaskFields, TaskStore, VersionedTask } from '../store/task-store.js';
import { GENERATOR_MARKER, newTaskFields, OPEN_STATUSES } from '../task-document.js';

/**
 * Spawning of recurring tasks. A due generator creates the occurrence task(s) of its due
 * slot(s) and moves itself to its next slot in ONE atomic commit, conditional on the version it
 * was read at: two workers spawning the same slot produce one occurrence, and a crash can never
 * leave an occurrence without the generator having moved (or the reverse).
 */

/** The ID of a generator's occurrence for a slot. */
export function occurrenceId(generatorId: string, slot: Date): string {
  return `${generatorId}_occ_${slot.toISOString()}`;
}

/**
 * Where a paused generator waits in the queue: beyond any real slot, so no worker finds it due
 * (its real due time is kept in `paused.dueAt`). A valid Firestore Timestamp.
 */
export const PAUSED_UNTIL = new Date('9999-01-01T00:00:00.000Z');

export class Spawner {
  constructor(
    private readonly store: TaskStore,
    /** How long a finished generator is kept before TTL deletion. */
    private readonly retentionMs: number,
    private readonly log: OnceTaskLogger,
    /** Wall time of this process. */
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Spawns what a due generator owes now. `moved` when the generator moved on (or ended);
   * `conflict` when another worker changed it first.
   */
  async spawn(candidate: VersionedTask): Promise<'moved' | 'conflict'> {
    const { task, docId, updateTime } = candidate;
    const now = new Date(this.clock());
    if (task.paused !== null) {
      // Paused (and made due by hand, e.g. retryNow): spawn nothing, park it again.
      const parked = await this.store.updateIfUnchanged(docId, { waitUntil: PAUSED_UNTIL, notBefore: null, [GENERATOR_MARKER]: true, updatedAt: now }, updateTime);
      return parked.ok ? 'moved' : 'conflict';
    }
    let plan: SpawnPlan;
    try {
      if (!task.recurrence || !task.series) throw new Error('generator without a schedule');
      // The due time: a generator's queue position is its slot, unless an older write shifted it.
      plan = planSpawn(task.recurrence, task.series, now, task.notBefore ?? task.waitUntil);
    } catch (err) {
      // A stored schedule that cannot be read: fail the generator instead of retrying forever.
      const error = new MalformedTaskError(docId, `recurrence: ${toError(err).message}`);
      this.log.error({ taskId: task.id, err: error }, 'oncetask: generator has an unreadable schedule; failed');
      const written = await this.store.updateIfUnchanged(
        docId,
        { ...this.ended('failed', now), errors: [{ at: now, attempt: 0, message: error.message, code: error.code, stack: null }], errorCount: task.errorCount + 1 },
        updateTime,
      );
      return written.ok ? 'moved' : 'conflict';
    }
    let slots = plan.spawn;
    if (slots.length > 0 && task.recurrence.overlap === 'skip' && task.lastSpawn !== null && (await this.isOpen(task.lastSpawn.occurrenceId))) {
      // The previous occurrence is still open: skip the slot(s), but move past them.
      this.log.debug({ taskId: task.id, open: task.lastSpawn.occurrenceId, skipped: slots.map((s) => s.toISOString()) }, 'oncetask: generator skipped a slot (overlap "skip")');
      slots = [];
    }
    const generator: TaskFields = {
      ...(plan.next ? { waitUntil: plan.next.at, notBefore: null, series: plan.next.cursor, updatedAt: now } : this.ended('succeeded', now)),
      [GENERATOR_MARKER]: true,
    };
    // One document per slot instant, never two creates of one document in a commit.
    const occurrences = [...new Map(slots.map((slot) => [slot.getTime(), { id: occurrenceId(task.id, slot), slot }])).values()];
    const newest = occurrences[occurrences.length - 1];
    // The generator remembers its newest occurrence in the same commit (overlap checks, listSchedules).
    if (newest) generator.lastSpawn = { slot: newest.slot, at: now, occurrenceId: newest.id };
    let skip = new Set<string>();
    for (let round = 0; round < 2; round++) {
      const writes: ConditionalWrite[] = [
        { target: 'task', docId, fields: generator, precondition: updateTime },
        ...occurrences
          .filter((o) => !skip.has(o.id))
          .map((o): ConditionalWrite => ({
            target: 'task',
            docId: this.store.docId(o.id),
            precondition: 'absent',
            fields: newTaskFields({
              id: o.id,
              kind: task.kind,
              env: task.env,
              data: task.data,
              resourceKey: task.resourceKey,
              waitUntil: o.slot,
              occurrence: { generatorId: task.id, slot: o.slot },
              priority: task.priority,
              labels: task.labels,
              now,
            }),
          })),
      ];
      const result = await this.store.commitConditionalDetailed(writes);
      if (Array.isArray(result)) {
        this.log.debug({ taskId: task.id, spawned: occurrences.length - skip.size, next: plan.next?.at ?? null }, 'oncetask: generator spawned');
        return 'moved';
      }
      if (result === 'conflict') return 'conflict';
      // An occurrence exists already (spawned earlier, or created by hand): spawn the rest.
      skip = await this.store.existing(occurrences.map((o) => o.id));
    }
    return 'conflict';
  }

  /** Whether a task is open (pending, running, cancelling): one read. Absent or malformed: not open. */
  private async isOpen(id: string): Promise<boolean> {
    const [found] = await this.store.getMany([id]);
    return found !== null && found !== undefined && found.ok && OPEN_STATUSES.includes(found.task.status);
  }

  private ended(status: 'succeeded' | 'failed', now: Date): TaskFields {
    return { status, lease: null, doneAt: now, expireAt: new Date(now.getTime() + this.retentionMs), updatedAt: now };
  }
}
