/**
 * `npm run bench`: the library against the simplest raw-SDK loop on the same emulator, in the
 * same run, plus wake-up latency, scheduled lateness, idle cost and a 50,000-task backlog.
 * Prints a table and, as its last line, one JSON object with the figures.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Firestore } from '@google-cloud/firestore';
import { OnceTaskManager, type OperationStats } from '../src/index.js';
import { startEmulator } from '../src/testing/emulator.js';
import { newTaskFields } from '../src/task-document.js';
import { benchTask, keyedBenchTask } from './tasks.js';
import { backlogPhase, createWhileListeningPhase, emulatorCpuMs, tricklePhase, type PhaseSettings } from './processes.js';
import { runCapacityPhase } from './capacity.js';
import { soak } from './soak.js';

process.env.ONCE_TASK_LOG_LEVEL ??= 'warn';
const PROJECT = 'demo-oncetask-bench';
const N = Number(process.env.BENCH_TASKS ?? 2000);
const CONCURRENCY = 16;
/** Concurrency of the write-batching phases. */
const BATCH_CONCURRENCY = 64;
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 50_000);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
const WAKE_SAMPLES = 100;
/** Trickle phases: tasks created one at a time at this rate while the workers listen. */
const TRICKLE_TASKS = Number(process.env.BENCH_TRICKLE_TASKS ?? 1000);
const TRICKLE_RATE = 100;
/**
 * Backlog of each multi-process phase. Longer than N: a 2,000-task phase lasts about 2 s, and
 * one process's rate then varied 800–1,480 tasks/s between runs, which swamped the ratios.
 */
const PROCS_TASKS = Number(process.env.BENCH_PROCS_TASKS ?? 6000);

/**
 * The multi-process phases: one process (the baseline), 2 and 4 processes, 4 over 8 shards,
 * then one process again. The ratios are against the mean of the two one-process runs, so a
 * drift of the machine over the phases does not land on one side only.
 */
async function processPhases(settings: PhaseSettings) {
  const first = await backlogPhase(db, 1, PROCS_TASKS, settings);
  const p2 = await backlogPhase(db, 2, PROCS_TASKS, settings);
  const p4 = await backlogPhase(db, 4, PROCS_TASKS, settings);
  const s4 = await backlogPhase(db, 4, PROCS_TASKS, { ...settings, shards: 8 });
  const again = await backlogPhase(db, 1, PROCS_TASKS, settings);
  const p1 = { ...first, perSec: (first.perSec + again.perSec) / 2 };
  return { p1, p1first: first, p1again: again, p2, p4, s4 };
}
/**
 * Workers of the trickle phases delete finished tasks in the outcome commit (`retentionMs: 0`,
 * the README's advice on the emulator). A delete is billed like the update it replaces, but kept
 * tasks make the emulator scan them on every query and listener update: with the default
 * retention it fell behind 100 tasks/s, and the workers read pages of tasks that waited.
 */
const TRICKLE_RETENTION_MS = 0;
/** Tasks of the local-development phase with `listen: true` (on the emulator it is slow: fewer). */
const LISTENING_TASKS = 300;

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const run = randomBytes(3).toString('hex');
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};
const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

const emulator = await startEmulator();
process.env.FIRESTORE_EMULATOR_HOST = emulator.host;
const db = new Firestore({ projectId: PROJECT });
const rows: [string, string, string][] = [];
const row = (what: string, value: string, baseline = ''): void => {
  rows.push([what, value, baseline]);
  console.log(`  ${what.padEnd(52)} ${value.padStart(14)}   ${baseline}`);
};

/**
 * A manager on a fresh environment in a collection of its own: the emulator's queries scan the
 * whole collection (production uses indexes), so phases must not share one.
 */
const manager = (name: string, shards = 1): OnceTaskManager =>
  new OnceTaskManager({ firestore: db, env: `${name}-${run}`, collection: `bench_${name}_${run}`, shards, listen: true });
const sumOps = (s: OperationStats): number => s.reads + s.writes + s.deletes;

