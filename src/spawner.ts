import { MalformedTaskError, toError } from './errors.js';
import type { OnceTaskLogger } from './logger.js';
import { planSpawn, type SpawnPlan } from './recurrence.js';
import type { ConditionalWrite, TaskFields, TaskStore, VersionedTask } from './store/task-store.js';
import { newTaskFields } from './task-document.js';

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
    let plan: SpawnPlan;
    try {
      if (!task.recurrence || !task.series) throw new Error('generator without a schedule');
      plan = planSpawn(task.recurrence, task.series, now, task.waitUntil);
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
    const generator: TaskFields = plan.next
      ? { waitUntil: plan.next.at, series: plan.next.cursor, updatedAt: now }
      : this.ended('succeeded', now);
    // One document per slot instant, never two creates of one document in a commit.
    const occurrences = [...new Map(plan.spawn.map((slot) => [slot.getTime(), { id: occurrenceId(task.id, slot), slot }])).values()];
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

  private ended(status: 'succeeded' | 'failed', now: Date): TaskFields {
    return { status, lease: null, doneAt: now, expireAt: new Date(now.getTime() + this.retentionMs), updatedAt: now };
  }
}
