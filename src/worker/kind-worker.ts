import type { z } from 'zod';
import { ShutdownError } from '../errors.js';
import { Execution } from './execution.js';
import type { HandlerSpec, ResolvedHandlerOptions } from '../handlers.js';
import type { Lease } from '../lease/lease.js';
import type { OnceTaskLogger } from '../logger.js';
import { Claimer, type RoundResult } from './claim-round.js';
import { QueueReader } from './queue-reader.js';
import { watchSlow, within } from './timing.js';
import { QueueWatcher } from './queue-watcher.js';
import { ListenerRole } from './listener-role.js';
import { LocalRuns, type ActiveRun } from './local-runs.js';
import type { WorkerProbe } from '../testing/internals.js';
import { LoopRecord } from './worker-probe.js';
import type { VersionedTask } from '../store/task-store.js';
import { CLAIMABLE_STATUSES } from '../task-document.js';
import type { WorkerSettings } from './worker-settings.js';
import type { TaskDefinition } from '../task-definition.js';

/**
 * The worker loop of one task kind in one process: find due candidates, claim up to
 * `concurrency` of them (skipping resource keys that are busy, so one busy key never holds up
 * the others; see {@link Claimer}), run each claim, and sleep until the next due time, a wake-up
 * or the poll interval.
 */

/** Error backoff of the loop when Firestore is unreachable: 0.5 s doubling to 30 s. */
const MIN_ERROR_BACKOFF_MS = 500;
const MAX_ERROR_BACKOFF_MS = 30_000;
/** After the grace period: how long releases and other last writes may take before stop() returns. */
const SHUTDOWN_WRITE_ALLOWANCE_MS = 2000;
/** How long a worker stays full before it detaches its queue listener. */
const LISTENER_OFF_WHEN_FULL_MS = 10_000;
/**
 * How long the holder of the listener role has been saturated (work waiting for its slots, every
 * slot in use) before it gives the role up, so that an idle process takes it and helps (a
 * pile-up that clears sooner is no backlog). 1 s: the holder drains a pile-up through the
 * listener's window, 16 tasks a round, so a commit stall of the backend clears by itself; at
 * 250 ms such stalls passed the role round the processes of a trickle, each new holder paying
 * its listener's first answer and racing the last one for the window (`BENCH_ONLY=trickle`, 4
 * processes: 4.57 billed operations per task in one run against 4.005 in one without a hand-over).
 */
const ROLE_OFF_WHEN_SATURATED_MS = 1000;

export class KindWorker<S extends z.ZodType> {
  /** The runs in progress, by lease token. */
  private readonly running: LocalRuns;
  /** Claim rounds in progress (0 or 1). */
  private rounds = 0;
  /** What the testing kit observes (see {@link probe}). */
  private readonly record = new LoopRecord();
  /** Set by {@link crash}: nothing more is written, not even the release of the listener role. */
  private crashed = false;
  private readonly execution: Execution<S>;
  private readonly watcher: QueueWatcher;
  /** The kind's listener role, when one process per kind listens. */
  private readonly role: ListenerRole | null;
  private readonly reader: QueueReader;
  private readonly claimer: Claimer<S>;
  private stopping = false;
  /** When stopping, the time by which outcome writes give up (set once handlers are aborted). */
  private writeDeadline: number | null = null;
  private loop: Promise<void> | null = null;
  /** Bumped by every start(), so a loop left over from before a restart exits. */
  private generation = 0;
  private wakeWaiter: (() => void) | null = null;
  /**
   * Since when work has been waiting for this worker's slots: a round left claimable work over,
   * or the listener handed over a head while every slot was taken; and every round since filled
   * all free slots. Null once a round leaves slots unused.
   */
  private saturatedSince: number | null = null;
  private jitterTimer: NodeJS.Timeout | undefined;
  private wokenEarly = false;
  /** What {@link pausedUntil} last said (undefined: never asked). */
  private seenPause: number | null | undefined = undefined;
  private readonly log: OnceTaskLogger;

