/**
 * `npm run chaos [-- --minutes N]`: 3 worker processes, one of them SIGKILLed every 2 s and
 * replaced, 5000 tasks (plain, keyed, grouped, 10% throwing, longer than their lease, some
 * cancelled mid-run, 1% stubborn: their handler ignores its signal). Each worker talks to the
 * emulator through its own fault proxy: a random worker is partitioned for 3–15 s now and then,
 * answers to its calls are lost, and every third worker's clock runs 1.5 s ahead. Every handler
 * start, signal abort and end goes to a ledger outside the task documents; at the end the
 * ledger and the tasks are checked. The last line is one JSON object.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Firestore } from '@google-cloud/firestore';
import { OnceTaskManager, type TaskDefinition } from '../dist/index.js';
import { startEmulator } from '../src/testing/emulator.js';
import { FaultProxy } from '../scripts/fault-proxy.js';
import { groupTask, keyedTask, LONG_LEASE_MS, longTask, plainTask } from './tasks.js';

process.env.ONCE_TASK_LOG_LEVEL ??= 'error';
// Workers reach the emulator through fault proxies, not FIRESTORE_EMULATOR_HOST: no GCE metadata lookup.
process.env.METADATA_SERVER_DETECTION ??= 'none';
const PROJECT = 'demo-oncetask-chaos';
const minutesArg = process.argv.indexOf('--minutes');
const SOAK_MINUTES = minutesArg > 0 ? Number(process.argv[minutesArg + 1]) : 0;
const WORKERS = 3;
const KILL_EVERY_MS = 2000;
const PARTITION_EVERY_MS = 5000;
const LOST_ACK_EVERY_MS = 1500;
const SKEW_MS = 1500;
const TIME_LIMIT_MS = Math.max(9 * 60_000, SOAK_MINUTES * 60_000 + 5 * 60_000);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const emulator = await startEmulator();
process.env.FIRESTORE_EMULATOR_HOST = emulator.host;
const db = new Firestore({ projectId: PROJECT });
const env = `chaos-${randomBytes(3).toString('hex')}`;
const ledgerName = `ledger-${env}`;
const producer = new OnceTaskManager({ firestore: db, env });
const started = Date.now();

// ---- workers, and the killer ----------------------------------------------------------------
const live = new Set<ChildProcess>();
const killedAt = new Map<number, number>(); // pid -> when we SIGKILLed it
const proxyOf = new Map<ChildProcess, FaultProxy>();
const [emulatorHostname, emulatorPort] = emulator.host.split(':');
let crashes = 0;
let partitions = 0;
let lostAcks = 0;
let started_ = 0;
let skewedWorkers = 0;
const skewedPids = new Set<number>();

async function startWorker(): Promise<ChildProcess> {
  const proxy = await FaultProxy.start({ host: emulatorHostname!, port: Number(emulatorPort) });
  const skewed = started_++ % 3 === 0;
  if (skewed) skewedWorkers++;
  // The workers run the built library (dist/): a replacement worker is up in well under a second.
  const child = spawn(process.execPath, ['--import', 'tsx', 'chaos/worker.ts'], {
    env: {
      ...process.env,
      ONCE_TASK_ENV: env,
      LEDGER: ledgerName,
      CHAOS_PROJECT: PROJECT,
      CHAOS_TASKS_HOST: proxy.host,
      CHAOS_SKEW_MS: skewed ? String(SKEW_MS) : '0',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  live.add(child);
  if (skewed && child.pid) skewedPids.add(child.pid);
  proxyOf.set(child, proxy);
  child.once('exit', (code, signal) => {
    live.delete(child);
    const p = proxyOf.get(child);
    if (p) lostAcks += p.stats.answersDropped;
    proxyOf.delete(child);
    void p?.close();
    const ours = killedAt.has(child.pid!) || stopping;
    if (!ours && (code !== 0 || signal !== null)) {
      crashes++;
      console.error(`worker ${child.pid} crashed (${signal ?? code})`);
    }
  });
  return child;
}

let stopping = false;
// Whatever happens to this process, its workers go with it.
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});
for (let i = 0; i < WORKERS; i++) await startWorker();
const pick = (): ChildProcess | undefined => {
  const all = [...live];
  return all[Math.floor(Math.random() * all.length)];
};
const killer = setInterval(() => {
  const victim = pick();
  if (victim?.pid) {
    killedAt.set(victim.pid, Date.now());
    victim.kill('SIGKILL');
  }
  void startWorker();
}, KILL_EVERY_MS);
// Network faults on a worker's connections to Firestore (its ledger writes go direct).
let partitioned: FaultProxy | null = null;
const partitioner = setInterval(() => {
  const victim = pick();
  const proxy = victim ? proxyOf.get(victim) : undefined;
  if (!proxy || partitioned) return;
  partitioned = proxy;
  partitions++;
  if (Math.random() < 0.5) proxy.partition();
  else proxy.blackhole();
  setTimeout(() => {
    proxy.heal();
    partitioned = null;
  }, 3000 + Math.random() * 12_000);
}, PARTITION_EVERY_MS);
const dropper = setInterval(() => {
  const victim = pick();
  if (victim) proxyOf.get(victim)?.dropAnswers(1);
}, LOST_ACK_EVERY_MS);

// ---- the tasks --------------------------------------------------------------------------------
const kinds: TaskDefinition[] = [plainTask, keyedTask, groupTask, longTask];
let created = 0;
let batchNo = 0;
async function produceBatch(): Promise<void> {
  const base = batchNo++ * 10_000;
  const short = () => Math.floor(Math.random() * 40);
  // 1% of plain tasks are stubborn: they sleep past their timeout, ignoring the aborted signal.
  const plain = Array.from({ length: 2900 }, (_, i) => (i % 100 === 7 ? { n: base + i, sleepMs: 2500, stubborn: true } : { n: base + i, sleepMs: short() }));
  const keyed = Array.from({ length: 1000 }, (_, i) => ({ n: base + i, key: `acct-${i % 100}`, sleepMs: short() }));
  const grouped = Array.from({ length: 1000 }, (_, i) => ({ n: base + i, key: `acct-${i % 100}`, sleepMs: short() }));
  const long = Array.from({ length: 100 }, (_, i) => ({ n: base + i, sleepMs: LONG_LEASE_MS * 2 }));
  const results = await Promise.all([
    producer.createMany(plainTask, plain),
    producer.createMany(keyedTask, keyed),
    producer.createMany(groupTask, grouped),
    producer.createMany(longTask, long),
  ]);
  created += results.reduce((sum, r) => sum + r.created, 0);
  // Cancel some long tasks at random moments, most of them while they run.
  for (let i = 0; i < 20; i++) {
    setTimeout(() => void producer.cancel(`l${base + i * 5}`).catch(() => undefined), 1000 + Math.random() * 8000);
  }
}

/** Tasks not yet ended, by one COUNT per status (cheap; a list per kind and status is not). */
async function openCount(): Promise<number> {
  const counts = await Promise.all(
    ['pending', 'running', 'cancelling'].map(async (status) =>
      (await db.collection('onceTasks').where('env', '==', env).where('status', '==', status).count().get()).data().count,
    ),
  );
  return counts.reduce((a, b) => a + b, 0);
}

