import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { emulatorHost, useFirestore } from './fixture.js';

useFirestore(); // the shared emulator: the demo reuses FIRESTORE_EMULATOR_HOST

/** Runs `npm run demo`'s script; `interruptAfterMs`: send SIGINT (Ctrl-C) then. */
function demo(interruptAfterMs?: number, args: string[] = []): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/demo.ts', ...args], { env: { ...process.env, FIRESTORE_EMULATOR_HOST: emulatorHost() }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    if (interruptAfterMs !== undefined) {
      const sent = setInterval(() => {
        if (output.includes('account syncs:')) {
          clearInterval(sent);
          setTimeout(() => child.kill('SIGINT'), interruptAfterMs);
        }
      }, 20);
    }
    child.once('exit', (code) => resolve({ code, output }));
  });
}

describe('npm run demo', () => {
  it('runs every kind to its end, shows progress as plain lines off a terminal, and stops by itself', async () => {
    const { code, output } = await demo();
    expect(code).toBe(0);
    expect(output).toMatch(/welcome emails: 150 created; the same 50 signups delivered again created 0/);
    expect(output).toMatch(/\d+\/\d+ done \| pending \d+ running \d+/); // the progress lines
    expect(output).toMatch(/export:2026 is running: cancelled it mid-run/);
    expect(output).toMatch(/import:prices succeeded on attempt 3/);
    expect(output).toMatch(/send-welcome-email\s+150\s+150\s+0\s+0/);
    expect(output).toMatch(/export-archive\s+1\s+0\s+0\s+1/);
    expect(output).toMatch(/workers stopped \(exit codes 0, 0\)/);
  }, 90_000);

  it('--memory runs the same without the emulator (in-process workers on the memory backend)', async () => {
    const { code, output } = await demo(undefined, ['--memory']);
    expect(code).toBe(0);
    expect(output).toMatch(/memory backend: no emulator/);
    expect(output).not.toMatch(/\[emulator\]/);
    expect(output).toMatch(/send-welcome-email\s+150\s+150\s+0\s+0/);
    expect(output).toMatch(/export-archive\s+1\s+0\s+0\s+1/);
    expect(output).toMatch(/import:prices succeeded on attempt 3/);
    expect(output).toMatch(/workers stopped \(exit codes 0, 0\)/);
  }, 60_000);

  it('on Ctrl-C has the workers hand their leases back and exits 130', async () => {
    const { code, output } = await demo(200);
    expect(output).toMatch(/Ctrl-C: stopping the workers/);
    expect(output).toMatch(/workers stopped \(exit codes 0, 0\)/);
    expect(code).toBe(130);
  }, 90_000);
});