  constructor(
    private readonly settings: WorkerSettings,
    private readonly def: TaskDefinition<S>,
    private readonly spec: HandlerSpec<z.output<S>>,
    private readonly options: ResolvedHandlerOptions,
  ) {
    this.log = settings.logger.child({ kind: def.kind });
    this.running = new LocalRuns(settings.store);
    this.execution = new Execution<S>({
      def,
      spec,
      options,
      protocol: settings.protocol,
      log: this.log,
      now: settings.clock,
      stopping: () => this.stopping,
      writeDeadline: () => this.writeDeadline,
      wake: () => this.wake(),
      handlerReturned: (lease) => this.freeSlot(lease.token),
      hooks: settings.hooks,
      telemetry: settings.telemetry,
    });
    this.reader = new QueueReader(settings.store, settings.protocol, def.kind, this.log, settings.clock);
    this.claimer = new Claimer<S>(settings, def.kind, spec, options, this.reader, this.log, {
      stopping: () => this.stopping,
      paused: () => this.pausedUntil() !== null,
      heldHere: (docId) => this.running.heldHere(docId),
      isKeyHeldHere: (key) => this.running.isKeyHeldHere(key),
      run: (lease, key) => this.startRun(lease, key),
    });
    this.watcher = new QueueWatcher(
      settings.store,
      def.kind,
      (due, complete) => (due ? this.handOver(due, complete ?? false) : this.wake()),
      this.log,
      (bad) => void this.reader.reportMalformed(bad.docId, bad.updateTime, bad.reason),
      settings.clock,
      settings.maxClockSkewMs,
    );
    this.role = settings.listen && settings.listenerRoleMs > 0
      ? new ListenerRole(settings.store, def.kind, settings.protocol.workerId, settings.clock, settings.maxClockSkewMs, this.log, () => this.wake(),
        () => !this.stopping && this.slotsInUse < this.options.concurrency, settings.listenerRoleMs)
      : null;
    // Only a change of this kind's pause from what the worker last saw is worth a look at the
    // queue (each look is a query; a pause of another kind would wake every worker for nothing).
    settings.control.subscribe(() => {
      const seen = this.seenPause;
      if (this.pausedUntil() !== seen) this.wake();
    });
  }

  /** Until when this kind is paused (ms; Infinity: until resumed), or null; unknown pauses count as paused. */
  private pausedUntil(): number | null {
    const { control, clock } = this.settings;
    return (this.seenPause = control.ready ? control.pausedUntil(this.def.kind, clock()) : Infinity);
  }

  /**
   * Another process cancelled a task and posted it to this process's inbox: if it runs here,
   * abort its signal now (after one read confirming the request is for this very attempt).
   */
  cancelPosted(docId: string): Promise<void> {
    return this.running.cancelPosted(docId);
  }

  /** Whether this kind has an `onCancel` handler. */
  get hasCancelHandler(): boolean {
    return this.spec.onCancel !== undefined;
  }

  /** Starts the loop (idempotent). */
  start(): void {
    if (this.loop && !this.stopping) return;
    this.stopping = false;
    this.writeDeadline = null;
    this.role?.resume();
    this.loop = this.runLoop(++this.generation);
  }

  /**
   * Makes a sleeping loop look at the queue now (e.g. a task was created in this process).
   * A due task handed over (a create here) is tried first, without a query.
   */
  wake(dueHead?: VersionedTask): void {
    if (dueHead) this.reader.offer([dueHead], false);
    this.rouse(false);
  }

  /**
   * The queue listener showed due tasks (`complete`: every due task there is): they are tried
   * first, without a query.
   */
  private handOver(due: readonly VersionedTask[], complete: boolean): void {
    this.reader.offer(due, true, complete);
    // Saturated: due work shown while every slot is taken (the listener may still show tasks this
    // process has claimed: its answer lags the claim).
    if (this.slotsInUse >= this.options.concurrency && due.some((t) => !this.running.heldHere(t.docId))) this.saturatedSince ??= Date.now();
    this.rouse(true);
  }

  /** Ends the loop's sleep (now, or after a random moment when hand-overs keep being lost). */
  private rouse(fromListener: boolean): void {
    // Other processes keep winning the handed-over heads: wait a moment at random first, so
    // that one of us claims the head and the others see it go (the listener shows the next
    // head) instead of all sending a claim that loses.
    if (fromListener && this.claimer.handOverLossRate > 0.5 && !this.stopping) {
      clearTimeout(this.jitterTimer);
      this.jitterTimer = setTimeout(() => this.wake(), Math.random() * Math.min(50, 2 * this.reader.listenerDelay));
      return;
    }
    if (this.wakeWaiter) this.wakeWaiter();
    else this.wokenEarly = true;
  }

  /** Aborts the local run of a task whose cancellation was just requested in this process. */
  cancelLocal(docId: string): void {
    this.running.cancelLocal(docId);
  }

