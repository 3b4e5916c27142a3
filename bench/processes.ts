/**
 * Bench phases with several worker processes on one emulator: a backlog drained by 1, 2 or 4
 * processes (throughput, claim conflicts, billed operations), and a trickle of tasks created one
 * at a time while the workers listen (billed operations per task, every process's listener
 * reads counted). Each worker is a child process (bench/worker.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Firestore } from '@google-cloud/firestore';
import { OnceTaskManager, type OperationStats } from '../src/index.js';
import { benchTask } from './tasks.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.timeOrigin + performance.now();
const sumOps = (s: OperationStats): number => s.reads + s.writes + s.deletes;

/** A worker child process and what it reports. */
interface Child {
  process: ChildProcess;
  /** Its counters, how many handlers it started, and its CPU time so far. */
  report(): Promise<ChildReport>;
}

/** What a worker child reports (bench/worker.ts). */
interface ChildReport {
  stats: OperationStats;
  started: number;
  cpuMs: number;
  /** Coalesced write flushes sent, and the writes they carried. */
  flushes: number;
  flushedWrites: number;
}

/** Settings of one phase's worker processes. */
export interface PhaseSettings {
  project: string;
  /** Handler concurrency per process. */
  concurrency: number;
  /** Manager `shards` (1: the unsharded queue). */
  shards?: number;
  /** Whether idle workers listen (default true; `'auto'` polls on the emulator). */
  listen?: boolean | 'auto';
  /** Kinds each process runs (1 or 3; each has its own queue listener). */
  kinds?: 1 | 3;
  /** Workers' `retentionMs` (default: the library's). */
  retentionMs?: number;
}

