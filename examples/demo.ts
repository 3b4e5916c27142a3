/**
 * `npm run demo`: oncetask end to end on a local Firestore emulator, with live progress.
 * `npm run demo -- --memory`: the same on the in-memory backend, without Java or an emulator.
 *
 * This process is the producer; two child processes (demo-worker.ts) are the workers. It
 * creates welcome emails (with duplicate deliveries), account syncs on resource keys (a grouped
 * handler), a recurring report, a flaky import that succeeds on its third attempt and a long
 * export that it cancels while it runs; shows the queue live (a progress bar on a terminal,
 * plain lines otherwise), ends by itself with a summary — or, on Ctrl-C, has the workers hand
 * their leases back and exits.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import cliProgress from 'cli-progress';
import { startEmulator } from '../src/testing/emulator.js';
import { memoryBackend, OnceTaskManager, TASK_STATUSES, type TaskInfo, type TaskStatus } from '../src/index.js';
import { registerDemoHandlers } from './demo-handlers.js';
import { buildReport, demoFirestore, exportArchive, importFeed, sendWelcomeEmail, syncAccount } from './demo-tasks.js';

const USERS = 150;
const ACCOUNTS = 8;
const CHANGES_PER_ACCOUNT = 6;
const REPORTS_WANTED = 3;
const WORKERS = 2;
/** Give up well before a minute rather than hang. */
const DEADLINE = Date.now() + 55_000;
const started = Date.now();
const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;

interface Worker {
  n: number;
  /** Its pid (in memory mode: its number; the workers run in this process). */
  pid: number;
  /** Asks it to stop: SIGTERM to the process (it finishes or hands back its tasks, and exits). */
  stop(): void;
  ready: Promise<void>;
  exited: Promise<number | null>;
}

