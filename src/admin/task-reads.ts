import { assertKnownOptions, optionNames } from '../known-options.js';
import { InvalidOptionsError } from '../errors.js';
import type { OnceTaskLogger } from '../logger.js';
import type { TaskStore } from '../store/task-store.js';
import { assertValidId, kindOf, type TaskDefinition } from '../task-definition.js';
import { TASK_STATUSES, toTaskInfo, type TaskInfo, type TaskStatus } from '../task-document.js';
import { checkLabels } from '../labels.js';

/** Reading tasks for the public API: by ID, listing with a cursor, by key, by generator. */

/** Options of {@link OnceTaskManager.list}. */
export interface ListOptions {
  /** Only this kind (a definition or its name). */
  kind?: TaskDefinition | string;
  /** Only this status. */
  status?: TaskStatus;
  /** Page size, 1-1000. */
  limit: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
  /**
   * Only tasks with all of these labels (`key → value`, as given at create). The first label is
   * the one Firestore queries (over one composite index); further labels, `kind` and `status`
   * are checked by the library while it pages, so put the most selective label first. Cost:
   * with one label and no kind or status, `limit + 1` reads; otherwise at most 10 pages of
   * max(limit + 1, 100) documents (at most 1000 each), i.e. up to 10 × that many reads. When
   * those run out first, the page holds fewer than `limit` tasks (perhaps none) and
   * `nextCursor` continues the scan.
   */
  labels?: Record<string, string>;
}

/** One page of {@link OnceTaskManager.list}, newest first. */
export interface ListPage {
  tasks: TaskInfo[];
  /** Pass as `cursor` for the next page; `null` on the last page. */
  nextCursor: string | null;
  /** Documents of this environment that are not valid tasks (skipped). */
  malformed: { docId: string; reason: string }[];
}

/** How deep a kind's queue is, from {@link OnceTaskManager.queueDepth}. */
export interface QueueDepth {
  /** Pending tasks due now (waiting for a worker). */
  dueNow: number;
  /** Pending tasks due later (a `waitUntil`, a retry's delay, a generator's next slot). */
  scheduled: number;
  running: number;
  cancelling: number;
  /** When the oldest due pending task came due (`null`: none is due); now minus this is the queue's lag. */
  oldestDueAt: Date | null;
}

const LIST_OPTIONS = optionNames<ListOptions>()(['kind', 'status', 'limit', 'cursor', 'labels']);

export class TaskReads {
  constructor(
    private readonly store: TaskStore,
    private readonly logger: OnceTaskLogger,
  ) {}

  /**
   * Tasks per status, of one kind or (`kind` null) of every kind, by COUNT aggregations: one per
   * status, each billed 1 read per 1000 tasks counted (at least 1), so 6 reads for a small queue.
   */
  async countByStatus(kind: string | null): Promise<Record<TaskStatus, number>> {
    const counts = await Promise.all(TASK_STATUSES.map((status) => this.store.listing.countByStatus(kind, status)));
    return Object.fromEntries(TASK_STATUSES.map((status, i) => [status, counts[i]!])) as Record<TaskStatus, number>;
  }

  /**
   * A kind's open tasks by state, without reading the backlog: four COUNT aggregations (pending,
   * pending due now, running, cancelling; each 1 read per 1000 tasks counted, at least 1) and
   * one `limit(1)` query for the oldest due task (1 read).
   */
  async queueDepth(kind: string, now: Date): Promise<QueueDepth> {
    const [pending, dueNow, running, cancelling, head] = await Promise.all([
      this.store.listing.countByStatus(kind, 'pending'),
      this.store.listing.countDue(kind, now),
      this.store.listing.countByStatus(kind, 'running'),
      this.store.listing.countByStatus(kind, 'cancelling'),
      this.store.findClaimable(kind, ['pending'], now, 1),
    ]);
    return { dueNow, scheduled: Math.max(0, pending - dueNow), running, cancelling, oldestDueAt: head.tasks[0]?.task.waitUntil ?? null };
  }

  /** Failed tasks per kind, for the kinds given (one COUNT each), kinds without failures left out, most failures first. */
  async failedKinds(kinds: readonly string[]): Promise<{ kind: string; failed: number }[]> {
    const counts = await Promise.all(kinds.map(async (kind) => ({ kind, failed: await this.store.listing.countByStatus(kind, 'failed') })));
    return counts.filter((c) => c.failed > 0).sort((a, b) => b.failed - a.failed || a.kind.localeCompare(b.kind));
  }

