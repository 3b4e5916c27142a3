import { metrics, type ObservableGauge } from '@opentelemetry/api';
import type { QueueDepth } from '../admin/task-reads.js';
import type { OnceTaskLogger } from '../logger.js';
import type { TaskStatus } from '../task-document.js';

/**
 * Opt-in observable gauges of the queue (`queueMetricsIntervalMs`): `oncetask.queue.tasks` by
 * kind and status, and `oncetask.queue.oldest_due_age` (s) by kind. Every interval, per kind:
 * 10 COUNT aggregations and one `limit(1)` query (about 11 billed reads for a queue under 1000
 * tasks per status) — never a read of the backlog. The gauges report the last refresh.
 */

/** What the gauges read, per kind. */
export interface QueueSource {
  kinds(): readonly string[];
  countByStatus(kind: string): Promise<Record<TaskStatus, number>>;
  queueDepth(kind: string): Promise<QueueDepth>;
  now(): number;
}

export class QueueGauges {
  private readonly latest = new Map<string, { counts: Record<TaskStatus, number>; oldestDueAgeS: number }>();
  private timer: NodeJS.Timeout | null = null;
  private readonly tasks: ObservableGauge;
  private readonly oldest: ObservableGauge;

  constructor(
    private readonly source: QueueSource,
    private readonly env: string,
    private readonly intervalMs: number,
    private readonly log: OnceTaskLogger,
  ) {
    const meter = metrics.getMeter('oncetask');
    this.tasks = meter.createObservableGauge('oncetask.queue.tasks', { description: 'Tasks by kind and status (COUNT aggregations).', unit: '{task}' });
    this.oldest = meter.createObservableGauge('oncetask.queue.oldest_due_age', { description: 'How long the oldest due pending task has waited.', unit: 's' });
    this.tasks.addCallback((result) => {
      for (const [kind, { counts }] of this.latest) {
        for (const [status, count] of Object.entries(counts)) result.observe(count, { 'messaging.destination.name': kind, 'oncetask.status': status, 'messaging.consumer.group.name': this.env });
      }
    });
    this.oldest.addCallback((result) => {
      for (const [kind, { oldestDueAgeS }] of this.latest) result.observe(oldestDueAgeS, { 'messaging.destination.name': kind, 'messaging.consumer.group.name': this.env });
    });
  }

  /** Starts refreshing (at once, then every interval). Idempotent. */
  start(): void {
    if (this.timer !== null) return;
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Reads the counts of every kind once (a failed read keeps the previous values and is logged). */
  async refresh(): Promise<void> {
    await Promise.all(
      this.source.kinds().map(async (kind) => {
        try {
          const [counts, depth] = await Promise.all([this.source.countByStatus(kind), this.source.queueDepth(kind)]);
          const oldestDueAgeS = depth.oldestDueAt === null ? 0 : Math.max(0, this.source.now() - depth.oldestDueAt.getTime()) / 1000;
          this.latest.set(kind, { counts, oldestDueAgeS });
        } catch (err) {
          this.log.warn({ err, kind }, 'oncetask: could not refresh the queue gauges');
        }
      }),
    );
  }
}
