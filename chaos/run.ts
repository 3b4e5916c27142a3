/**
 * `npm run chaos [-- --minutes N]`: 3 worker processes, one of them SIGKILLed every 2 s and
 * replaced, 5000 tasks (plain, keyed, grouped, 10% throwing, longer than their lease, some
 * cancelled mid-run). Every handler start and end goes to a ledger outside the task documents;
 * at the end the ledger and the tasks are checked. The last line is one JSON object.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Firestore } from '@google-cloud/firestore';
import { OnceTaskManager, type TaskDefinition } from '../dist/index.js';
import { startEmulator } from '../scripts/emulator.js';
import { groupTask, keyedTask, LONG_LEASE_MS, longTask, plainTask } from './tasks.js';

process.env.ONCE_TASK_LOG_LEVEL ??= 'error';
const PROJECT = 'demo-oncetask-chaos';
const minutesArg = process.argv.indexOf('--minutes');
const SOAK_MINUTES = minutesArg > 0 ? Number(process.argv[minutesArg + 1]) : 0;
const WORKERS = 3;
const KILL_EVERY_MS = 2000;
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
let crashes = 0;

function startWorker(): ChildProcess {
  // The workers run the built library (dist/): a replacement worker is up in well under a second.
  const child = spawn(process.execPath, ['--import', 'tsx', 'chaos/worker.ts'], {
    env: { ...process.env, ONCE_TASK_ENV: env, LEDGER: ledgerName, CHAOS_PROJECT: PROJECT },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  live.add(child);
  child.once('exit', (code, signal) => {
    live.delete(child);
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
for (let i = 0; i < WORKERS; i++) startWorker();
const killer = setInterval(() => {
  const victims = [...live];
  const victim = victims[Math.floor(Math.random() * victims.length)];
  if (victim?.pid) {
    killedAt.set(victim.pid, Date.now());
    victim.kill('SIGKILL');
  }
  startWorker();
}, KILL_EVERY_MS);

// ---- the tasks --------------------------------------------------------------------------------
const kinds: TaskDefinition[] = [plainTask, keyedTask, groupTask, longTask];
let created = 0;
let batchNo = 0;
async function produceBatch(): Promise<void> {
  const base = batchNo++ * 10_000;
  const short = () => Math.floor(Math.random() * 40);
  const plain = Array.from({ length: 2900 }, (_, i) => ({ n: base + i, sleepMs: short() }));
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
stopping = true;
await Promise.all([...live].map((c) => new Promise((resolve) => (c.once('exit', resolve), c.kill('SIGTERM')))));

// ---- the checks ---------------------------------------------------------------------------------
interface Execution { taskId: string; kind: string; key: string | null; attempt: number; pid: number; start: number; end?: number; outcome?: string }
const executions = (await db.collection(ledgerName).get()).docs
  .map((d) => d.data() as Execution)
  .filter((e) => typeof e.start === 'number');
/** When an execution stopped: its recorded end, or the moment its worker was killed. */
const stoppedAt = (e: Execution): number => e.end ?? killedAt.get(e.pid) ?? Infinity;

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
let rerunsAfterKill = 0;
let doubleCompletions = 0;
for (const runs of byTask.values()) {
  runs.sort((a, b) => a.start - b.start);
  for (let i = 1; i < runs.length; i++) {
    const prev = runs[i - 1]!;
    if (runs[i]!.start < stoppedAt(prev)) liveLeaseDuplicates++;
    else if (prev.end === undefined) rerunsAfterKill++;
  }
  // Ran to success twice in workers that were not killed: an outcome got lost or written twice.
  const completedAlive = runs.filter((r) => r.outcome === 'ok' && !killedAt.has(r.pid));
  if (completedAlive.length > 1) doubleCompletions++;
}
let keyOverlaps = 0;
const byKey = new Map<string, Execution[]>();
for (const e of executions) if (e.key) byKey.set(`${e.kind}/${e.key}`, [...(byKey.get(`${e.kind}/${e.key}`) ?? []), e]);
for (const runs of byKey.values()) {
  runs.sort((a, b) => a.start - b.start);
  let busyUntil = -Infinity;
  for (const r of runs) {
    if (r.start < busyUntil && r.pid) keyOverlaps++;
    busyUntil = Math.max(busyUntil, stoppedAt(r));
  }
}

const result = {
  tasks: created,
  terminal,
  lost: created - terminal,
  keyOverlaps,
  liveLeaseDuplicates,
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
const pass = result.lost === 0 && keyOverlaps === 0 && liveLeaseDuplicates === 0 && doubleCompletions === 0 && crashes === 0;
console.log(pass ? 'chaos: PASS' : 'chaos: FAIL');
await db.terminate();
await emulator.stop();
console.log(JSON.stringify({ ...result, pass }));
process.exit(pass ? 0 : 1);
