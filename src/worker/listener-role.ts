import { randomUUID } from 'node:crypto';
import type { DocumentData, Timestamp } from '@google-cloud/firestore';
import type { Clock } from '../clock.js';
import type { OnceTaskLogger } from '../logger.js';
import type { TaskFields } from '../store/conditional-writer.js';
import type { TaskStore, VersionedLock } from '../store/task-store.js';
import { isLockFree } from '../store/key-lock.js';

/**
 * The listener role of a kind: of all processes running the kind, one at a time listens to its
 * queue head, so a new task costs one listener read however many processes wait for work (with
 * every process listening, each would read every head change and race for it). The role is a
 * lease on a document in `<collection>_keys`, taken with a conditional write and renewed every
 * third of its length. The others watch that document only (a read per renewal); when the
 * holder gives the role up (it stopped, or has had more due work than slots for a while) or its
 * lease runs out (it died), those with free slots try to take it, and the one that does is
 * woken: it reads the queue and listens from then on. The others stay idle, so a backlog draws
 * in helpers one at a time (each gives the role up in turn while it overflows), not all at once.
 *
 * Nothing here is needed for correctness: claims are fenced on their own. Two holders at once
 * (a holder partitioned away past its lease) only cost reads; no holder for a while (the
 * holder died) delays new work by at most the role's lease, or until the next sweep.
 */

/** Field set by a release only: the witness of a release whose answer was lost. */
const RELEASED_BY = 'releasedToken';
/** A role document is kept this long after its last write (TTL on `expireAt`): one nobody renews goes away. */
const ROLE_DOC_KEEP_MS = 86_400_000;

