/**
 * Starts (or reuses) a local Firestore emulator for tests and demos.
 *
 * The emulator is `gcloud emulators firestore start`, which is a Python
 * wrapper that runs a shell script that runs Java. Signalling only the
 * wrapper leaves the JVM behind, so we spawn it as the leader of its own
 * process group and always signal the whole group.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const EMULATOR_PROJECT_ID = 'demo-oncetask';

const READY_TIMEOUT_MS = 60_000;
const POLL_INTERVAL_MS = 200;
const STOP_GRACE_MS = 5_000;
/** How much of the emulator's output we keep for error messages. */
const TAIL_LINES = 40;

export interface EmulatorHandle {
  /** `host:port`, the value for FIRESTORE_EMULATOR_HOST. */
  host: string;
  projectId: string;
  /** Stops the emulator if this process started it; otherwise a no-op. */
  stop(): Promise<void>;
  /** False when an already running emulator (FIRESTORE_EMULATOR_HOST) is reused. */
  startedHere: boolean;
}

export interface StartEmulatorOptions {
  /** Start a new emulator even if FIRESTORE_EMULATOR_HOST names one (fault tests need their own). */
  fresh?: boolean;
  /** Port to bind (default: a free one). */
  port?: number;
  /** Directory the emulator exports its data to when it shuts down. */
  exportOnExit?: string;
  /** An export's `*.overall_export_metadata` file to load at start. */
  importData?: string;
  /**
   * Receives progress messages, and every line the emulator prints prefixed
   * with `> ` (so callers can filter the emulator's chatter).
   */
  log?: (line: string) => void;
}

const INSTALL_HINT =
  'No Firestore emulator available: `gcloud` is not on PATH and FIRESTORE_EMULATOR_HOST is not set.\n' +
  'Either install the Debian packages:\n' +
  '  apt-get install google-cloud-cli google-cloud-cli-firestore-emulator\n' +
  'or start any Firestore emulator yourself and set FIRESTORE_EMULATOR_HOST=host:port.';

