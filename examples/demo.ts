/**
 * `npm run demo`: oncetask end to end on a local Firestore emulator.
 *
 * This process is the producer; two child processes (demo-worker.ts) are the workers. It
 * creates ~200 tasks (plus duplicates, flaky and broken ones, and a scheduled one), waits
 * until every task is terminal, prints a summary, then stops the workers and the emulator.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEmulator } from '../scripts/emulator.js';
import { OnceTaskManager, type TaskInfo, type TaskInput } from '../src/index.js';
import { demoFirestore, sendWelcomeEmail } from './demo-tasks.js';

const USERS = 200;
const WORKERS = 2;
/** Give up well before the 60 s budget rather than hang. */
const DEADLINE = Date.now() + 55_000;
const started = Date.now();
const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;

interface Worker {
  n: number;
  child: ChildProcess;
  ready: Promise<void>;
  exited: Promise<number | null>;
}

/** Starts demo-worker.ts in its own Node process (tsx compiles it on the fly). */
function spawnWorker(n: number, env: string): Worker {
  const file = fileURLToPath(new URL('./demo-worker.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: fileURLToPath(new URL('..', import.meta.url)), // where `--import tsx` is resolved
    env: { ...process.env, ONCE_TASK_ENV: env, ONCE_TASK_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'], // ipc: the worker says 'ready'
  });
  // The worker logs pino JSON; show one short line per entry instead.
  createInterface({ input: child.stdout! }).on('line', (line) => console.log(`  [worker ${n}] ${brief(line)}`));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    void exited.then((code) => reject(new Error(`worker ${n} exited with ${code} before it was ready`)));
  });
  return { n, child, ready, exited };
}

function brief(line: string): string {
  try {
    const e = JSON.parse(line) as { level: number; msg: string; taskId?: string; attempt?: number; err?: { message?: string } };
    const level = e.level >= 50 ? 'ERROR' : e.level >= 40 ? 'WARN' : 'INFO';
    const task = e.taskId ? ` [${e.taskId}, attempt ${e.attempt}]` : '';
    return `${level} ${e.msg}${task}${e.err?.message ? `: ${e.err.message}` : ''}`;
  } catch {
    return line;
  }
}