/** Starts demo-worker.ts in its own Node process (tsx compiles it on the fly). */
function spawnWorker(n: number, env: string): Worker {
  const file = fileURLToPath(new URL('./demo-worker.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: fileURLToPath(new URL('..', import.meta.url)), // where `--import tsx` is resolved
    env: { ...process.env, ONCE_TASK_ENV: env, ONCE_TASK_LOG_LEVEL: 'error' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'], // ipc: the worker says 'ready'
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    void exited.then((code) => reject(new Error(`worker ${n} exited with ${code} before it was ready`)));
  });
  return { n, pid: child.pid!, stop: () => child.kill('SIGTERM'), ready, exited };
}

/** Live progress: a bar on a terminal, a plain line a second otherwise. */
class Progress {
  private readonly tty = Boolean(process.stdout.isTTY);
  private readonly bars = this.tty ? new cliProgress.MultiBar({ format: ' {bar} {value}/{total} done | {counts} | {rate} tasks/s', barsize: 24, hideCursor: true, clearOnComplete: false }, cliProgress.Presets.shades_classic) : null;
  private readonly bar = this.bars?.create(1, 0, { counts: '', rate: '0' }) ?? null;
  /** Recent (time, done) samples: the rate is taken over the last second or so. */
  private samples: { at: number; done: number }[] = [];
  private printedAt = 0;

  /** A line above the bar (or a plain line). */
  note(text: string): void {
    if (this.bars) this.bars.log(`${elapsed().padStart(7)}  ${text}\n`);
    else console.log(`${elapsed().padStart(7)}  ${text}`);
  }

  update(counts: Record<TaskStatus, number>): void {
    const total = TASK_STATUSES.reduce((a, s) => a + counts[s], 0);
    const done = counts.succeeded + counts.failed + counts.cancelled;
    const now = Date.now();
    this.samples = [...this.samples.filter((p) => now - p.at <= 1500), { at: now, done }];
    const oldest = this.samples[0]!;
    const rate = now > oldest.at ? ((done - oldest.done) * 1000) / (now - oldest.at) : 0;
    const text = TASK_STATUSES.map((s) => `${s} ${counts[s]}`).join(' ');
    if (this.bar) {
      this.bar.setTotal(Math.max(1, total));
      this.bar.update(done, { counts: text, rate: rate.toFixed(0) });
    } else if (now - this.printedAt >= 1000) {
      this.printedAt = now;
      console.log(`${elapsed().padStart(7)}  ${done}/${total} done | ${text} | ${rate.toFixed(0)} tasks/s`);
    }
  }

  stop(): void {
    this.bars?.stop();
  }
}

/** The demo's place to keep tasks: the emulator with two worker processes, or (`--memory`) memory with two in-process workers. */
interface Setup {
  manager: OnceTaskManager;
  workers: Worker[];
  close(): Promise<void>;
}

async function onEmulator(env: string): Promise<Setup> {
  // Reuses FIRESTORE_EMULATOR_HOST if set, else starts `gcloud emulators firestore` on a free port.
  const emulator = await startEmulator({ log: (l) => !l.startsWith('> ') && console.log(`[emulator] ${l}`) });
  process.env.FIRESTORE_EMULATOR_HOST = emulator.host;
  // Not on GCP: skip the SDK's metadata-server probe (and its MetadataLookupWarning). Inherited by the workers.
  process.env.METADATA_SERVER_DETECTION ??= 'none';
  const firestore = demoFirestore();
  const workers = Array.from({ length: WORKERS }, (_, i) => spawnWorker(i + 1, env));
  return { manager: new OnceTaskManager({ firestore, env }), workers, close: async () => (await firestore.terminate(), await emulator.stop()) };
}

/** `--memory`: no Java, no emulator; the workers are managers in this process sharing one memory backend. */
function inMemory(env: string): Setup {
  // The workers log in this process: errors only, as the worker processes do.
  process.env.ONCE_TASK_LOG_LEVEL ??= 'error';
  const backend = memoryBackend();
  const workers: Worker[] = Array.from({ length: WORKERS }, (_, i) => {
    const manager = new OnceTaskManager({ backend, env });
    registerDemoHandlers(manager, i + 1);
    manager.start();
    let stopped: Promise<number | null> | null = null;
    const stop = (): Promise<number | null> => (stopped ??= manager.stop({ graceMs: 2000 }).then(() => 0));
    let exit!: (code: number | null) => void;
    const exited = new Promise<number | null>((resolve) => (exit = resolve));
    return { n: i + 1, pid: i + 1, stop: () => void stop().then(exit), ready: Promise.resolve(), exited };
  });
  // Ctrl-C: the in-process workers hand their leases back like the processes would.
  process.once('SIGINT', () => workers.forEach((w) => w.stop()));
  return { manager: new OnceTaskManager({ backend, env }), workers, close: async () => undefined };
}

async function main(): Promise<void> {
  // A fresh environment per run: old runs' tasks (same IDs) stay invisible to this one.
  const env = `demo-${randomBytes(4).toString('hex')}`;
  const memory = process.argv.includes('--memory');
  if (memory) console.log('memory backend: no emulator; two workers in this process share one in-memory database');
  const { manager, workers, close } = memory ? inMemory(env) : await onEmulator(env);
  const progress = new Progress();
  let interrupted = false;
  // Ctrl-C: the workers get SIGINT too and hand their leases back; we wait for them, then go.
  process.once('SIGINT', () => {
    interrupted = true;
    progress.note('Ctrl-C: stopping the workers (they hand back their leases)');
  });
  try {
    await Promise.all(workers.map((w) => w.ready));
    progress.note(`${WORKERS} workers up (pids ${workers.map((w) => w.pid).join(', ')}), env "${env}"`);

    const users = Array.from({ length: USERS }, (_, i) => ({ userId: `user-${String(i + 1).padStart(3, '0')}`, email: `user-${i + 1}@example.com` }));
    const first = await manager.createMany(sendWelcomeEmail, users);
    // The signup events are delivered again (at-least-once queues do that): same IDs, no new tasks.
    const again = await manager.createMany(sendWelcomeEmail, users.slice(0, 50));
    progress.note(`welcome emails: ${first.created} created; the same 50 signups delivered again created ${again.created}`);
    const changes = Array.from({ length: ACCOUNTS * CHANGES_PER_ACCOUNT }, (_, i) => ({ accountId: `acct-${(i % ACCOUNTS) + 1}`, change: i }));
    await manager.createMany(syncAccount, changes);
    progress.note(`account syncs: ${changes.length} changes over ${ACCOUNTS} accounts (one at a time per account, grouped)`);
    await manager.create(buildReport, { name: 'weekly' }, { recurrence: { rrule: 'FREQ=SECONDLY;INTERVAL=2', dtstart: new Date(Date.now() + 1000) } });
    progress.note('recurring report: a generator with FREQ=SECONDLY;INTERVAL=2 (FREQ=WEEKLY in real life)');
    await manager.create(importFeed, { feed: 'prices' });
    await manager.create(exportArchive, { archive: '2026' });

    let cancelled = false;
    let importNoted = false;
    for (;;) {
      if (interrupted) return;
      if (Date.now() > DEADLINE) throw new Error('tasks did not finish in time');
      const counts = await manager.countByStatus();
      progress.update(counts);
      const exp = await manager.get('export:2026');
      if (!cancelled && exp?.status === 'running') {
        await manager.cancel('export:2026');
        cancelled = true;
        progress.note('export:2026 is running: cancelled it mid-run (its handler sees the signal abort)');
      }
      const imp = await manager.get('import:prices');
      if (!importNoted && imp?.status === 'succeeded') {
        importNoted = true;
        progress.note(`import:prices succeeded on attempt ${imp.attempts} after: ${imp.errors.map((e) => e.message).join('; ')}`);
      }
      const reports = (await manager.listOccurrences('report:weekly')).filter((t) => t.status === 'succeeded').length;
      const open = counts.pending + counts.running + counts.cancelling - 1; // the generator stays pending
      if (open === 0 && reports >= REPORTS_WANTED && cancelled) break;
      await sleep(250);
    }
    await manager.cancel('report:weekly'); // ends the series
    progress.update(await manager.countByStatus());
    progress.stop();
    printSummary(manager, workers, await listAll(manager));
  } finally {
    progress.stop();
    // SIGTERM: each worker stops claiming, finishes or releases its tasks, and exits 0.
    for (const w of workers) w.stop();
    const codes = await Promise.all(workers.map((w) => w.exited));
    console.log(`\n${elapsed()}  workers stopped (exit codes ${codes.join(', ')})`);
    await close();
    if (codes.some((c) => c !== 0)) process.exitCode = 1;
    if (interrupted) process.exitCode = 130;
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

function printSummary(_manager: OnceTaskManager, workers: Worker[], tasks: TaskInfo[]): void {
  const byKind = new Map<string, TaskInfo[]>();
  for (const t of tasks) byKind.set(t.kind, [...(byKind.get(t.kind) ?? []), t]);
  console.log('\n  kind                 tasks  succeeded  failed  cancelled');
  for (const [kind, list] of byKind) {
    const n = (s: TaskStatus) => String(list.filter((t) => t.status === s).length).padStart(s === 'succeeded' ? 9 : s === 'failed' ? 6 : 9);
    console.log(`  ${kind.padEnd(20)} ${String(list.length).padStart(5)}  ${n('succeeded')}  ${n('failed')}  ${n('cancelled')}`);
  }
  const syncs = tasks.filter((t) => t.kind === 'sync-account' && t.status === 'succeeded');
  const batches = syncs.map((t) => (t.result as { batch?: number } | null)?.batch ?? 1);
  console.log(`\n  account syncs ran in groups of up to ${Math.max(...batches)} changes of one account (never two groups of one account at once)`);
  console.log('\n  worker  pid      tasks run');
  for (const w of workers) {
    const ran = tasks.filter((t) => (t.result as { worker?: number } | null)?.worker === w.pid).length;
    console.log(`  ${w.n}       ${String(w.pid).padEnd(8)} ${String(ran).padStart(4)}`);
  }
}

main().then(
  () => console.log(`done in ${elapsed()}`),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