  /** Tasks by ID, in the order given; `null` where absent (or malformed, which is logged). */
  async getMany(ids: readonly string[]): Promise<(TaskInfo | null)[]> {
    if (!Array.isArray(ids)) throw new InvalidOptionsError('getMany: ids must be an array');
    ids.forEach((id) => assertValidId(id));
    const decoded = await this.store.getMany(ids);
    return decoded.map((d, i) => {
      if (d === null) return null;
      if (d.ok) return toTaskInfo(d.task);
      this.logger.warn({ taskId: ids[i], reason: d.reason }, 'oncetask: malformed task document');
      return null;
    });
  }

  /** Lists tasks newest first, optionally by kind, status and labels, a page at a time. */
  async list(options: ListOptions): Promise<ListPage> {
    assertKnownOptions(options, LIST_OPTIONS, 'list');
    const { limit, status, cursor } = options ?? ({} as ListOptions);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new InvalidOptionsError('list: option "limit" must be an integer 1-1000');
    if (status !== undefined && !TASK_STATUSES.includes(status)) {
      throw new InvalidOptionsError(`list: option "status" must be one of ${TASK_STATUSES.join(', ')}`);
    }
    const kind = options.kind === undefined ? undefined : kindOf(options.kind, 'list: option "kind"');
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    if (options.labels !== undefined) {
      const labels = Object.entries(checkLabels(options.labels, 'list: option "labels"'));
      if (labels.length === 0) throw new InvalidOptionsError('list: option "labels" must name at least one label');
      const page = await this.store.listing.listByLabels({ labels, kind, status, limit, after });
      const tasks: TaskInfo[] = [];
      const malformed: ListPage['malformed'] = [];
      for (const item of page.items) {
        if (item.decoded.ok) tasks.push(toTaskInfo(item.decoded.task));
        else malformed.push({ docId: item.docId, reason: item.decoded.reason });
      }
      return { tasks, nextCursor: page.next === null ? null : encodeCursor(page.next.createdAt, page.next.docId), malformed };
    }
    const page = await this.store.listing.list({ kind, status, limit, after });
    const tasks: TaskInfo[] = [];
    const malformed: ListPage['malformed'] = [];
    for (const item of page.items) {
      if (item.decoded.ok) tasks.push(toTaskInfo(item.decoded.task));
      else malformed.push({ docId: item.docId, reason: item.decoded.reason });
    }
    const last = page.items[page.items.length - 1];
    const nextCursor = page.hasMore && last?.createdAt ? encodeCursor(last.createdAt, last.docId) : null;
    return { tasks, nextCursor, malformed };
  }

  /** A resource key's tasks in queue order (due time, then creation order). */
  async listByResourceKey(kind: string, resourceKey: string, options: { limit?: number }): Promise<TaskInfo[]> {
    const limit = options.limit ?? 1000;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new InvalidOptionsError('listByResourceKey: option "limit" must be an integer 1-10000');
    const { tasks } = await this.store.listing.listByResourceKey(kind, resourceKey, limit);
    return tasks.map((t) => toTaskInfo(t.task));
  }

  /** The occurrences a recurring generator has spawned, oldest slot first. */
  async listOccurrences(generatorId: string, options: { limit?: number }): Promise<TaskInfo[]> {
    assertValidId(generatorId);
    const limit = options.limit ?? 1000;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new InvalidOptionsError('listOccurrences: option "limit" must be an integer 1-10000');
    const { tasks } = await this.store.listing.listOccurrences(generatorId, limit);
    return tasks.map((t) => toTaskInfo(t.task));
  }
}

function encodeCursor(createdAt: Date, docId: string): string {
  return Buffer.from(JSON.stringify([createdAt.getTime(), docId])).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: Date; docId: string } {
  try {
    const [ms, docId] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [unknown, unknown];
    if (typeof ms === 'number' && typeof docId === 'string') return { createdAt: new Date(ms), docId };
  } catch {
    // fall through to the error below
  }
  throw new InvalidOptionsError('list: option "cursor" is not a cursor returned by list()');
}
