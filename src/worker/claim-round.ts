import type { z } from 'zod';
import type { HandlerSpec, ResolvedHandlerOptions } from '../handlers.js';
import type { ClaimMode, HeldTask, Lease } from '../lease/lease.js';
import type { OnceTaskLogger } from '../logger.js';
import { Spawner } from '../schedule/spawner.js';
import { keyBusyUntil } from '../store/key-lock.js';
import type { ClaimCursor, VersionedLock, VersionedTask } from '../store/task-store.js';
import { CLAIMABLE_STATUSES, OPEN_STATUSES } from '../task-document.js';
import { pickCandidates, type Pick } from './candidates.js';
import { ExpiredLeases } from './expired-leases.js';
import type { WorkerSettings } from './worker-settings.js';
import type { QueueReader } from './queue-reader.js';

/**
 * The claim rounds of one kind's worker: one look at the queue claims up to the free slots' worth
 * of due tasks, at most one per resource key, skipping keys that are busy (so one busy key never
 * holds up the others) and reading further pages while busy keys fill the page. Each claim won is
 * handed to the worker to run.
 */

/** Pages a claim round reads past busy resource keys before it gives up until the next look. */
const MAX_PAGES_PER_ROUND = 10;

/** What one claim round did and saw. */
export interface RoundResult {
  claimed: number;
  /** Claims or spawns lost to another worker, or tasks ended without a claim: the queue moved. */
  conflicts: number;
  /** When to look again at the latest (a busy key's lease expiry, or the next due task), if known. */
  nextDueAt: number | null;
  /** Every due task seen was behind a busy resource key. */
  blocked: boolean;
  /** The round's last query found nothing due. */
  drained: boolean;
  /** The round only took fresh heads the listener handed over (a trickle). */
  handOversOnly: boolean;
  /** Claimable candidates were left over for lack of free slots. */
  overflow: boolean;
  /** The last page read was not full: the round saw the whole due queue (or its shard group's). */
  queueShort: boolean;
}

/** What a claim round needs to know of its worker, and how it hands a claim over. */
export interface ClaimRoundHost {
  /** Whether `stop()` has begun: the round claims nothing more. */
  stopping(): boolean;
  /** Whether the kind is paused (or its pauses are not known yet): the round claims nothing more. */
  paused(): boolean;
  /** The task as held in this process, if it is. */
  heldHere(docId: string): HeldTask | undefined;
  /** Whether a run in this process holds the key. */
  isKeyHeldHere(key: string): boolean;
  /** Starts running a lease just claimed; `key` is its resource key (null without one). */
  run(lease: Lease, key: string | null): void;
}

export class Claimer<S extends z.ZodType> {
  private readonly expiry: ExpiredLeases;
  private readonly spawner: Spawner;
  /** See {@link handOverLossRate}. */
  private lossRate = 0;

  constructor(
    private readonly settings: WorkerSettings,
    private readonly kind: string,
    private readonly spec: HandlerSpec<z.output<S>>,
    private readonly options: ResolvedHandlerOptions,
    private readonly reader: QueueReader,
    private readonly log: OnceTaskLogger,
    private readonly host: ClaimRoundHost,
  ) {
    this.expiry = new ExpiredLeases(settings, kind, options, log);
    this.spawner = new Spawner(settings.store, settings.retentionMs, log, settings.clock);
  }

  /**
   * Share of recent claims of handed-over heads that another process won (a moving average):
   * the worker delays its claims of handed-over heads at random while it is high.
   */
  get handOverLossRate(): number {
    return this.lossRate;
  }

