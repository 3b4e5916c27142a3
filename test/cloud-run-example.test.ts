import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { OnceTaskManager } from '../src/index.js';
import { sendWelcomeEmail } from '../examples/cloud-run/worker-tasks.js';
import { emulatorHost, TEST_PROJECT_ID, uniqueEnv, useFirestore, waitFor } from './fixture.js';

const db = useFirestore();

/** A free TCP port. */
async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe('the Cloud Run example worker', () => {
  it('answers /healthz and /readyz, runs tasks, and on SIGTERM hands its leases back and exits 0 within 10 s', async () => {
    const env = uniqueEnv();
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/cloud-run/worker.ts'], {
      env: { ...process.env, FIRESTORE_EMULATOR_HOST: emulatorHost(), GCLOUD_PROJECT: TEST_PROJECT_ID, ONCE_TASK_ENV: env, PORT: String(port), ONCE_TASK_LOG_LEVEL: 'silent', STUB_MAIL_LATENCY_MS: '60000', K_SERVICE: 'worker' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const url = (path: string) => `http://127.0.0.1:${port}${path}`;
      await waitFor(async () => (await fetch(url('/readyz')).catch(() => null))?.status === 200, { timeoutMs: 20_000 });
      expect((await fetch(url('/healthz'))).status).toBe(200);
      expect((await fetch(url('/nope'))).status).toBe(404);
      // A task the stand-in provider takes a minute to send: still running at SIGTERM.
      const producer = new OnceTaskManager({ firestore: db, env });
      await producer.create(sendWelcomeEmail, { userId: 'u1', email: 'u1@example.com' });
      await waitFor(async () => (await producer.get('welcome:u1'))?.status === 'running', { timeoutMs: 20_000 });
      const t0 = Date.now();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(Date.now() - t0).toBeLessThan(10_000);
      const task = (await producer.get('welcome:u1'))!;
      expect(task.status).toBe('pending'); // handed back: another instance takes it at once
      expect(task.lease).toBeNull();
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);
});
