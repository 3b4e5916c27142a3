import { MalformedTaskError } from '../errors.js';
import type { Clock } from '../clock.js';
import type { Lease } from '../lease/lease.js';
import type { LeaseProtocol } from '../lease/protocol.js';
import type { OnceTaskLogger } from '../logger.js';
import { Lanes, LaneSpread } from './lanes.js';
import { byQueueOrder, type ClaimCursor, type TaskStore, type VersionedLock, type VersionedTask } from '../store/task-store.js';

/**
 * How a worker reads its queue: a page of due tasks at a time (growing while queries are slow),
 * the unclaimed rest kept for the next claims, expired leases and cancel requests looked for
 * every few seconds, versions of the key locks it released remembered, and malformed documents
 * reported once and marked failed.
 */

/** Due candidates kept from a page for later rounds are tried for this long (claims are conditional: stale ones just lose). */
const BUFFER_TTL_MS = 30_000;
/** Page size of the due-task query: from free slots (at most MAX_BASE_PAGE), growing to MAX_PAGE_SIZE while queries are slow. */
const MIN_PAGE_SIZE = 8;
const MAX_BASE_PAGE = 64;
const MAX_PAGE_SIZE = 1000;
const SLOW_QUERY_MS = 100;
const FAST_QUERY_MS = 25;
/** Bounds of how long ago a handed-over head may have come due to count as fresh (a trickle, not a backlog). */
const MIN_FRESH_MS = 250;
const MAX_FRESH_MS = 2000;
/** Most handed-over heads kept for the next round. */
const MAX_OFFERED = 16;
/** Most claimed task versions a worker remembers (see {@link QueueReader.noteClaimed}). */
const MAX_CLAIMED_VERSIONS = 1000;
/** Most lock versions a worker remembers. */
const MAX_CACHED_LOCKS = 10_000;
/** How often a busy worker also looks for expired leases and cancel requests (the pending queue is the hot path). */
const OTHER_STATUSES_INTERVAL_MS = 5000;
/** How many malformed document IDs a worker remembers so each is reported once. */
const MAX_REMEMBERED_MALFORMED = 10_000;

/** A page of due candidates: the cursor after it (null: none, or not full), and whether the queue looked short. */
export interface PageResult {
  tasks: VersionedTask[];
  next: ClaimCursor | null;
  short: boolean;
}

export class QueueReader {
  /** Heads the queue listener handed over since the last round began. */
  private offered: VersionedTask[] = [];
  /** How late handed-over heads arrive after they came due (a moving average, ms). */
  private listenerDelayMs = 100;
  /** The offered tasks that came from the listener (the others came from local creates). */
  private fromListener = new Set<string>();
  /** The versions of the tasks this worker claimed last, by document ID: a listener answer that lags still shows them due. */
  private readonly claimedVersions = new Map<string, VersionedTask['updateTime']>();
  /** Whether the listener's last window held every due task. */
  private windowComplete = false;
  /**
   * What the last {@link takeBuffered} gave: the handed-over heads, the page leftovers, whether
   * the heads included the listener's last window, and whether that window was complete.
   */
  private lastTaken: { offered: VersionedTask[]; page: VersionedTask[]; window: boolean; complete: boolean } = { offered: [], page: [], window: false, complete: false };
  /** A page being read ahead (see {@link readAhead}): after which cursor, since when. */
  private ahead: { after: ClaimCursor; at: number; page: Promise<PageResult | null> } | null = null;
  /** Whether the last page {@link nextPage} gave was read ahead. */
  private lastReadAhead = false;
  /** Unclaimed due candidates of the last page. */
  private buffer: { tasks: VersionedTask[]; at: number } | null = null;
  /** Current page size of the due-task query (adapts to query latency and contention). */
  private pageSize = MIN_PAGE_SIZE;
  /** Share of claims on page candidates lost to other workers (a moving average). */
  private pageLossRate = 0;
  /** The lane (null: the whole queue) where a page's claims were all won (see {@link nextPageSize}); undefined: none yet. */
  private provenOn: number | null | undefined = undefined;
  /**
   * When expired leases and cancel requests were last looked for. A new worker looks a second
   * after it starts (a worker that replaces a crashed one has its leases to recover), or at once
   * when the pending queue is short.
   */
  private othersCheckedAt = Date.now() - OTHER_STATUSES_INTERVAL_MS + 1000;
  /** How often they are looked for while the pending queue is long: at least every 5 s, less when queries are slow. */
  private othersInterval = OTHER_STATUSES_INTERVAL_MS;
  /** Versions of key locks this worker released last. */
  private readonly lockCache = new Map<string, VersionedLock>();
  /** Malformed documents already logged (each is reported once per process). */
  private readonly reportedMalformed = new Set<string>();
  /** Malformed documents being marked failed right now. */
  private readonly markingMalformed = new Set<string>();
  /** Which lane of the queue this worker reads (see {@link LaneSpread}). */
  private readonly spread: LaneSpread;