  /**
   * One look at the queue: claims up to `free` due tasks, at most one claim per resource key,
   * reading further pages while busy keys fill the page. With `findNextDue`, an idle round also
   * asks when the next task comes due (without a listener that is the only way to know).
   */
  async round(free: number, spread: boolean, findNextDue: boolean): Promise<RoundResult> {
    const { store } = this.settings;
    const seenKeys = new Set<string>();
    let claimed = 0;
    let conflicts = 0;
    let sawDue = false;
    let drained = false;
    let queueShort = false;
    let busyUntil: number | null = null;
    let after: ClaimCursor | undefined;
    let bufferPasses = 0;
    let buffered = this.reader.takeBuffered();
    // Only heads the listener handed over, each due just now: a trickle of new work. The
    // listener will hand over the next one too, so no query follows (it would find nothing).
    const freshHandOvers = this.reader.lastTakeWasFreshHandOvers(this.settings.clock());
    let handOversOnly = false;
    let overflow = false;
    const { clock, maxClockSkewMs } = this.settings;
    for (let page = 0; page < MAX_PAGES_PER_ROUND && claimed < free && !this.host.stopping() && !this.host.paused(); ) {
      const now = clock();
      const fromBuffer = buffered.length > 0;
      let tasks: VersionedTask[];
      let next: ClaimCursor | null = null;
      if (fromBuffer) {
        tasks = buffered;
        buffered = [];
      } else {
        ({ tasks, next, short: queueShort } = await this.reader.nextPage(free - claimed, after));
        // A full page: there is more behind it; have it read by the time this one is claimed.
        if (next !== null) this.reader.readAhead(free, next);
        sawDue ||= tasks.length > 0;
        drained = tasks.length === 0;
        page++;
      }
      const picked = pickCandidates(tasks, {
        now,
        seenKeys,
        maxClockSkewMs,
        heldHere: (docId) => this.host.heldHere(docId),
        isKeyHeldHere: (key) => this.host.isKeyHeldHere(key),
        isClaimable: (candidate) => this.expiry.isClaimable(candidate, now),
      });
      const { picks } = picked;
      let { skippedBusy } = picked;
      if (picked.busyUntil !== null) busyUntil = busyUntil === null ? picked.busyUntil : Math.min(busyUntil, picked.busyUntil);
      // After a lost race, start at a random place so workers stop chasing the same documents.
      if (spread && picks.length > 1) picks.push(...picks.splice(0, Math.floor(Math.random() * picks.length)));
      const chosen = picks.slice(0, free - claimed);
      overflow ||= picks.length > chosen.length;
      // Keep the rest for the next round (same-key candidates included: their key may be free by then).
      const keep = [...picks.slice(free - claimed).map((p) => p.candidate), ...tasks.filter((t) => t.task.resourceKey !== null && !picks.some((p) => p.candidate === t))];
      this.reader.keep(keep, fromBuffer ? (this.reader.bufferedAt ?? Date.now()) : Date.now());
      const keys = chosen.filter((p) => p.mode !== 'spawn').map((p) => p.candidate.task.resourceKey).filter((k): k is string => k !== null);
      const locks = await this.reader.locksFor(keys);
      const attempts: Promise<'claimed' | 'conflict' | 'skipped'>[] = [];
      for (const pick of chosen) {
        if (pick.mode === 'spawn') {
          attempts.push(this.spawner.spawn(pick.candidate).then((r) => (r === 'moved' ? 'skipped' : 'conflict')));
          continue;
        }
        const key = pick.candidate.task.resourceKey;
        const lock = key === null ? undefined : locks.get(key);
        // Busy key (held, or cooling down), or blocked by another task's retry under strict
        // order: go on with the others; look again when it may be free at the latest.
        const wait = lock ? await this.keyWait(lock, pick.candidate, now) : null;
        if (wait !== null && wait !== 'lift') {
          skippedBusy = true;
          busyUntil = busyUntil === null ? wait : Math.min(busyUntil, wait);
          continue;
        }
        attempts.push(this.tryClaim(pick as Pick & { mode: ClaimMode }, lock, wait === 'lift'));
      }
      const results = await Promise.all(
        attempts.map((attempt) =>
          attempt.catch((err: unknown) => {
            // One failed claim or spawn must not stop the others: log it and look again soon.
            this.log.warn({ err }, 'oncetask: claim failed');
            return 'conflict' as const;
          }),
        ),
      );
      const won = results.filter((r) => r === 'claimed').length;
      const lost = results.filter((r) => r === 'conflict').length;
      claimed += won;
      // A conflict (another worker won) or a task ended without a claim: the queue moved.
      conflicts += results.length - won;
      this.settings.telemetry.lostClaims(this.kind, lost);
      // Mostly lost races on old candidates: the buffer is stale, query afresh.
      if (fromBuffer && lost > won) this.reader.dropBuffer();
      if (fromBuffer && freshHandOvers && results.length > 0) this.lossRate += (lost / results.length - this.lossRate) * 0.2;
      else this.reader.recordPageClaims(won, lost);
      if (fromBuffer && freshHandOvers && !skippedBusy) {
        handOversOnly = true; // (a head behind a busy key needs the query's "blocked" look instead)
        break;
      }
      if (fromBuffer) {
        // A few lost to another worker: try the rest of the page before reading a new one (a
        // new page would read most of the same candidates again). Bounded: each pass tries some.
        if (lost > 0 && lost <= won && results.length > 0 && ++bufferPasses < MAX_PAGES_PER_ROUND) buffered = this.reader.takeBuffered();
        continue; // then query for the rest
      }
      if (next === null || !skippedBusy) break; // more pages only while busy keys fill them
      after = next;
    }
    const seen = { claimed, conflicts, drained, handOversOnly, overflow, queueShort };
    if (claimed > 0 || conflicts > 0) return { ...seen, nextDueAt: null, blocked: false };
    if (sawDue) return { ...seen, nextDueAt: busyUntil, blocked: true }; // all due work is behind busy keys
    const nextDueAt = findNextDue ? ((await store.nextDueAt(this.kind, CLAIMABLE_STATUSES))?.getTime() ?? null) : null;
    return { ...seen, nextDueAt, blocked: false };
  }