/** Every task of the environment, following `list` cursors. */
async function listAll(manager: OnceTaskManager): Promise<TaskInfo[]> {
  const all: TaskInfo[] = [];
  let cursor: string | undefined;
  do {
    const page = await manager.list({ limit: 1000, ...(cursor ? { cursor } : {}) });
    all.push(...page.tasks);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return all;
}

async function main(): Promise<void> {
  // Reuses FIRESTORE_EMULATOR_HOST if set, else starts `gcloud emulators firestore` on a free port.
  const emulator = await startEmulator({ log: (l) => !l.startsWith('> ') && console.log(`[emulator] ${l}`) });
  process.env.FIRESTORE_EMULATOR_HOST = emulator.host;
  // Not on GCP: skip the SDK's metadata-server probe (and its MetadataLookupWarning). Inherited by the workers.
  process.env.METADATA_SERVER_DETECTION ??= 'none';
  // A fresh environment per run: old runs' tasks (same IDs) stay invisible to this one.
  const env = `demo-${randomBytes(4).toString('hex')}`;
  const firestore = demoFirestore();
  const manager = new OnceTaskManager({ firestore, env });
  const workers = Array.from({ length: WORKERS }, (_, i) => spawnWorker(i + 1, env));
  try {
    await Promise.all(workers.map((w) => w.ready));
    console.log(`\n${elapsed()}  ${WORKERS} workers up (pids ${workers.map((w) => w.child.pid).join(', ')}), env "${env}"`);

    // A scheduled task first, so its 2 s wait overlaps the rest of the demo.
    await manager.create(sendWelcomeEmail, { userId: 'late', email: 'late@example.com' }, { waitUntil: new Date(Date.now() + 2000) });
    console.log(`${elapsed()}  created welcome:late, due in 2 s`);

    const users: TaskInput<typeof sendWelcomeEmail>[] = Array.from({ length: USERS }, (_, i) => {
      const userId = `user-${String(i + 1).padStart(3, '0')}`;
      const simulate = userId === 'user-100' ? 'broken' : (i + 1) % 40 === 0 ? 'flaky' : undefined;
      return { userId, email: `${userId}@example.com`, ...(simulate ? { simulate } : {}) };
    });
    const batch = await manager.createMany(sendWelcomeEmail, users);
    console.log(`${elapsed()}  createMany: ${batch.created} of ${users.length} created (5 flaky, 1 broken)`);

    // Idempotency: the same IDs again are no-ops, and the stored payload is kept.
    const again = await manager.createMany(sendWelcomeEmail, users.slice(0, 50));
    const dup = await manager.create(sendWelcomeEmail, { userId: 'user-001', email: 'changed@example.com' });
    const kept = (await manager.get(dup.id))?.data as { email: string };
    console.log(`${elapsed()}  createMany of 50 existing: ${again.created} created; create ${dup.id}: created=${dup.created}, stored email still ${kept.email}`);
    try {
      await manager.create(sendWelcomeEmail, { userId: 'x', email: 'not-an-email' });
    } catch (err) {
      console.log(`${elapsed()}  invalid payload rejected before writing: ${(err as Error & { code: string }).code}: ${(err as Error).message}`);
    }

    // Wait until nothing is pending or running: every task is terminal.
    for (;;) {
      const pending = await manager.countPending(sendWelcomeEmail);
      const running = (await manager.list({ kind: sendWelcomeEmail, status: 'running', limit: 1000 })).tasks.length;
      console.log(`${elapsed()}  pending ${pending}, running ${running}`);
      if (pending === 0 && running === 0) break;
      if (Date.now() > DEADLINE) throw new Error('tasks did not finish in time');
      await sleep(1000);
    }

    printSummary(await listAll(manager), workers);
  } finally {
    // SIGTERM: each worker stops claiming, finishes or releases its tasks, and exits 0.
    for (const w of workers) w.child.kill('SIGTERM');
    const codes = await Promise.all(workers.map((w) => w.exited));
    console.log(`\n${elapsed()}  workers stopped (exit codes ${codes.join(', ')})`);
    await firestore.terminate();
    await emulator.stop();
    if (codes.some((c) => c !== 0)) process.exitCode = 1;
  }
}

function printSummary(tasks: TaskInfo[], workers: Worker[]): void {
  const count = (pred: (t: TaskInfo) => boolean): number => tasks.filter(pred).length;
  const succeeded = count((t) => t.status === 'succeeded');
  const failed = tasks.filter((t) => t.status === 'failed');
  const retried = count((t) => t.status === 'succeeded' && t.attempts > 1);
  console.log(`\n  tasks      ${String(tasks.length).padStart(4)}`);
  console.log(`  succeeded  ${String(succeeded).padStart(4)}   (${retried} of them after a failed first attempt)`);
  console.log(`  failed     ${String(failed.length).padStart(4)}`);
  for (const t of failed) console.log(`    ${t.id}: ${t.errors.at(-1)?.code}: ${t.errors.at(-1)?.message}`);

  console.log('\n  worker  pid      tasks run');
  for (const w of workers) {
    const ran = count((t) => (t.result as { worker?: number } | null)?.worker === w.child.pid);
    console.log(`  ${w.n}       ${String(w.child.pid).padEnd(8)} ${String(ran).padStart(4)}`);
  }
  const late = tasks.find((t) => t.id === 'welcome:late');
  if (late?.doneAt) {
    const after = ((late.doneAt.getTime() - late.createdAt.getTime()) / 1000).toFixed(1);
    console.log(`\n  welcome:late was due 2 s after it was created and finished after ${after} s`);
    console.log('  (workers take due tasks oldest-due first; tasks that came due before it went first)');
  }
}

main().then(
  () => console.log(`done in ${elapsed()}`),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