  constructor(
    private readonly store: TaskStore,
    private readonly protocol: LeaseProtocol,
    private readonly kind: string,
    private readonly log: OnceTaskLogger,
    private readonly clock: Clock,
  ) {
    this.spread = new LaneSpread(new Lanes(store.shards));
  }

  /**
   * Puts due tasks (the queue listener's, or this process's own creates) first in line. Kept
   * apart from the page buffer, so a round that was reading the queue when they arrived cannot
   * overwrite them when it ends. `complete`: the listener showed every due task (its window was
   * not full), so a page read would find nothing more.
   */
  offer(shown: readonly VersionedTask[], fromListener = true, complete = false): void {
    // The listener's answer may lag this worker's own claims: a task shown at the version it was
    // claimed from is ours already (a claim of it would only lose against ourselves).
    const heads = shown.filter((t) => !this.claimedVersions.get(t.docId)?.isEqual(t.updateTime));
    // A new window from the listener replaces the one it showed before: a task gone from it has
    // left the due queue (in all likelihood claimed by another process), and trying it would
    // only lose a race. Tasks handed over from this process's own creates are all still there.
    const keep = fromListener ? this.offered.filter((t) => !this.fromListener.has(t.docId)) : this.offered;
    if (fromListener) {
      this.fromListener = new Set(heads.map((t) => t.docId));
      this.windowComplete = complete;
    }
    const ids = new Set(heads.map((t) => t.docId));
    this.offered = [...heads, ...keep.filter((t) => !ids.has(t.docId))].slice(0, MAX_OFFERED);
  }

  /** Remembers that this worker claimed `task` at the version it has. */
  noteClaimed(task: VersionedTask): void {
    this.claimedVersions.delete(task.docId);
    this.claimedVersions.set(task.docId, task.updateTime);
    if (this.claimedVersions.size > MAX_CLAIMED_VERSIONS) this.claimedVersions.delete(this.claimedVersions.keys().next().value!);
  }

  /** Heads handed over since the last round began (not yet tried). */
  offeredHeads(): readonly VersionedTask[] {
    return this.offered;
  }

  /** How late handed-over heads arrive after they came due (a moving average, ms). */
  get listenerDelay(): number {
    return this.listenerDelayMs;
  }

  /**
   * Whether the last {@link takeBuffered} gave heads the listener handed over, and either they
   * were all the due tasks there are (the listener's window was not full, and no page leftovers
   * came with them), or every task it gave (page leftovers too) came due recently. A task due
   * longer ago means work is piling up (nobody took it at once), and a page read pays off;
   * fresh ones are a trickle the listener keeps up with. Recently: within 2 s when the take
   * held the listener's window (a pile-up smaller than that drains through the window, each
   * task read once, however many are due behind it); otherwise within about two listener
   * delays (how late the newest handed-over head arrives, averaged; at least 250 ms).
   */
  lastTakeWasFreshHandOvers(now: number): boolean {
    const { offered, page, complete, window } = this.lastTaken;
    if (offered.length === 0) return false;
    const newest = Math.min(...offered.map((t) => now - t.task.waitUntil.getTime()));
    this.listenerDelayMs += (Math.max(0, newest) - this.listenerDelayMs) * 0.2;
    if (complete && page.length === 0) return true;
    const fresh = window ? MAX_FRESH_MS : Math.min(MAX_FRESH_MS, Math.max(MIN_FRESH_MS, 2 * this.listenerDelayMs + 50));
    return [...offered, ...page].every((t) => now - t.task.waitUntil.getTime() <= fresh);
  }