/** The baseline: query due documents, claim each with a precondition update, mark done. */
let baselineRuns = 0;
async function baseline(count: number): Promise<{ perSec: number; createPerSec: number; opsPerTask: number }> {
  const col = db.collection(`bench_raw_${run}_${baselineRuns++}`);
  let ops = 0;
  const t0 = now();
  const writer = db.bulkWriter();
  for (let i = 0; i < count; i++) void writer.create(col.doc(`r${i}`), { n: i, status: 'pending', waitUntil: new Date() });
  await writer.close();
  ops += count;
  const createPerSec = count / ((now() - t0) / 1000);
  const t1 = now();
  let done = 0;
  for (;;) {
    const snap = await col.where('status', '==', 'pending').where('waitUntil', '<=', new Date()).orderBy('waitUntil').limit(CONCURRENCY).get();
    ops += Math.max(1, snap.size);
    if (snap.empty) break;
    await Promise.all(
      snap.docs.map(async (doc) => {
        try {
          const claimed = await doc.ref.update({ status: 'running' }, { lastUpdateTime: doc.updateTime });
          await doc.ref.update({ status: 'done' }, { lastUpdateTime: claimed.writeTime });
          ops += 2;
          done++;
        } catch {
          // lost a race: another loop has it
        }
      }),
    );
  }
  return { perSec: done / ((now() - t1) / 1000), createPerSec, opsPerTask: ops / count };
}

/** The library: createMany, then one worker (this process) with a no-op handler. */
async function library(count: number, keys: number, concurrency = CONCURRENCY, shards = 1, tag = ''): Promise<{ perSec: number; createPerSec: number; opsPerTask: number }> {
  const m = manager(`${tag}${keys ? `keyed${keys}` : 'plain'}${concurrency}s${shards}`, shards);
  const def = (keys ? keyedBenchTask : benchTask) as unknown as typeof benchTask; // both take { n, key }
  const data = Array.from({ length: count }, (_, n) => ({ n, key: `key-${n % Math.max(1, keys)}` }));
  const t0 = now();
  await m.createMany(def, data);
  const createPerSec = count / ((now() - t0) / 1000);
  let done = 0;
  let finished: () => void = () => undefined;
  const allDone = new Promise<void>((resolve) => (finished = resolve));
  m.handle(def, () => {
    if (++done === count) finished();
  }, { concurrency });
  const t1 = now();
  const cpu0 = process.cpuUsage();
  const emu0 = emulatorCpuMs();
  m.start();
  await allDone;
  // The last outcome writes land right after the last handler returns; an observer (its own
  // counters) waits for them so the worker's operation counts stay the worker's own.
  const observer = new OnceTaskManager({ firestore: db, env: m.env, collection: m.collection });
  while ((await observer.list({ limit: 1, kind: def, status: 'running' })).tasks.length > 0) await sleep(5);
  const seconds = (now() - t1) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const emulatorMs = emulatorCpuMs() - emu0;
  const stats = m.stats();
  await m.stop({ graceMs: 5000 });
  if (process.env.BENCH_CPU) console.error(JSON.stringify({ phase: m.collection, perSec: count / seconds, workerCpuMsPerTask: (cpu.user + cpu.system) / 1000 / count, emulatorCpuMsPerTask: emulatorMs / count }));
  return { perSec: count / seconds, createPerSec, opsPerTask: sumOps(stats) / count };
}

/**
 * Unmeasured runs of the library and the raw loop before the throughput phases. The emulator's
 * JVM compiles its hot paths under load: a cold one used 2.2–3.2 ms of CPU per task where a warm
 * one used 0.7 (`BENCH_CPU=1 BENCH_ONLY=batch`), and whichever phase ran first paid for it —
 * the raw loop ran at 198–371 tasks/s over the stops that way. Both sides are measured warm.
 */
async function warmUp(): Promise<void> {
  await library(N, 0, BATCH_CONCURRENCY, 1, 'warm');
  await baseline(N);
  await library(N, 0, BATCH_CONCURRENCY, 1, 'warmagain');
}

/** createMany against a raw BulkWriter loop, alternating, best of two each. */
async function creates(count: number): Promise<{ lib: number; raw: number }> {
  let lib = 0;
  let raw = 0;
  for (let round = 0; round < 2; round++) {
    const col = db.collection(`bench_create_${run}_${round}`);
    let t = now();
    const writer = db.bulkWriter();
    // The same documents the library writes, so only the library's own work differs.
    for (let i = 0; i < count; i++) {
      void writer.create(col.doc(`c${i}`), newTaskFields({ id: `t${i}`, kind: 'bench', env: 'raw', data: { n: i }, resourceKey: null, waitUntil: new Date() }));
    }
    await writer.close();
    raw = Math.max(raw, count / ((now() - t) / 1000));
    const m = manager(`create${round}`);
    t = now();
    await m.createMany(benchTask, Array.from({ length: count }, (_, n) => ({ n })));
    lib = Math.max(lib, count / ((now() - t) / 1000));
  }
  return { lib, raw };
}