export class ListenerRole {
  /** Our token while we hold the role, and the version of our last write. */
  private held: { token: string; version: Timestamp; expiresAt: number } | null = null;
  /** The role document's ID. */
  private readonly docId: string;
  /** The role document as last seen while somebody else holds it. */
  private seen: VersionedLock | null = null;
  private unwatch: (() => void) | null = null;
  private renewTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly store: TaskStore,
    private readonly kind: string,
    private readonly workerId: string,
    private readonly clock: Clock,
    private readonly maxClockSkewMs: number,
    private readonly log: OnceTaskLogger,
    /** Called when we took the role over (the worker should look at the queue), or lost it. */
    private readonly onChange: () => void,
    /** Whether this worker could take work now (free slots, not stopping): only then is the role taken over. */
    private readonly canTakeOver: () => boolean,
    /** How long the role is held without a renewal. */
    private readonly leaseMs: number,
  ) {
    this.docId = store.locks.roleDocId(kind);
  }

  /** Whether this process holds the role (by its own clock, with a safety margin). */
  get holding(): boolean {
    return this.held !== null && this.clock() < this.held.expiresAt - this.leaseMs / 6;
  }

  /**
   * Whether this process should listen to the queue now: it holds the role, or took it just
   * now because it was free. While somebody else holds it, watches the role document instead.
   * On an error (Firestore not answering) answers true: listening costs reads, not correctness.
   */
  async acquire(): Promise<boolean> {
    if (this.stopped) return false;
    if (this.holding) return true;
    this.held = null;
    try {
      const current = this.seen ?? (await this.store.locks.readRole(this.kind));
      if (!isLockFree(current.lock, this.clock() - this.maxClockSkewMs)) {
        this.follow(current);
        return false;
      }
      if (await this.take(current)) return true;
      // Lost the race for it: the watch (if on) shows the winner; otherwise read who has it.
      if (this.unwatch === null) this.follow(await this.store.locks.readRole(this.kind));
      return false;
    } catch (err) {
      this.log.warn({ err }, 'oncetask: listener role unknown; listening anyway');
      this.seen = null;
      return true;
    }
  }

  /** Makes a stopped role usable again (the worker was started again). */
  resume(): void {
    this.stopped = false;
  }

  /** Gives the role up (best effort: if the write fails, the lease runs out). */
  async release(): Promise<void> {
    const held = this.held;
    clearTimeout(this.renewTimer);
    if (!held) return;
    this.held = null;
    const fields = { holder: null, [RELEASED_BY]: held.token, updatedAt: new Date(this.clock()) };
    try {
      await this.write(fields, held.version, (data) => data[RELEASED_BY] === held.token, 'release listener role');
    } catch (err) {
      this.log.warn({ err }, 'oncetask: could not release the listener role; it expires by itself');
    }
  }

  /** Stops watching and renewing without giving the role up (a crash): its lease runs out. */
  abandon(): void {
    this.stopped = true;
    this.unwatch?.();
    this.unwatch = null;
    this.held = null;
    clearTimeout(this.renewTimer);
    clearTimeout(this.expiryTimer);
  }

  /** Stops watching and renewing, and gives the role up. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unwatch?.();
    this.unwatch = null;
    this.seen = null;
    clearTimeout(this.expiryTimer);
    await this.release();
  }

  /** Takes a free role (conditional on the version seen); true when it is ours. */
  private async take(current: VersionedLock): Promise<boolean> {
    const token = randomUUID();
    const { fields, expiresAt, witness } = this.roleFields(token);
    const version = await this.write({ env: this.store.env, kind: this.kind, resourceKey: '', ...fields }, current.updateTime ?? 'absent', witness, 'take listener role');
    if (version === null) return false;
    this.unwatch?.();
    this.unwatch = null;
    this.seen = null;
    clearTimeout(this.expiryTimer);
    this.held = { token, version, expiresAt };
    if (this.stopped) {
      // stop() ran while the take was on its way: give it straight back.
      await this.release();
      return false;
    }
    this.log.debug({}, 'oncetask: took the listener role');
    this.scheduleRenewal();
    return true;
  }

  /**
   * The fields of holding the role under `token` for a lease from now, its expiry, and their
   * witness (the token with that expiry: set by this write only).
   */
  private roleFields(token: string): { fields: TaskFields; expiresAt: number; witness: (data: DocumentData) => boolean } {
    const now = this.clock();
    const expiresAt = now + this.leaseMs;
    const holder = { token, workerId: this.workerId, expiresAt: new Date(expiresAt) };
    const witness = (data: DocumentData): boolean => {
      const stored = data.holder as { token?: unknown; expiresAt?: { toMillis?: () => number } } | null;
      return stored?.token === token && stored.expiresAt?.toMillis?.() === expiresAt;
    };
    return { fields: { holder, updatedAt: new Date(now), expireAt: new Date(now + ROLE_DOC_KEEP_MS) }, expiresAt, witness };
  }

  /** A conditional write of the role document; its new version, or null if it changed first. */
  private async write(fields: TaskFields, precondition: Timestamp | 'absent', witness: (data: DocumentData) => boolean, what: string): Promise<Timestamp | null> {
    const result = await this.store.commitConditional([{ target: 'lock', docId: this.docId, fields, precondition }], { witness, what });
    return Array.isArray(result) ? result[0]! : null;
  }

  private scheduleRenewal(): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => void this.renew(), this.leaseMs / 3);
    this.renewTimer.unref?.();
  }

  private async renew(): Promise<void> {
    const held = this.held;
    if (!held || this.stopped) return;
    const { fields, expiresAt, witness } = this.roleFields(held.token);
    try {
      const version = await this.write(fields, held.version, witness, 'renew listener role');
      if (this.held !== held) return; // released meanwhile
      if (version === null) {
        // Taken over (our lease ran out unseen, or somebody cleared it): listen no more.
        this.held = null;
        this.log.info({}, 'oncetask: listener role taken over by another process');
        this.onChange();
        return;
      }
      held.version = version;
      held.expiresAt = expiresAt;
    } catch (err) {
      this.log.warn({ err }, 'oncetask: could not renew the listener role; trying again');
    }
    if (this.held === held) this.scheduleRenewal();
  }

  /** Watches the role document while somebody else holds it; wakes us when it may be free. */
  private follow(current: VersionedLock): void {
    this.observe(current);
    if (this.unwatch || this.stopped) return;
    this.unwatch = this.store.locks.watchRole(
      this.kind,
      (role) => this.observe(role),
      (err) => {
        this.log.warn({ err }, 'oncetask: listener role watch failed');
        this.unwatch = null;
        this.seen = null;
        this.onChange(); // look again (and listen, if the role cannot be read)
      },
    );
  }

  private observe(role: VersionedLock): void {
    this.seen = role;
    clearTimeout(this.expiryTimer);
    if (this.stopped || this.held) return;
    if (isLockFree(role.lock, this.clock() - this.maxClockSkewMs)) {
      void this.takeOver();
      return;
    }
    // The holder may die: look again once its lease would have run out.
    const inMs = role.lock!.holder!.expiresAt.getTime() + this.maxClockSkewMs - this.clock() + 1;
    this.expiryTimer = setTimeout(() => void this.takeOver(), Math.max(0, inMs));
    this.expiryTimer.unref?.();
  }

  /** The role looks free: take it if we could take work now, and wake the worker if we did. */
  private async takeOver(): Promise<void> {
    if (this.stopped || this.held || !this.canTakeOver()) return;
    if (await this.acquire()) this.onChange();
  }
}
