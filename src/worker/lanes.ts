import type { IdRange } from '../store/query-builder.js';
import type { Shards } from '../store/shards.js';
import type { VersionedTask } from '../store/task-store.js';

/**
 * Lanes: disjoint parts of a kind's pending queue that worker processes read apart, so that
 * processes sharing a queue do not all read (and race for) the same head. On a sharded queue a
 * lane is a shard. On an unsharded one it is a range of document IDs: an ID starts with 12 hex
 * digits of a hash (see `TaskStore.docId`), so its first digit splits the queue into 16 even
 * lanes, with no field to add and nothing to migrate. A lane is a query filter only; every
 * task is in the whole queue, which a worker reads whenever its lane runs dry.
 */

/** The filter of one lane: a shard, or a range of document IDs. */
export type LaneFilter = { shard: number } | { idRange: IdRange };

/** The hex digits a document ID starts with, in order. */
const HEX = '0123456789abcdef';
// One lane per first digit: 16. (8 lanes of two digits each made fewer queries but more
// collisions: with 4 processes, 4.5–4.6 billed operations per task against 4.25–4.33 with 16,
// `BENCH_ONLY=procs`.)

export class Lanes {
  constructor(private readonly shards: Shards) {}

  /** How many lanes there are. */
  get count(): number {
    return this.shards.sharded ? this.shards.count : HEX.length;
  }

  /** Whether lanes are shards (every query names its shards anyway). */
  get areShards(): boolean {
    return this.shards.sharded;
  }

  /** Every lane number. */
  all(): number[] {
    return Array.from({ length: this.count }, (_, i) => i);
  }

  /** The query filter of lane `lane`. */
  filter(lane: number): LaneFilter {
    if (this.shards.sharded) return { shard: lane };
    const from = HEX[lane]!;
    // Up to the character after the digit ('9' → ':', 'f' → 'g'): IDs starting with it sort in between.
    return { idRange: { from, to: String.fromCharCode(from.charCodeAt(0) + 1) } };
  }

  /** The lane a task is in; null for one outside every lane (an ID not made by this library). */
  of(task: VersionedTask): number | null {
    if (this.shards.sharded) return task.task.shard;
    const lane = HEX.indexOf(task.docId[0] ?? '');
    return lane >= 0 ? lane : null;
  }
}

/** How long a lane found contested, or with nothing due, is avoided when moving to another. */
const AVOID_MS = 5000;

/**
 * Which lane one worker reads, moved by what its claims meet. A worker on an unsharded queue
 * starts on the whole queue, and takes a lane only once another process wins most claims of a
 * page (alone, it never does). On a sharded queue it starts on a random shard. A lane whose
 * claims are mostly lost is shared with another process: the worker moves to another at random,
 * preferring lanes neither contested nor found empty lately, so processes settle on different
 * lanes and each reads about what it claims. Its first page on a new lane is small (a probe),
 * and one lost claim there moves it on again.
 */
export class LaneSpread {
  /** The lane read; null: the whole queue (an unsharded queue nobody else reads). */
  lane: number | null;
  /** On a lane just joined: the next page is a probe. */
  probing = true;
  /** The lane's last page was short: it has been read to its end. */
  drained = false;
  private readonly contestedAt = new Map<number, number>();
  private readonly dryAt = new Map<number, number>();

  constructor(readonly lanes: Lanes) {
    this.lane = lanes.areShards ? Math.floor(Math.random() * lanes.count) : null;
  }

  /** The query filter of the lane read (null: the whole queue). */
  filter(): LaneFilter | null {
    return this.lane === null ? null : this.lanes.filter(this.lane);
  }

  /** Counts a page's claims: won, and lost to other workers. */
  onPageClaims(won: number, lost: number): void {
    if (won + lost === 0) return;
    if (this.probing ? lost > 0 && this.lane !== null : lost > won) this.hop();
    else this.probing = false;
  }

  /** The lane read had nothing due. */
  markDry(): void {
    if (this.lane !== null) this.dryAt.set(this.lane, Date.now());
  }

  /**
   * After the lane ran dry, a look at the rest of the queue found `tasks`: moves to the lane of
   * one of them, chosen at random by how many each lane had (so workers whose lanes ran dry do
   * not all crowd into the same one), and notes the lanes that had none.
   */
  moveAmong(tasks: readonly VersionedTask[]): void {
    const counts = new Map<number, number>();
    for (const t of tasks) {
      const lane = this.lanes.of(t);
      if (lane !== null) counts.set(lane, (counts.get(lane) ?? 0) + 1);
    }
    const now = Date.now();
    for (const lane of this.lanes.all()) if (!counts.has(lane)) this.dryAt.set(lane, now);
    let pick = Math.random() * [...counts.values()].reduce((a, b) => a + b, 0);
    for (const [lane, count] of counts) {
      pick -= count;
      if (pick < 0) return this.moveTo(lane);
    }
  }

  /** Back to the whole queue (an unsharded queue that turned out short: nobody to spread from). */
  whole(): void {
    if (this.lanes.areShards) return;
    this.lane = null;
    this.probing = true;
    this.drained = false;
  }

  /** Moves to a random other lane, preferring those neither contested nor found empty lately. */
  private hop(): void {
    const now = Date.now();
    if (this.lane !== null) this.contestedAt.set(this.lane, now);
    const recent = (map: Map<number, number>, lane: number): boolean => now - (map.get(lane) ?? -Infinity) <= AVOID_MS;
    const others = this.lanes.all().filter((lane) => lane !== this.lane);
    const calm = others.filter((lane) => !recent(this.contestedAt, lane));
    const busy = calm.filter((lane) => !recent(this.dryAt, lane));
    const from = busy.length > 0 ? busy : calm.length > 0 ? calm : others;
    this.moveTo(from[Math.floor(Math.random() * from.length)]!);
  }

  private moveTo(lane: number): void {
    if (lane === this.lane) {
      this.drained = false; // more came due in it
      return;
    }
    this.lane = lane;
    this.probing = true;
    this.drained = false;
  }
}