  /** Counts the claims tried on page candidates (not handed-over heads): won, and lost to other workers. */
  recordPageClaims(won: number, lost: number): void {
    if (won + lost === 0) return;
    this.pageLossRate += (lost / (won + lost) - this.pageLossRate) * 0.3;
    const lane = this.spread.lane;
    this.spread.onPageClaims(won, lost);
    if (this.spread.lane === lane && lost === 0 && won > 0) this.provenOn = lane;
    if (this.spread.lane !== lane) this.pageLossRate = 0; // a new lane: its contention is not known yet
  }

  /** Keeps candidates for the next round (`at`: when they were read). */
  keep(tasks: VersionedTask[], at: number): void {
    this.buffer = tasks.length > 0 ? { tasks, at } : null;
  }

  /** When the buffered candidates were read. */
  get bufferedAt(): number | null {
    return this.buffer?.at ?? null;
  }

  /** Forgets the buffered candidates (they turned out stale), and the page read ahead after them. */
  dropBuffer(): void {
    this.buffer = null;
    this.ahead = null;
  }

  /** Due candidates to try first: heads the listener handed over, then the rest of the last page. */
  takeBuffered(): VersionedTask[] {
    const buffered = this.buffer;
    const offered = this.offered;
    this.buffer = null;
    this.offered = [];
    const page = buffered && Date.now() - buffered.at < BUFFER_TTL_MS ? buffered.tasks : [];
    const window = offered.some((t) => this.fromListener.has(t.docId));
    this.lastTaken = { offered, page, window, complete: window && this.windowComplete };
    const ids = new Set(offered.map((t) => t.docId));
    return [...offered, ...page.filter((t) => !ids.has(t.docId))];
  }

  /**
   * The next page of due candidates. Pending tasks are the hot path (one equality on status);
   * running tasks with expired leases and cancelling tasks are looked for every few seconds,
   * and whenever the pending queue runs short. The page grows while queries are slow compared
   * with claims (a large backlog on the emulator), so one query feeds many claims. A page read
   * ahead (see {@link readAhead}) is taken instead of a new query.
   */
  async nextPage(free: number, after: ClaimCursor | undefined): Promise<PageResult> {
    const ahead = this.ahead;
    if (ahead && (after === undefined || after === ahead.after)) {
      this.ahead = null;
      const page = await ahead.page;
      this.lastReadAhead = true;
      if (page && Date.now() - ahead.at < BUFFER_TTL_MS) return page;
    }
    this.lastReadAhead = false;
    const started = Date.now();
    // Due by the interval: look for the others alongside the page, not after it.
    const othersDue = after === undefined && started - this.othersCheckedAt >= this.othersInterval;
    // (Awaited together: a failure of either is the round's, never an unhandled rejection.)
    const [page, alongside] = await Promise.all([this.readPage(free, after), othersDue ? this.others(free, started) : null]);
    const others = alongside ?? (after === undefined && page.short ? await this.others(free, started) : null);
    if (!others) return page;
    return { ...page, tasks: [...others, ...page.tasks].sort(byQueueOrder) };
  }

  /** Running tasks with expired leases and cancelling tasks, due by now. */
  private async others(free: number, started: number): Promise<VersionedTask[]> {
    this.othersCheckedAt = started;
    const found = await this.store.findClaimable(this.kind, ['running', 'cancelling'], new Date(this.clock()), this.pageLimit(free));
    for (const bad of found.malformed) void this.reportMalformed(bad.docId, bad.updateTime, bad.reason);
    return found.tasks;
  }

