/**
 * Task kinds and a manager factory shared by the emulator tests. Every manager made here is
 * stopped after the test, so no worker outlives the test that started it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Firestore } from '@google-cloud/firestore';
import { afterAll, afterEach } from 'vitest';
import { OnceTaskManager, type OnceTaskLogger, type OnceTaskManagerOptions } from '../src/index.js';
import { FaultProxy } from '../scripts/fault-proxy.js';
import { emulatorHost, TEST_PROJECT_ID, uniqueEnv } from './fixture.js';

import { jobTask } from './tasks.js';
import { LeaseProtocol } from '../src/lease/protocol.js';
import { TaskStore } from '../src/store/task-store.js';
import { CLAIMABLE_STATUSES } from '../src/task-document.js';

export { jobTask };

/**
 * This test file's task collection. The emulator's queries scan a whole collection, so files
 * that shared one would slow each other down as the suite goes on; each file gets its own.
 */
export const TEST_COLLECTION = `tasks_${randomBytes(4).toString('hex')}`;

const live = new Set<OnceTaskManager>();
const children = new Set<ChildProcess>();

afterEach(async () => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  const managers = [...live];
  live.clear();
  await Promise.all(managers.map((m) => m.stop({ graceMs: 0 })));
});

/**
 * Starts a worker process (test/workers/worker-process.ts) on this file's collection and waits
 * until it is ready. `settings` are its env variables (KIND, LEASE_MS, POLL_MS, ...). It is
 * SIGKILLed after the test if still alive.
 */
export async function startWorkerProcess(env: string, ledger: string, settings: Record<string, string> = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/workers/worker-process.ts'], {
    env: {
      ...process.env,
      FIRESTORE_EMULATOR_HOST: emulatorHost(),
      ONCE_TASK_ENV: env,
      ONCE_TASK_COLLECTION: TEST_COLLECTION,
      LEDGER: ledger,
      ONCE_TASK_LOG_LEVEL: 'silent',
      ...settings,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`worker exited early with ${code}`)));
  });
  return child;
}

/**
 * Runs test/workers/producer-process.ts: `count` job tasks created in env `env`, one after
 * another, from another process. Resolves once they all are.
 */
export async function produceInAnotherProcess(env: string, count: number): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/workers/producer-process.ts'], {
    env: { ...process.env, FIRESTORE_EMULATOR_HOST: emulatorHost(), ONCE_TASK_ENV: env, ONCE_TASK_COLLECTION: TEST_COLLECTION, COUNT: String(count), ONCE_TASK_LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('done') && resolve());
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`producer exited with ${code}`))));
  });
}

/** One handler attempt as test/workers/worker-process.ts records it in its ledger collection. */
export interface LedgerEntry {
  taskId: string;
  key: string | null;
  pid: number;
  attempt: number;
  start: number;
  end?: number;
  aborted?: boolean;
}

/** A worker process's ledger (see {@link startWorkerProcess}), in the order the attempts started. */
export async function readLedger(firestore: Firestore, ledger: string): Promise<LedgerEntry[]> {
  return (await firestore.collection(ledger).get()).docs.map((d) => d.data() as LedgerEntry).sort((a, b) => a.start - b.start);
}

/** Runs the `oncetask` CLI (from source) as a child process against this file's collection on the emulator. */
export function runCli(env: string, ...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const child = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', '--project', TEST_PROJECT_ID, '--env', env, '--collection', TEST_COLLECTION, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, FIRESTORE_EMULATOR_HOST: emulatorHost() },
  });
  return { code: child.status, stdout: child.stdout, stderr: child.stderr };
}

/** A manager on a fresh environment (unless given), polling fast, stopped after the test. */
export function makeManager(firestore: Firestore, options: Partial<OnceTaskManagerOptions> = {}): OnceTaskManager {
  // The tests were written for listening workers: on the emulator 'auto' would poll.
  const manager = new OnceTaskManager({ firestore, env: uniqueEnv(), collection: TEST_COLLECTION, pollIntervalMs: 50, listen: true, ...options });
  live.add(manager);
  return manager;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A log entry kept by {@link capturingLogger}. */
export interface CapturedLog {
  level: string;
  obj: Record<string, unknown>;
  msg?: string;
}

/** A logger that keeps what it was given; `lines()` gives `"<level> <msg>"` per entry. */
export function capturingLogger(): OnceTaskLogger & { entries: CapturedLog[]; lines(): string[] } {
  const entries: CapturedLog[] = [];
  const make = (bindings: Record<string, unknown>): OnceTaskLogger => {
    const at = (level: string) => (obj: object, msg?: string) => void entries.push({ level, obj: { ...bindings, ...(obj as Record<string, unknown>) }, msg });
    return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (b) => make({ ...bindings, ...b }) };
  };
  return Object.assign(make({}), { entries, lines: () => entries.map((e) => `${e.level} ${e.msg}`) });
}

/** Retention for protocols built by hand in tests: terminal tasks kept a day. */
export const KEEP_A_DAY = { retentionMs: 86_400_000, failedRetentionMs: 86_400_000 } as const;

/**
 * `n` new job tasks in a fresh environment, with a store and two lease protocols standing for
 * two worker processes; `candidates()` reads the due ones, `raw(id)` a task's stored fields.
 */
export async function leaseSetup(firestore: Firestore, n = 1) {
  const m = makeManager(firestore);
  await m.createMany(jobTask, Array.from({ length: n }, (_, i) => ({ n: i + 1 })));
  const store = new TaskStore(firestore, TEST_COLLECTION, m.env);
  const candidates = async (limit = 10) => (await store.findClaimable('job', CLAIMABLE_STATUSES, new Date(), limit)).tasks;
  const raw = async (id = 'job-1') => (await firestore.collection(TEST_COLLECTION).doc(store.docId(id)).get()).data()!;
  return { m, store, candidates, raw, a: new LeaseProtocol(store, 'worker-a', KEEP_A_DAY, Date.now), b: new LeaseProtocol(store, 'worker-b', KEEP_A_DAY, Date.now) };
}

/**
 * For a test file whose workers talk to the emulator through fault proxies
 * (scripts/fault-proxy.ts): returns a factory of Firestore clients, each behind a fresh proxy.
 * After the file, the proxies are healed, late re-sends allowed to finish, and all closed.
 */
export function useFaultProxies(): () => Promise<{ proxy: FaultProxy; firestore: Firestore }> {
  const proxies: FaultProxy[] = [];
  const clients: Firestore[] = [];
  afterAll(async () => {
    for (const p of proxies) p.heal();
    // Calls that hung in a black hole are re-sent by the SDK after the heal; let them finish before
    // the clients are terminated (the SDK rejects a re-send of a terminated client unhandled).
    await sleep(5000);
    await Promise.all(clients.map((c) => c.terminate().catch(() => undefined)));
    await Promise.all(proxies.map((p) => p.close()));
  });
  return async () => {
    const [host, port] = emulatorHost().split(':');
    const proxy = await FaultProxy.start({ host: host!, port: Number(port) });
    // The SDK prefers FIRESTORE_EMULATOR_HOST to the host setting: hide it while constructing.
    const saved = process.env.FIRESTORE_EMULATOR_HOST;
    delete process.env.FIRESTORE_EMULATOR_HOST;
    const firestore = new Firestore({ projectId: TEST_PROJECT_ID, host: proxy.host, ssl: false, customHeaders: { Authorization: 'Bearer owner' } });
    process.env.FIRESTORE_EMULATOR_HOST = saved;
    proxies.push(proxy);
    clients.push(firestore);
    return { proxy, firestore };
  };
}