/** A listening worker in a child process; resolves once it is idle. */
async function childWorker(env: string): Promise<{ child: ChildProcess; starts: Map<string, number>; stats(): Promise<OperationStats> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/worker.ts'], {
    env: { ...process.env, ONCE_TASK_ENV: env, BENCH_PROJECT: PROJECT },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const starts = new Map<string, number>();
  let ready: () => void = () => undefined;
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  let buffer = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (line === 'ready') ready();
      // Stamped on arrival, on this process's clock: the worker's own clock may be offset from
      // ours (its performance.timeOrigin is taken when it starts, after any wall-clock step).
      const m = /^start (\S+) ([\d.]+)$/.exec(line);
      if (m) starts.set(m[1]!, now());
    }
  });
  await isReady;
  await sleep(1000); // first look done, listener attached
  const stats = (): Promise<OperationStats> =>
    new Promise((resolve) => {
      child.once('message', (msg) => resolve((msg as { stats: OperationStats }).stats));
      child.send('stats');
    });
  return { child, starts, stats };
}

const waitForStart = async (starts: Map<string, number>, id: string, timeoutMs = 10_000): Promise<number> => {
  const deadline = Date.now() + timeoutMs;
  while (!starts.has(id)) {
    if (Date.now() > deadline) throw new Error(`task ${id} did not start within ${timeoutMs} ms`);
    await sleep(1);
  }
  return starts.get(id)!;
};

async function wakeAndSchedule(): Promise<{ wake: number[]; lateness: number[] }> {
  const env = `wake-${run}`;
  const worker = await childWorker(env);
  const producer = new OnceTaskManager({ firestore: db, env });
  const wake: number[] = [];
  for (let i = 0; i < WAKE_SAMPLES; i++) {
    await producer.create(benchTask, { n: i });
    const created = now();
    wake.push((await waitForStart(worker.starts, `t${i}`)) - created);
    await sleep(20);
  }
  const lateness: number[] = [];
  const scheduled = Array.from({ length: 20 }, (_, i) => ({ n: 1000 + i, at: new Date(Date.now() + 500 + i * 150) }));
  for (const s of scheduled) await producer.create(benchTask, { n: s.n }, { waitUntil: s.at });
  for (const s of scheduled) lateness.push((await waitForStart(worker.starts, `t${s.n}`)) - s.at.getTime());
  worker.child.kill('SIGTERM');
  return { wake, lateness };
}

async function idleCost(): Promise<number> {
  const worker = await childWorker(`idle-${run}`);
  const before = await worker.stats();
  await sleep(IDLE_SECONDS * 1000);
  const after = await worker.stats();
  worker.child.kill('SIGTERM');
  return ((after.reads - before.reads) * 3600) / IDLE_SECONDS;
}

/** Claim rate over the first `measure` tasks with `pending` tasks waiting. */
async function backlogRate(pending: number, measure: number): Promise<number> {
  const m = manager(`backlog${pending}`);
  for (let from = 0; from < pending; from += 5000) {
    await m.createMany(benchTask, Array.from({ length: Math.min(5000, pending - from) }, (_, i) => ({ n: from + i })));
  }
  let done = 0;
  let t1 = 0;
  let reached: () => void = () => undefined;
  const measured = new Promise<void>((resolve) => (reached = resolve));
  m.handle(benchTask, () => {
    if (++done === measure) {
      t1 = now();
      reached();
    }
  }, { concurrency: CONCURRENCY });
  const t0 = now();
  m.start();
  await measured;
  await m.stop({ graceMs: 2000 });
  return measure / ((t1 - t0) / 1000);
}

/** Prints the run's JSON line, stops the emulator and exits. */
async function finish(result: object): Promise<never> {
  await db.terminate();
  await emulator.stop();
  console.log(JSON.stringify(result));
  process.exit(0);
}