await produceBatch();
while (SOAK_MINUTES > 0 && Date.now() - started < SOAK_MINUTES * 60_000) {
  await sleep(30_000);
  await produceBatch();
}
while ((await openCount()) > 0 && Date.now() - started < TIME_LIMIT_MS) await sleep(2000);
clearInterval(killer);
clearInterval(partitioner);
clearInterval(dropper);
for (const proxy of proxyOf.values()) proxy.heal();
stopping = true;
await Promise.all([...live].map((c) => new Promise((resolve) => (c.once('exit', resolve), c.kill('SIGTERM')))));

// ---- the checks ---------------------------------------------------------------------------------
interface Execution { taskId: string; kind: string; key: string | null; attempt: number; pid: number; start: number; end?: number; outcome?: string; abortedAt?: number; stubborn?: boolean }
const executions = (await db.collection(ledgerName).get()).docs
  .map((d) => d.data() as Execution)
  .filter((e) => typeof e.start === 'number');
/**
 * Until when an execution was live: its end, the moment its signal aborted, or the moment its
 * worker was killed, whichever came first. A stubborn handler runs on after its abort; the
 * library keeps its task and key in that process, but other workers may act once its lease is
 * gone — which is safe only because its signal said so.
 */
const stoppedAt = (e: Execution): number => Math.min(e.end ?? Infinity, e.abortedAt ?? Infinity, killedAt.get(e.pid) ?? Infinity);