  /**
   * Starts reading the page after `after` (the end of a full page just read) while the round
   * claims from that one, so the round that needs the next page finds it read instead of
   * waiting for a query (a query of a large queue takes 100–200 ms on the emulator; a round of
   * 64 claims about 30 ms). Not after a page that was itself read ahead: the page after that is
   * read from the queue's head, so a task that came due ahead of the backlog (a higher priority,
   * a retry) waits two pages at most. (Reading the head ahead instead would read again the page
   * being claimed: 4.8 billed operations per task against 4.0.)
   */
  readAhead(free: number, after: ClaimCursor): void {
    if (this.ahead || this.lastReadAhead) return;
    this.ahead = { after, at: Date.now(), page: this.readPage(free, after).catch(() => null) };
  }

  /** Resolves once no page is being read ahead (for `stop()`: no query left in flight). */
  async settled(): Promise<void> {
    await this.ahead?.page;
  }

  /** How many tasks a page asks for: from the free slots (at most MAX_BASE_PAGE), or the adapted page size if larger. */
  private pageLimit(free: number): number {
    return Math.max(Math.min(MAX_BASE_PAGE, Math.max(MIN_PAGE_SIZE, free * 2 + 4)), this.pageSize);
  }

  /** A page of pending tasks (see {@link pendingPage}), the page size adapted to how the query went. */
  private async readPage(free: number, after: ClaimCursor | undefined): Promise<PageResult> {
    const limit = this.pageLimit(free);
    const started = Date.now();
    const { short, tasks, malformed, next } = await this.pendingPage(limit, after, free);
    const took = Date.now() - started;
    // A slow query (a large backlog on a scanning backend) makes the next page as large as allowed
    // at once; fast ones shrink it back, so idle and light loads read no more than they claim.
    // (From the page size used: one from the free slots grows from there.)
    this.pageSize = nextPageSize(limit, took, !short, this.pageLossRate, this.provenOn === this.spread.lane);
    this.othersInterval = Math.max(OTHER_STATUSES_INTERVAL_MS, took * 20);
    for (const bad of malformed) void this.reportMalformed(bad.docId, bad.updateTime, bad.reason);
    return { tasks, next, short };
  }

  /**
   * A page of pending tasks, and whether the whole pending queue looks short (the page was not
   * full). From the worker's lane (see {@link LaneSpread}) when it has one; when that has none
   * due, one look at the rest of the queue (the other shards in one `in` query, or the whole
   * unsharded queue) for no more than the free slots, moving to a lane that had some, and
   * keeping only that lane's tasks (the others' are likely another process's to take).
   */
  private async pendingPage(limit: number, after: ClaimCursor | undefined, free: number): Promise<Awaited<ReturnType<TaskStore['findClaimable']>> & { short: boolean }> {
    const { store, spread } = this;
    const now = new Date(this.clock());
    const lane = spread.filter();
    if (lane === null || after !== undefined) {
      const page = await store.findClaimable(this.kind, ['pending'], now, limit, { after });
      return { ...page, short: page.tasks.length < limit };
    }
    // A lane whose last page was short has been read to its end (what is left of it is in the
    // buffer): no need to find it empty; the look at the rest of the queue covers it too.
    const drained = spread.drained;
    if (!drained) {
      const probe = spread.probing ? Math.min(limit, Math.max(MIN_PAGE_SIZE, free)) : limit;
      const mine = await store.findClaimable(this.kind, ['pending'], now, probe, lane);
      if (mine.tasks.length < probe && !spread.probing) spread.drained = true;
      // One lane's short page says nothing about the others.
      if (mine.tasks.length > 0 || mine.malformed.length > 0) return { ...mine, short: false };
    }
    spread.markDry();
    const size = Math.min(limit, Math.max(MIN_PAGE_SIZE, free));
    const rest = 'shard' in lane ? { shard: drained ? spread.lanes.all() : spread.lanes.all().filter((s) => s !== lane.shard) } : {};
    const page = await store.findClaimable(this.kind, ['pending'], now, size, rest);
    const short = page.tasks.length < size;
    if (short && !('shard' in lane)) {
      // The whole unsharded queue fits in a page: nothing to spread from; take it all.
      spread.whole();
      return { ...page, next: null, short };
    }
    spread.moveAmong(page.tasks);
    const tasks = page.tasks.filter((t) => {
      const of = spread.lanes.of(t);
      return of === null || of === spread.lane;
    });
    return { ...page, tasks, next: null, short };
  }