const ONLY = process.env.BENCH_ONLY; // e.g. "backlog": run that measurement alone
if (ONLY === 'backlog') {
  const small = await backlogRate(1000, 1000);
  const big = await backlogRate(BACKLOG, 1000);
  await finish({ backlogPerSec: round(big, 1), smallBacklogPerSec: round(small, 1), backlogRatio: round(big / small) });
}
if (ONLY === 'keyed') {
  const lib = await library(N, 0);
  const keyed = await library(N, 100);
  await finish({ libraryPerSec: round(lib.perSec, 1), keyedPerSec: round(keyed.perSec, 1), keyedRatio: round(keyed.perSec / lib.perSec) });
}
const soakArg = process.argv.indexOf('--soak');
if (soakArg > 0) {
  process.env.ONCE_TASK_LOG_LEVEL = 'error'; // a tenth of the attempts fail on purpose
  const minutes = Number(process.argv[soakArg + 1] ?? '') || 10;
  console.log(`oncetask soak: ${minutes} minutes at 10 tasks/s, 10% failing once; default retention, then retentionMs 0`);
  const keep = await soak(db, minutes);
  const drop = await soak(db, minutes, { retentionMs: 0 });
  const summary = (xs: typeof keep) => ({
    firstPerSec: round(xs[0]!.perSec, 1),
    lastPerSec: round(xs[xs.length - 1]!.perSec, 1),
    lastOverFirst: round(xs[xs.length - 1]!.perSec / xs[0]!.perSec),
    documents: xs[xs.length - 1]!.documents,
    heapGrowthMiB: xs[xs.length - 1]!.heapMiB - xs[0]!.heapMiB,
  });
  await finish({ soakMinutes: minutes, keep: summary(keep), deleteAtOnce: summary(drop) });
}
if (ONLY === 'batch') {
  await warmUp();
  const base = await baseline(N);
  const batched = await library(N, 0, BATCH_CONCURRENCY);
  const keyed = await library(N, 1000, BATCH_CONCURRENCY);
  const sharded = await library(N, 0, BATCH_CONCURRENCY, 8);
  await finish({ baselinePerSec: round(base.perSec, 1), batchPerSec: round(batched.perSec, 1), batchRatio: round(batched.perSec / base.perSec), keyed1000Ratio: round(keyed.perSec / batched.perSec), shardedRatio: round(sharded.perSec / batched.perSec), opsPerTask: round(batched.opsPerTask) });
}
if (ONLY === 'listeners') {
  const settings = { project: PROJECT, concurrency: CONCURRENCY };
  const polling = await createWhileListeningPhase(db, 2, N, { ...settings, listen: false });
  const auto = await createWhileListeningPhase(db, 2, N, { ...settings, listen: 'auto' });
  const listening = await createWhileListeningPhase(db, 2, LISTENING_TASKS, settings);
  await finish({ polling, auto, listenersRatio: round(auto.totalSeconds / polling.totalSeconds), listening, listeningTasks: LISTENING_TASKS });
}
if (ONLY === 'procs') {
  const settings = { project: PROJECT, concurrency: CONCURRENCY };
  await backlogPhase(db, 1, N, settings); // warms the emulator's JVM, as the earlier phases of a full run do
  const { p1, p1first, p1again, p2, p4, s4 } = await processPhases(settings);
  await finish({ p1, p1first, p1again, p2, p4, s4, procs2Ratio: round(p2.perSec / p1.perSec), procs4Ratio: round(p4.perSec / p1.perSec), sharded4Ratio: round(s4.perSec / p1.perSec) });
}
if (ONLY === 'trickle') {
  const settings = { project: PROJECT, concurrency: CONCURRENCY };
  const t1 = await tricklePhase(db, 1, TRICKLE_TASKS, TRICKLE_RATE, { ...settings, retentionMs: TRICKLE_RETENTION_MS });
  const t4 = await tricklePhase(db, 4, TRICKLE_TASKS, TRICKLE_RATE, { ...settings, retentionMs: TRICKLE_RETENTION_MS });
  await finish({ t1, t4 });
}
if (ONLY === 'wake') {
  const { wake, lateness } = await wakeAndSchedule();
  await finish({ wakeP50Ms: round(quantile(wake, 0.5), 1), wakeP99Ms: round(quantile(wake, 0.99), 1), scheduledLatenessP50Ms: round(quantile(lateness, 0.5), 1) });
}
console.log(`oncetask bench: ${N} tasks, concurrency ${CONCURRENCY}, emulator ${emulator.host}`);
console.log(`  ${'measure'.padEnd(52)} ${'library'.padStart(14)}   baseline`);
// The latency- and trickle-sensitive phases run first, on a fresh emulator: after the
// throughput phases it answered slower (wake p50 17.8–18.2 ms in full runs against 6.2 ms with
// BENCH_ONLY=wake; the trickle phases reached 36–47 tasks/s of the offered 100 against 55–99
// alone), and a trickle the emulator cannot keep up with turns into a backlog.
const procSettings = { project: PROJECT, concurrency: CONCURRENCY };
const t1 = await tricklePhase(db, 1, TRICKLE_TASKS, TRICKLE_RATE, { ...procSettings, retentionMs: TRICKLE_RETENTION_MS });
const t4 = await tricklePhase(db, 4, TRICKLE_TASKS, TRICKLE_RATE, { ...procSettings, retentionMs: TRICKLE_RETENTION_MS });
row(`trickle ${TRICKLE_RATE}/s, 1 listening process: ops per task`, t1.opsPerTask.toFixed(2), `listener reads/task ${t1.listenerReadsPerTask.toFixed(2)}`);
row(`trickle ${TRICKLE_RATE}/s, 4 listening processes: ops per task`, t4.opsPerTask.toFixed(2), `listener reads/task ${t4.listenerReadsPerTask.toFixed(2)}; conflicts/task ${t4.conflictRate.toFixed(2)}`);
const { wake, lateness } = await wakeAndSchedule();
row('cross-process wake latency p50 / p99 (ms)', `${quantile(wake, 0.5).toFixed(1)} / ${quantile(wake, 0.99).toFixed(1)}`, '1-minute poll in the Go original');
row('scheduled pick-up lateness p50 (ms)', quantile(lateness, 0.5).toFixed(1), `p99 ${quantile(lateness, 0.99).toFixed(1)}`);
await warmUp();
const base = await baseline(N);
const lib = await library(N, 0);
row('claim + complete throughput (tasks/s)', lib.perSec.toFixed(0), `raw SDK loop: ${base.perSec.toFixed(0)}`);
const keyed = await library(N, 100);
row('  same, over 100 resource keys (tasks/s)', keyed.perSec.toFixed(0), `unkeyed library: ${lib.perSec.toFixed(0)}`);
// Concurrency 64: a claim round's claims go out in one round trip; outcomes and renewals coalesce.
const batched = await library(N, 0, BATCH_CONCURRENCY);
row(`  same, concurrency ${BATCH_CONCURRENCY} (write batching) (tasks/s)`, batched.perSec.toFixed(0), `raw SDK loop: ${base.perSec.toFixed(0)}`);
const keyedBatched = await library(N, 1000, BATCH_CONCURRENCY);
row(`  same, over 1000 resource keys (tasks/s)`, keyedBatched.perSec.toFixed(0), `unkeyed, concurrency ${BATCH_CONCURRENCY}: ${batched.perSec.toFixed(0)}`);
const sharded = await library(N, 0, BATCH_CONCURRENCY, 8);
row(`  same, 8 shards (tasks/s)`, sharded.perSec.toFixed(0), `unsharded: ${batched.perSec.toFixed(0)}`);
const created = await creates(N);
row('createMany (tasks/s)', created.lib.toFixed(0), `raw BulkWriter: ${created.raw.toFixed(0)}`);
row('billed ops per task (create + claim + outcome + reads)', lib.opsPerTask.toFixed(2), `raw SDK loop: ${base.opsPerTask.toFixed(2)}`);
const devPolling = await createWhileListeningPhase(db, 2, N, { ...procSettings, listen: false });
const devAuto = await createWhileListeningPhase(db, 2, N, { ...procSettings, listen: 'auto' });
const devListening = await createWhileListeningPhase(db, 2, LISTENING_TASKS, procSettings);
row(`2 processes x 3 kinds, createMany ${N} → all run (s)`, devAuto.totalSeconds.toFixed(1), `listen: false ${devPolling.totalSeconds.toFixed(1)}; listen: true ${devListening.totalSeconds.toFixed(1)} for ${LISTENING_TASKS} tasks`);
const idle = await idleCost();
row('idle reads per worker process per hour', idle.toFixed(0), `1 s poll: 3600+`);
// The multi-process phases write the most (five 6,000-task backlogs, twelve 2,000-task warm-ups):
// after them the emulator ran the trickle, local-development and wake-latency phases about twice
// as slow (p50 wake 6 ms on a fresh emulator, 26–33 ms after them), so they come after those.
const { p1, p1first, p1again, p2, p4, s4 } = await processPhases(procSettings);
row('1 worker process, backlog (tasks/s)', p1.perSec.toFixed(0), `mean of ${p1first.perSec.toFixed(0)} (first) and ${p1again.perSec.toFixed(0)} (last); ops/task ${p1.opsPerTask.toFixed(2)}`);
row('2 worker processes (tasks/s)', p2.perSec.toFixed(0), `1 process: ${p1.perSec.toFixed(0)}; conflicts/task ${p2.conflictRate.toFixed(2)}; ops/task ${p2.opsPerTask.toFixed(2)}; longest stall ${p2.longestStallMs} ms`);
row('4 worker processes (tasks/s)', p4.perSec.toFixed(0), `1 process: ${p1.perSec.toFixed(0)}; conflicts/task ${p4.conflictRate.toFixed(2)}; ops/task ${p4.opsPerTask.toFixed(2)}; longest stall ${p4.longestStallMs} ms`);
row('4 worker processes, 8 shards (tasks/s)', s4.perSec.toFixed(0), `unsharded: ${p4.perSec.toFixed(0)}; conflicts/task ${s4.conflictRate.toFixed(2)}; ops/task ${s4.opsPerTask.toFixed(2)}; longest stall ${s4.longestStallMs} ms`);
const small = await backlogRate(1000, 1000);
const big = await backlogRate(BACKLOG, 1000);
row(`claim rate with ${BACKLOG} pending (tasks/s)`, big.toFixed(0), `with 1000 pending: ${small.toFixed(0)}`);
const capacity = runCapacityPhase();
row('capacity model (bench/capacity.ts)', `${capacity.shardsNeeded ?? '>64'} shards`, capacity.verdict);