const tasks = (await Promise.all(kinds.map(async (k) => {
  const all = [];
  let cursor: string | undefined;
  do {
    const page = await producer.list({ kind: k, limit: 1000, cursor });
    all.push(...page.tasks);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return all;
}))).flat();
const terminal = tasks.filter((t) => ['succeeded', 'failed', 'cancelled'].includes(t.status)).length;

const byTask = new Map<string, Execution[]>();
for (const e of executions) byTask.set(`${e.kind}/${e.taskId}`, [...(byTask.get(`${e.kind}/${e.taskId}`) ?? []), e]);
let liveLeaseDuplicates = 0;
let overlapsWhileSignalLive = 0;
let rerunsAfterKill = 0;
let doubleCompletions = 0;
for (const runs of byTask.values()) {
  runs.sort((a, b) => a.start - b.start);
  // Any two executions of one task whose signals were both un-aborted at the same moment.
  for (let i = 0; i < runs.length; i++) {
    for (let j = i + 1; j < runs.length; j++) if (runs[j]!.start < stoppedAt(runs[i]!)) overlapsWhileSignalLive++;
  }
  for (let i = 1; i < runs.length; i++) {
    const prev = runs[i - 1]!;
    if (runs[i]!.start < stoppedAt(prev)) liveLeaseDuplicates++;
    else if (prev.end === undefined) rerunsAfterKill++;
  }
  // Ran to success twice in workers that were not killed: an outcome got lost or written twice.
  // (A stubborn handler that returned after its abort completed nothing the library recorded.)
  const completedAlive = runs.filter((r) => r.outcome === 'ok' && !killedAt.has(r.pid) && (r.abortedAt === undefined || r.abortedAt > (r.end ?? 0)));
  if (completedAlive.length > 1) doubleCompletions++;
}
let keyOverlaps = 0;
const byKey = new Map<string, Execution[]>();
for (const e of executions) if (e.key) byKey.set(`${e.kind}/${e.key}`, [...(byKey.get(`${e.kind}/${e.key}`) ?? []), e]);
for (const runs of byKey.values()) {
  runs.sort((a, b) => a.start - b.start);
  let busyUntil = -Infinity;
  let busyWith: Execution | undefined;
  for (const r of runs) {
    if (r.start < busyUntil && r.pid) {
      keyOverlaps++;
      // A failing run explains itself: both executions, with their workers' fates.
      const describe = (e: Execution) => ({ ...e, killedAt: killedAt.get(e.pid), skewed: skewedPids.has(e.pid) });
      console.error('key overlap', JSON.stringify({ earlier: describe(busyWith!), later: describe(r) }));
    }
    if (stoppedAt(r) > busyUntil) {
      busyUntil = stoppedAt(r);
      busyWith = r;
    }
  }
}

const result = {
  tasks: created,
  terminal,
  lost: created - terminal,
  keyOverlaps,
  liveLeaseDuplicates,
  overlapsWhileSignalLive,
  partitions,
  lostAcks,
  skewedWorkers,
  stubbornHandlers: executions.filter((e) => e.stubborn && e.abortedAt !== undefined && (e.end ?? Infinity) > e.abortedAt).length,
  doubleCompletions,
  workerCrashes: crashes,
  killed: killedAt.size,
  rerunsAfterKill,
  executions: executions.length,
  succeeded: tasks.filter((t) => t.status === 'succeeded').length,
  failed: tasks.filter((t) => t.status === 'failed').length,
  cancelled: tasks.filter((t) => t.status === 'cancelled').length,
  seconds: Math.round((Date.now() - started) / 1000),
};
const pass = result.lost === 0 && keyOverlaps === 0 && liveLeaseDuplicates === 0 && overlapsWhileSignalLive === 0 && doubleCompletions === 0 && crashes === 0;
console.log(pass ? 'chaos: PASS' : 'chaos: FAIL');
await db.terminate();
await emulator.stop();
console.log(JSON.stringify({ ...result, pass }));
process.exit(pass ? 0 : 1);