  /** Forgets a lock version (the key is being claimed; its version changes). */
  forgetLock(key: string): void {
    this.lockCache.delete(key);
  }

  /**
   * The locks of these keys: from the cache for keys this worker itself released last (no read
   * needed; if someone changed the lock since, the claim simply fails and the entry is dropped),
   * read from Firestore for the others.
   */
  async locksFor(keys: readonly string[]): Promise<Map<string, VersionedLock>> {
    const result = new Map<string, VersionedLock>();
    const unknown: string[] = [];
    for (const key of keys) {
      const cached = this.lockCache.get(key);
      if (cached) result.set(key, cached);
      else unknown.push(key);
    }
    for (const [key, lock] of await this.store.locks.readLocks(this.kind, unknown)) result.set(key, lock);
    return result;
  }

  /** Remembers the version of a lock this worker just released. */
  rememberReleasedLock(lease: Lease, key: string): void {
    const lock = lease.lock;
    if (!lock?.released) return;
    if (this.lockCache.size >= MAX_CACHED_LOCKS) this.lockCache.clear();
    const now = new Date(this.clock());
    this.lockCache.set(key, {
      docId: lock.docId,
      updateTime: lock.updateTime,
      lock: { env: this.store.env, kind: this.kind, resourceKey: key, holder: null, updatedAt: now, expireAt: null, cooldownUntil: null, cooldownMs: 0, blockedBy: null, ...lock.releasedAs },
    });
  }

  async reportMalformed(docId: string, updateTime: VersionedTask['updateTime'], reason: string): Promise<void> {
    if (this.markingMalformed.has(docId)) return;
    if (!this.reportedMalformed.has(docId)) {
      if (this.reportedMalformed.size >= MAX_REMEMBERED_MALFORMED) this.reportedMalformed.clear();
      this.reportedMalformed.add(docId);
      this.log.error({ docId, reason }, 'oncetask: malformed task document; marking it failed');
    }
    this.markingMalformed.add(docId);
    try {
      // Conditional on the version read: a conflict means someone else changed or ended it.
      await this.protocol.failMalformed(docId, updateTime, new MalformedTaskError(docId, reason));
    } catch (err) {
      this.log.warn({ docId, err }, 'oncetask: could not mark malformed task failed; will try again');
    } finally {
      this.markingMalformed.delete(docId);
    }
  }
}

/** A page's candidates lost to other workers above this share (moving average): the page is contested. */
const CONTESTED_LOSS_RATE = 0.25;

/**
 * The next page size after a due-task query that took `tookMs` and came back `full` (or not),
 * given the share of recent page candidates whose claims were lost to other workers
 * (`lossRate`, a moving average).
 * - Full and slow (a scanning backend such as the emulator, where a query costs far more than
 *   the documents it returns): the largest page at once, so one query feeds many claims — once
 *   `proven`, i.e. a page's claims were all won since the worker began reading this part of the
 *   queue (until then it doubles: several processes starting together on one queue would each
 *   read the same largest page, and lose most of it).
 * - Full, fast and contested (other processes read the same head and win its tasks): halve
 *   towards the smallest, since a candidate another worker takes was read for nothing and
 *   queries are cheap; several processes then each read about what they claim.
 * - Full, fast and uncontested (a backlog this worker has to itself): double, so a lone worker
 *   needs few queries for a long queue.
 * - Not full: a slow one keeps the size (the queue is short, the backend slow; a larger page
 *   would only read tasks again that the listener hands over anyway); a fast one halves it back,
 *   so idle and light loads read no more than they claim.
 * Always an integer: Firestore refuses a fractional `limit`.
 */
export function nextPageSize(current: number, tookMs: number, full: boolean, lossRate = 0, proven = true): number {
  const halved = Math.max(MIN_PAGE_SIZE, Math.floor(current / 2));
  if (!full) return tookMs < FAST_QUERY_MS ? halved : current;
  if (tookMs > SLOW_QUERY_MS) return proven ? MAX_PAGE_SIZE : Math.min(MAX_PAGE_SIZE, current * 2);
  return lossRate > CONTESTED_LOSS_RATE ? halved : Math.min(MAX_PAGE_SIZE, current * 2);
}