const result = {
  tasks: N,
  concurrency: CONCURRENCY,
  baselinePerSec: round(base.perSec, 1),
  libraryPerSec: round(lib.perSec, 1),
  ratio: round(lib.perSec / base.perSec),
  keyedPerSec: round(keyed.perSec, 1),
  keyedRatio: round(keyed.perSec / lib.perSec),
  batchPerSec: round(batched.perSec, 1),
  batchRatio: round(batched.perSec / base.perSec),
  keyed1000PerSec: round(keyedBatched.perSec, 1),
  keyed1000Ratio: round(keyedBatched.perSec / batched.perSec),
  shardedPerSec: round(sharded.perSec, 1),
  shardedRatio: round(sharded.perSec / batched.perSec),
  procs1PerSec: round(p1.perSec, 1),
  procs2Ratio: round(p2.perSec / p1.perSec),
  procs4Ratio: round(p4.perSec / p1.perSec),
  conflictRate: round(p4.conflictRate),
  opsPerTaskBacklog4Procs: round(p4.opsPerTask),
  sharded4ProcsRatio: round(s4.perSec / p1.perSec),
  opsPerTaskSharded4Procs: round(s4.opsPerTask),
  opsPerTaskTrickle: round(t1.opsPerTask),
  opsPerTask4Procs: round(t4.opsPerTask),
  // Where each multi-process phase's operations and CPU went (see bench/processes.ts).
  phases: { p1, p1first, p1again, p2, p4, s4, t1, t4 },
  localDevSeconds: round(devAuto.totalSeconds, 1),
  localDevPollingSeconds: round(devPolling.totalSeconds, 1),
  listenersRatio: round(devAuto.totalSeconds / devPolling.totalSeconds),
  localDevListeningSecondsFor300: round(devListening.totalSeconds, 1),
  capacityShardsNeeded: capacity.shardsNeeded,
  capacityVerdict: capacity.verdict,
  createPerSec: round(created.lib, 1),
  rawCreatePerSec: round(created.raw, 1),
  createRatio: round(created.lib / created.raw),
  wakeP50Ms: round(quantile(wake, 0.5), 1),
  wakeP99Ms: round(quantile(wake, 0.99), 1),
  scheduledLatenessP50Ms: round(quantile(lateness, 0.5), 1),
  opsPerTask: round(lib.opsPerTask),
  baselineOpsPerTask: round(base.opsPerTask),
  idleReadsPerWorkerHour: round(idle, 0),
  backlogPerSec: round(big, 1),
  smallBacklogPerSec: round(small, 1),
  backlogRatio: round(big / small),
};
await finish(result);