export async function startEmulator(opts: StartEmulatorOptions = {}): Promise<EmulatorHandle> {
  const log = opts.log ?? (() => {});
  const existing = opts.fresh ? undefined : process.env.FIRESTORE_EMULATOR_HOST;
  if (existing) {
    // Someone (CI, a developer, an outer test run) already runs one: use it,
    // and never stop what we did not start.
    if (!(await answers(existing, 2_000))) {
      throw new Error(`FIRESTORE_EMULATOR_HOST=${existing} is set but nothing answers at http://${existing}/`);
    }
    log(`reusing Firestore emulator at ${existing}`);
    return { host: existing, projectId: EMULATOR_PROJECT_ID, stop: async () => {}, startedHere: false };
  }

  if (!onPath('gcloud')) throw new Error(INSTALL_HINT);

  const port = opts.port ?? (await freePort());
  const host = `127.0.0.1:${port}`;
  const startedAt = Date.now();
  log(`starting Firestore emulator on ${host}`);

  const args = ['emulators', 'firestore', 'start', `--host-port=${host}`];
  if (opts.exportOnExit) args.push(`--export-on-exit=${opts.exportOnExit}`);
  if (opts.importData) args.push(`--import-data=${opts.importData}`);
  const child = spawn('gcloud', args, {
    // Own process group, so that one signal reaches the wrapper, the shell and the JVM.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let exited: string | undefined;
  child.once('exit', (code, signal) => {
    exited = `exited with ${signal ?? `code ${code}`}`;
  });
  child.once('error', (err) => {
    exited = `failed: ${err.message}`;
  });
  const pgid = child.pid;
  if (pgid === undefined) throw new Error(`failed to spawn gcloud: ${exited ?? 'no pid'}`);

  // Keep draining the output for the whole life of the emulator: it logs a
  // line per connection, and a full pipe would block the JVM.
  const tail: string[] = [];
  const onLine = (line: string): void => {
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    log(`> ${line}`);
  };
  pipeLines(child, onLine);

  // A crashing or interrupted parent must not leave a JVM behind.
  const removeExitHooks = installExitHooks(pgid);
  // Don't let a forgotten stop() keep the parent alive; the exit hooks clean up.
  child.unref();

  const stop = async (): Promise<void> => {
    removeExitHooks();
    await killGroup(pgid);
  };

  try {
    const deadline = startedAt + READY_TIMEOUT_MS;
    for (;;) {
      if (exited !== undefined) throw new Error(`emulator ${exited} before it was ready`);
      if (await answers(host, 1_000)) break;
      if (Date.now() > deadline) throw new Error(`emulator did not answer at http://${host}/ within ${READY_TIMEOUT_MS} ms`);
      await sleep(POLL_INTERVAL_MS);
    }
  } catch (err) {
    await stop();
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`${message}\n--- emulator output (last ${tail.length} lines) ---\n${tail.join('\n')}`);
  }

  log(`Firestore emulator ready on ${host} after ${Date.now() - startedAt} ms`);
  return { host, projectId: EMULATOR_PROJECT_ID, stop, startedHere: true };
}

/** Deletes every document of `projectId` in the emulator at `host`. */
export async function clearEmulator(host: string, projectId: string = EMULATOR_PROJECT_ID): Promise<void> {
  const url = `http://${host}/emulator/v1/projects/${encodeURIComponent(projectId)}/databases/(default)/documents`;
  const res = await fetch(url, { method: 'DELETE' });
  if (!res.ok) {
    throw new Error(`clearing the emulator failed: ${res.status} ${res.statusText} ${await res.text()}`);
  }
}

async function answers(host: string, timeoutMs: number): Promise<boolean> {
  try {
    const res = await fetch(`http://${host}/`, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

function onPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    try {
      accessSync(path.join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** Binds port 0 on loopback to let the OS choose a free port. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not determine a free port'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

function pipeLines(child: ChildProcess, onLine: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (stream === null) continue;
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) onLine(line.trimEnd());
    });
    stream.on('end', () => {
      if (partial) onLine(partial);
    });
    // The pipes must not keep the parent's event loop alive either.
    if (stream instanceof net.Socket) stream.unref();
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM to the group, up to STOP_GRACE_MS to exit, then SIGKILL. */
async function killGroup(pgid: number): Promise<void> {
  if (!groupAlive(pgid)) return;
  signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + STOP_GRACE_MS;
  while (groupAlive(pgid) && Date.now() < deadline) await sleep(50);
  if (groupAlive(pgid)) {
    signalGroup(pgid, 'SIGKILL');
    const killDeadline = Date.now() + 2_000;
    while (groupAlive(pgid) && Date.now() < killDeadline) await sleep(50);
  }
}

const FORWARDED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Kills the emulator group when the parent exits (normally, by an uncaught
 * exception, or by a signal). SIGKILL of the parent cannot be caught; then the
 * emulator outlives it. Returns a function that removes the hooks.
 */
function installExitHooks(pgid: number): () => void {
  // 'exit' handlers must be synchronous, so there is no time for a graceful stop.
  const onExit = (): void => signalGroup(pgid, 'SIGKILL');
  const onSignal = (signal: NodeJS.Signals): void => {
    signalGroup(pgid, 'SIGKILL');
    remove();
    // If nobody else handles this signal, restore the default behaviour (terminate).
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  // Prepend: a listener that calls process.exit() from inside 'exit' (vitest
  // does) ends the process before later listeners run.
  process.prependOnceListener('exit', onExit);
  for (const signal of FORWARDED_SIGNALS) process.prependListener(signal, onSignal);
  const remove = (): void => {
    process.removeListener('exit', onExit);
    for (const signal of FORWARDED_SIGNALS) process.removeListener(signal, onSignal);
  };
  return remove;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