  /**
   * Whether a candidate may take its key now: null if so; the time to look again if the key is
   * held, cooling down, or blocked (strict order) by another task's retry; `'lift'` if it is
   * blocked by a task that has ended meanwhile (deleted, or cancelled by an admin): the claim
   * lifts the block. Whether a due blocker is still open costs one read (rare: the blocker sits
   * ahead of the key's other tasks in the queue, so it is normally the one picked).
   */
  private async keyWait(lock: VersionedLock, candidate: VersionedTask, now: number): Promise<number | 'lift' | null> {
    const busy = keyBusyUntil(lock.lock, now, this.settings.maxClockSkewMs);
    if (busy !== null) return busy;
    const block = lock.lock?.blockedBy;
    if (!block || block.docId === candidate.docId) return null;
    if (block.until.getTime() > now) return block.until.getTime();
    const blocker = await this.settings.store.readDoc(block.docId);
    const open = blocker !== null && blocker.decoded.ok && OPEN_STATUSES.includes(blocker.decoded.task.status);
    return open ? now + this.settings.pollIntervalMs : 'lift';
  }

  /** Claims a pick (with its key's lock) and hands the lease to the worker to run. */
  private async tryClaim(pick: Pick & { mode: ClaimMode }, lock: VersionedLock | undefined, liftBlock = false): Promise<'claimed' | 'conflict' | 'skipped'> {
    const { protocol } = this.settings;
    const { candidate, mode } = pick;
    if (mode === 'cancel' && (!this.spec.onCancel || candidate.task.recurrence !== null)) {
      // Nothing to run (a generator never ran, so it has nothing to clean up): end it cancelled.
      return (await protocol.finishCancelled(candidate)) ? 'skipped' : 'conflict';
    }
    if (!(await this.expiry.mayRetry(candidate, mode))) return 'skipped';
    let candidates = [candidate];
    const key = candidate.task.resourceKey;
    if (mode === 'run' && this.spec.mode === 'group' && key !== null) {
      candidates = await this.expiry.groupCandidates(key);
      if (candidates.length === 0) return 'skipped';
    }
    if (key !== null) this.reader.forgetLock(key); // held now; known again once released
    const lease = await protocol.claim(candidates, {
      leaseMs: this.options.leaseMs,
      mode,
      ...(lock && key !== null ? { lock: { ...lock, kind: this.kind, resourceKey: key } } : {}),
      clearBlock: liftBlock,
    });
    if (!lease) return 'conflict';
    for (const c of candidates) this.reader.noteClaimed(c);
    this.host.run(lease, key);
    return 'claimed';
  }
}