async function startChild(env: string, collection: string, settings: PhaseSettings, waitGo: boolean): Promise<Child> {
  // BENCH_CPU_PROF=<dir>: each worker writes V8 CPU profiles to <dir>/<phase collection>/ when it exits.
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}/${collection}`] : [];
  const child = spawn(process.execPath, [...prof, '--import', 'tsx', 'bench/worker.ts'], {
    env: {
      ...process.env,
      ONCE_TASK_ENV: env,
      BENCH_PROJECT: settings.project,
      BENCH_COLLECTION: collection,
      BENCH_CONCURRENCY: String(settings.concurrency),
      BENCH_SHARDS: String(settings.shards ?? 1),
      BENCH_LISTEN: settings.listen === false ? '0' : settings.listen === 'auto' ? 'auto' : '1',
      BENCH_WAIT_GO: waitGo ? '1' : '0',
      BENCH_QUIET: '1',
      BENCH_KINDS: String(settings.kinds ?? 1),
      ...(settings.retentionMs !== undefined ? { BENCH_RETENTION_MS: String(settings.retentionMs) } : {}),
    },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`bench worker exited early (${code})`)));
  });
  const report = (): Promise<ChildReport> =>
    new Promise((resolve) => {
      child.once('message', (msg) => resolve(msg as ChildReport));
      child.send('stats');
    });
  return { process: child, report };
}

async function stopChildren(children: readonly Child[]): Promise<void> {
  await Promise.all(children.map((c) => new Promise((resolve) => (c.process.once('exit', resolve), c.process.kill('SIGTERM')))));
}

/** The children's reports, summed (and tasks started, per child). */
interface Totals { flushes: number; flushedWrites: number; ops: number; started: number; refused: number; listenerReads: number; queries: number; writes: number; queryReads: number; startedEach: number[]; cpuMs: number }

/** Sums the children's reports. */
async function reportAll(children: readonly Child[]): Promise<Totals> {
  const reports = await Promise.all(children.map((c) => c.report()));
  return {
    cpuMs: reports.reduce((s, r) => s + r.cpuMs, 0),
    flushes: reports.reduce((s, r) => s + r.flushes, 0),
    flushedWrites: reports.reduce((s, r) => s + r.flushedWrites, 0),
    startedEach: reports.map((r) => r.started),
    queries: reports.reduce((s, r) => s + r.stats.queries, 0),
    queryReads: reports.reduce((s, r) => s + r.stats.reads - r.stats.listenerReads, 0),
    writes: reports.reduce((s, r) => s + r.stats.writes + r.stats.deletes, 0),
    ops: reports.reduce((s, r) => s + sumOps(r.stats), 0),
    started: reports.reduce((s, r) => s + r.started, 0),
    refused: reports.reduce((s, r) => s + r.stats.refusedWrites, 0),
    listenerReads: reports.reduce((s, r) => s + r.stats.listenerReads, 0),
  };
}

/**
 * Waits until every task has started and no task is left pending or running. Returns the
 * longest time no process started a task before the last one started (ms): a stall. With 4
 * processes the emulator sometimes leaves every process's calls unanswered until their
 * 20-second deadline, while a fresh client's calls are answered at once.
 */
async function settled(observer: OnceTaskManager, children: readonly Child[], count: number): Promise<number> {
  let longestStallMs = 0;
  let last = { started: -1, at: now() };
  for (;;) {
    const { started } = await reportAll(children);
    if (started !== last.started) last = { started, at: now() };
    longestStallMs = Math.max(longestStallMs, now() - last.at);
    if (started >= count) break;
    await sleep(50);
  }
  for (;;) {
    const [pending, running] = await Promise.all([observer.countPending(benchTask), observer.list({ kind: benchTask, status: 'running', limit: 1 })]);
    if (pending === 0 && running.tasks.length === 0) return Math.round(longestStallMs);
    await sleep(20);
  }
}

/**
 * CPU time the emulator's processes (its JVM) have used so far, from /proc (0 where there is
 * none; read at a phase's start and end only, since it scans every process). On a 2-core
 * machine the workers and the emulator share the cores: a phase's CPU per task tells where its
 * time went.
 */
export function emulatorCpuMs(): number {
  let ticks = 0;
  try {
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      try {
        if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('cloud-firestore-emulator')) continue;
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
      } catch {
        // the process went away
      }
    }
  } catch {
    return 0;
  }
  return ticks * 10; // USER_HZ is 100 on Linux
}

/** Result of a phase. */
export interface PhaseResult {
  perSec: number;
  /** Conditional writes refused (lost races) per task. */
  conflictRate: number;
  /** Billed operations per task: every process's, the create included. */
  opsPerTask: number;
  /** Of those, listener reads per task. */
  listenerReadsPerTask: number;
  /** Queries per task (each billed at least one read), every process's. */
  queriesPerTask: number;
  /** Reads per task other than listener deliveries (queries and lookups), every process's. */
  otherReadsPerTask: number;
  /** Writes and deletes per task by the workers (the create not included). */
  workerWritesPerTask: number;
  /** Coalesced write flushes per task (round trips of claims, renewals and outcomes), and writes per flush. */
  flushesPerTask: number;
  writesPerFlush: number;
  /** Tasks each process ran (how the work spread). */
  startedEach: number[];
  /** CPU per task of the worker processes together, and of the emulator, in ms. */
  workerCpuMsPerTask: number;
  emulatorCpuMsPerTask: number;
  /** Wall time of the phase, in seconds. */
  seconds: number;
  /** The longest time no process started a task, before the last one started (ms; see {@link settled}). */
  longestStallMs: number;
}

/** A phase's result from the children's reports before and after it. */
function phaseResult(before: Totals, after: Totals, phase: { count: number; creates: number; emulatorMs: number; seconds: number; longestStallMs: number }): PhaseResult {
  const { count } = phase;
  const per = (pick: (t: Totals) => number): number => (pick(after) - pick(before)) / count;
  return {
    perSec: count / phase.seconds,
    conflictRate: per((t) => t.refused),
    opsPerTask: per((t) => t.ops) + phase.creates / count,
    listenerReadsPerTask: per((t) => t.listenerReads),
    queriesPerTask: per((t) => t.queries),
    otherReadsPerTask: per((t) => t.queryReads),
    workerWritesPerTask: per((t) => t.writes),
    flushesPerTask: per((t) => t.flushes),
    writesPerFlush: (after.flushedWrites - before.flushedWrites) / Math.max(1, after.flushes - before.flushes),
    startedEach: after.startedEach.map((n, i) => n - before.startedEach[i]!),
    workerCpuMsPerTask: per((t) => t.cpuMs),
    emulatorCpuMsPerTask: phase.emulatorMs / count,
    seconds: phase.seconds,
    longestStallMs: phase.longestStallMs,
  };
}

/**
 * A backlog of `count` no-op tasks drained by `procs` worker processes that start together.
 * Throughput runs from the start signal until the last outcome is written.
 */
export async function backlogPhase(db: Firestore, procs: number, count: number, settings: PhaseSettings): Promise<PhaseResult> {
  const tag = `p${procs}${settings.shards && settings.shards > 1 ? `s${settings.shards}` : ''}-${randomBytes(3).toString('hex')}`;
  const env = `procs-${tag}`;
  const collection = `bench_procs_${tag}`;
  const producer = new OnceTaskManager({ firestore: db, env, collection, ...(settings.shards ? { shards: settings.shards } : {}) });
  await producer.createMany(benchTask, Array.from({ length: count }, (_, n) => ({ n })));
  const children = await Promise.all(Array.from({ length: procs }, () => startChild(env, collection, settings, true)));
  const before = await reportAll(children);
  const emulatorBefore = emulatorCpuMs();
  const t0 = now();
  for (const c of children) c.process.send('go');
  const longestStallMs = await settled(new OnceTaskManager({ firestore: db, env, collection }), children, count);
  const seconds = (now() - t0) / 1000;
  const after = await reportAll(children);
  const emulatorUsed = emulatorCpuMs() - emulatorBefore;
  await stopChildren(children);
  await dropCollection(db, collection);
  return phaseResult(before, after, { count, creates: count, emulatorMs: emulatorUsed, seconds, longestStallMs });
}

/**
 * Deletes a finished phase's documents (after it was measured). The emulator's queries and
 * listener updates get slower as its database grows, so a phase's leftovers would slow every
 * later phase: with 6,000-task backlog phases kept, the later wake-latency and trickle phases
 * ran about twice as slow.
 */
async function dropCollection(db: Firestore, collection: string): Promise<void> {
  await db.recursiveDelete(db.collection(collection));
}

/**
 * Tasks created one at a time at about `ratePerSec` while `procs` listening workers wait for
 * them: the cost of waking up, counted over every process.
 */
export async function tricklePhase(db: Firestore, procs: number, count: number, ratePerSec: number, settings: PhaseSettings): Promise<PhaseResult> {
  const tag = `t${procs}-${randomBytes(3).toString('hex')}`;
  const env = `trickle-${tag}`;
  const collection = `bench_trickle_${tag}`;
  const producer = new OnceTaskManager({ firestore: db, env, collection, ...(settings.shards ? { shards: settings.shards } : {}) });
  const children = await Promise.all(Array.from({ length: procs }, () => startChild(env, collection, settings, false)));
  await sleep(1500); // first looks done, listeners attached
  const before = await reportAll(children);
  const emulatorBefore = emulatorCpuMs();
  const producerBefore = sumOps(producer.stats());
  const t0 = now();
  for (let n = 0; n < count; n++) {
    await producer.create(benchTask, { n });
    const due = t0 + ((n + 1) * 1000) / ratePerSec;
    if (due > now()) await sleep(due - now());
  }
  const creates = sumOps(producer.stats()) - producerBefore;
  const longestStallMs = await settled(new OnceTaskManager({ firestore: db, env, collection }), children, count);
  const seconds = (now() - t0) / 1000;
  const after = await reportAll(children);
  const emulatorUsed = emulatorCpuMs() - emulatorBefore;
  await stopChildren(children);
  await dropCollection(db, collection);
  return phaseResult(before, after, { count, creates, emulatorMs: emulatorUsed, seconds, longestStallMs });
}

/**
 * Local development as a new user meets it: `procs` worker processes running three kinds each
 * (six queue listeners with 2 processes) wait idle while a producer creates `count` tasks with
 * `createMany`; seconds until the last one has run. On the emulator every listener's query is
 * re-run over the whole collection on each commit, so this measures what listeners cost there.
 */
export async function createWhileListeningPhase(db: Firestore, procs: number, count: number, settings: PhaseSettings): Promise<{ createSeconds: number; totalSeconds: number }> {
  const tag = `l${String(settings.listen ?? true)}-${randomBytes(3).toString('hex')}`;
  const env = `listeners-${tag}`;
  const collection = `bench_listeners_${tag}`;
  const children = await Promise.all(Array.from({ length: procs }, () => startChild(env, collection, { ...settings, kinds: 3 }, false)));
  await sleep(1500); // first looks done, listeners attached
  const producer = new OnceTaskManager({ firestore: db, env, collection });
  const t0 = now();
  await producer.createMany(benchTask, Array.from({ length: count }, (_, n) => ({ n })));
  const createSeconds = (now() - t0) / 1000;
  await settled(new OnceTaskManager({ firestore: db, env, collection }), children, count);
  const totalSeconds = (now() - t0) / 1000;
  await stopChildren(children);
  await dropCollection(db, collection);
  return { createSeconds, totalSeconds };
}