  /**
   * Stops claiming, waits up to `graceMs` for running handlers, aborts the rest and releases
   * their leases. Resolves when the loop and every run have ended — or, if Firestore does not
   * answer (backend down), once the grace period and a short write allowance have passed; the
   * leases then simply expire.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    clearTimeout(this.jitterTimer);
    // Give the listener role up first, so another process takes new work over at once.
    const roleReleased = this.role?.stop();
    this.wake();
    const graceEnds = Date.now() + graceMs;
    // The loop exits as soon as its current look at the queue returns (a claim made meanwhile is
    // handed straight back); wait for that even with graceMs 0, within the write allowance.
    await within(this.loop ?? Promise.resolve(), Math.max(graceMs, SHUTDOWN_WRITE_ALLOWANCE_MS));
    // A page read ahead may still be in flight: the client must not be terminated under it.
    await within(this.reader.settled(), SHUTDOWN_WRITE_ALLOWANCE_MS);
    await within(Promise.all([...this.running.values()].map((r) => r.done)), graceEnds - Date.now());
    this.writeDeadline = Date.now() + SHUTDOWN_WRITE_ALLOWANCE_MS;
    for (const run of this.running.values()) run.controller.abort(new ShutdownError());
    await within(Promise.all([...[...this.running.values()].map((r) => r.done), roleReleased]), SHUTDOWN_WRITE_ALLOWANCE_MS);
  }

  /** Sleeps (the loop is idle, or waiting for a slot); `lookAt`: the wall time it means to look again because something comes due then. */
  private sleep(ms: number, lookAt: number | null = null): Promise<void> {
    this.record.looks++;
    this.record.plannedLookAt = lookAt;
    if (this.wokenEarly || this.stopping) {
      this.wokenEarly = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakeWaiter = null;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.wakeWaiter = done;
    });
  }

  private async runLoop(generation: number): Promise<void> {
    const { pollIntervalMs, sweepIntervalMs, listen } = this.settings;
    let errorBackoff = MIN_ERROR_BACKOFF_MS;
    let spread = false;
    let fullSince: number | null = null;
    while (!this.stopping && generation === this.generation) {
      const free = this.options.concurrency - this.slotsInUse;
      if (free <= 0) {
        // Full: wake-ups are useless until a run ends (which wakes the loop). After a while of
        // being full, stop paying listener reads for a head that changes with every claim.
        // (Not at once: attaching and detaching listeners in quick succession is itself costly,
        // and makes the emulator fail writes.)
        fullSince ??= Date.now();
        const fullFor = Date.now() - fullSince;
        // Saturated for a while: the listener role (and new work) should go to an idle process.
        const saturatedFor = this.saturatedSince === null ? null : Date.now() - this.saturatedSince;
        if (this.role?.holding && saturatedFor !== null && saturatedFor >= ROLE_OFF_WHEN_SATURATED_MS) await this.giveUpRole();
        if (fullFor >= LISTENER_OFF_WHEN_FULL_MS) this.watcher.stop();
        const recheck = this.role?.holding && saturatedFor !== null ? ROLE_OFF_WHEN_SATURATED_MS - saturatedFor : LISTENER_OFF_WHEN_FULL_MS;
        await this.sleep(Math.min(sweepIntervalMs, Math.max(50, recheck)));
        continue;
      }
      fullSince = null;
      const pausedUntil = this.pausedUntil();
      if (pausedUntil !== null) {
        // Paused (or the pauses are not known yet): claim nothing, and pay no listener reads for
        // the queue meanwhile. A change of the pauses wakes the loop; so does the pause's end.
        this.watcher.stop();
        await this.sleep(Math.min(sweepIntervalMs, pausedUntil - this.settings.clock()), Number.isFinite(pausedUntil) ? pausedUntil : null);
        continue;
      }
      try {
        const { claimed, conflicts, nextDueAt, blocked, drained, handOversOnly, overflow, queueShort } = await this.watchedRound(free, spread, !listen);
        errorBackoff = MIN_ERROR_BACKOFF_MS;
        this.record.lastRound = { claimed, conflicts };
        // (Checked while full, above: a pile-up with free slots is the backend being slow, and
        // more processes would not clear it.)
        // Saturated: work was left over, or every slot is now in use and the listener has already
        // shown the next due head (a backlog drained at exactly our pace through hand-overs looks
        // like a trickle otherwise, and the role would never be handed on).
        if (overflow || (claimed >= free && this.reader.offeredHeads().some((t) => !this.running.heldHere(t.docId)))) this.saturatedSince ??= Date.now();
        else if (claimed < free) this.saturatedSince = null; // slots left over: no longer saturated
        spread = conflicts > 0;
        // The queue moved: look again at once — unless the listener is attached and either the
        // round's last look found nothing more due, or the round only took fresh heads the
        // listener handed over (a trickle, not a backlog): it hands over the next due task by itself.
        const listenerHasIt = listen && this.watcher.active && ((drained && conflicts === 0) || handOversOnly);
        // Not the listener, and the round saw the whole due queue, took all it could and lost no
        // race, without filling our slots: go idle (taking the role if it is free) rather than
        // poll for what the listener gets. (Lost races or work left over: the queue is still busy.)
        const helperDone = this.role !== null && !this.role.holding && queueShort && claimed < free && !overflow && conflicts === 0;
        if ((claimed > 0 || conflicts > 0) && !listenerHasIt && !helperDone) continue;
        // Idle. Listening: the listener wakes us when work comes due; poll only past busy keys
        // (another process frees them without touching our queue's head) and sweep now and then.
        if (listen && !this.stopping) await this.listenIfOurs(); // never after stop(): the client may be gone
        // After a round that trusted the listener with the rest of the queue, look once more
        // within pollIntervalMs anyway: a listener that stalls (a black-holed connection) would
        // otherwise leave due tasks waiting for the sweep.
        const cap = blocked || !listen || handOversOnly ? pollIntervalMs : sweepIntervalMs;
        const untilDue = nextDueAt === null ? Infinity : nextDueAt - this.settings.clock();
        await this.sleep(Math.min(cap, untilDue), nextDueAt);
      } catch (err) {
        this.log.error({ err, retryInMs: errorBackoff }, 'oncetask: looking for tasks failed; backing off');
        await this.sleep(errorBackoff);
        errorBackoff = Math.min(MAX_ERROR_BACKOFF_MS, errorBackoff * 2);
      }
    }
    this.watcher.stop();
    if (!this.crashed) await this.role?.stop();
  }

  /** What the testing kit sees of this worker (see `src/testing/internals.ts`). */
  get probe(): WorkerProbe {
    return this.record.probe(this.def.kind, () => this.settings.control.ready, () => this.busy);
  }

  /**
   * Dies like a killed process (the testing kit's `crashWorker`): the loop stops, and nothing
   * more is written for the tasks it holds — no renewal, outcome or release, even when their
   * handlers return — so their leases (and the listener role) simply expire.
   */
  async crash(): Promise<void> {
    this.crashed = true;
    this.stopping = true;
    clearTimeout(this.jitterTimer);
    this.watcher.stop();
    this.role?.abandon();
    for (const run of this.running.values()) run.lease.ended = true;
    this.wake();
    await within(this.loop ?? Promise.resolve(), SHUTDOWN_WRITE_ALLOWANCE_MS);
  }

  /**
   * Saturated for a while: give the listener role up, so an idle process (they watch the role)
   * takes it and helps with the backlog.
   */
  private async giveUpRole(): Promise<void> {
    // Its listener goes too: the head changes with every claim in a backlog, and each change
    // would cost a read (on the emulator, a scan of the collection per commit).
    this.watcher.stop();
    await this.role?.release();
  }

  /** Attaches the queue listener, if this process holds (or now takes) the kind's listener role. */
  private async listenIfOurs(): Promise<void> {
    if (this.role && !(await this.role.acquire())) {
      this.watcher.stop();
      return;
    }
    if (!this.stopping) this.watcher.start();
  }

  /** A claim round, watched for a backend that stops answering (see {@link watchSlow}). */
  private async watchedRound(free: number, spread: boolean, findNextDue: boolean): Promise<RoundResult> {
    this.rounds++;
    try {
      return await watchSlow(this.claimer.round(free, spread, findNextDue), this.log);
    } finally {
      this.rounds--;
    }
  }

  /** Whether this worker runs a task or is in the middle of a claim round (a claimed task may not be counted as running yet). */
  get busy(): boolean {
    return this.running.size > 0 || this.rounds > 0;
  }

  /** When this kind's next task comes due in the store (a running one: when its lease expires); null if none. */
  nextDueAt(): Promise<Date | null> {
    if (this.pausedUntil() !== null) return Promise.resolve(null); // nothing is due for a paused kind
    return this.settings.store.nextDueAt(this.def.kind, CLAIMABLE_STATUSES);
  }

  /** Runs a lease the claimer just won, in a slot of its own; `key` is its resource key (null without one). */
  private startRun(lease: Lease, key: string | null): void {
    // Claimed while stop() was under way: the execution hands it straight back, never running it.
    const controller = new AbortController();
    const id = lease.token;
    const run: ActiveRun = { lease, controller, done: Promise.resolve() };
    this.running.add(id, run);
    run.done = this.execution.run(lease, controller).finally(() => {
      const wasFull = this.slotsInUse >= this.options.concurrency;
      this.running.delete(id);
      if (key !== null) this.reader.rememberReleasedLock(lease, key);
      // A freed slot is worth a look at the queue only if slots were all taken (due work may be
      // waiting) or a key was released; otherwise the listener reports new work by itself.
      if (wasFull || key !== null || !this.watcher.active || !this.settings.listen) this.wake();
    });
  }

  /** Slots in use (see {@link LocalRuns.slotsInUse}). */
  private get slotsInUse(): number {
    return this.running.slotsInUse(this.options.concurrency);
  }

  /**
   * A run's handler returned: its slot is free while the outcome is written. If slots were all
   * taken, look at the queue now, so the next claims go out with that outcome write.
   */
  private freeSlot(token: string): void {
    const wasFull = this.slotsInUse >= this.options.concurrency;
    this.running.handlerReturned(token);
    if (wasFull) this.wake();
  }
}
