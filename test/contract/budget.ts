/**
 * The contract suite's time budget on the memory backend. No vitest imports: test/global-setup.ts
 * (the main vitest process) uses it too.
 *
 * Each contract file appends the wall time of its memory-backend describe block (beforeAll →
 * afterAll) as a JSON line to the file named by {@link CONTRACT_TIMES_ENV}; global setup names
 * a fresh file before the run and prints the total after it. Test files run in parallel (two
 * forks), so the sum over-states the suite's share of the run: a conservative figure.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Env variable naming the file of block times (set by global setup, inherited by the test forks). */
export const CONTRACT_TIMES_ENV = 'ONCETASK_CONTRACT_TIMES';

/** Budget of the whole contract suite on the memory backend. */
export const MEMORY_BUDGET_MS = 10_000;

/** Global setup: names a fresh times file for this run (in the environment the forks inherit) and returns it. */
export function startContractTimes(): string {
  const file = path.join(os.tmpdir(), `oncetask-contract-times-${process.pid}-${randomBytes(4).toString('hex')}.jsonl`);
  process.env[CONTRACT_TIMES_ENV] = file;
  return file;
}

/** A contract file: records the wall time of its block on a backend. */
export function recordContractTime(backend: string, testFile: string, ms: number): void {
  const file = process.env[CONTRACT_TIMES_ENV];
  if (file) appendFileSync(file, `${JSON.stringify({ backend, file: path.basename(testFile), ms })}\n`);
}

/** Global teardown: prints `contract suite on the memory backend: 3.4 s (budget 10 s)` if any contract file ran on it, and removes the file. */
export function printContractBudget(file: string): void {
  if (!existsSync(file)) return;
  const entries = readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { backend: string; file: string; ms: number });
  rmSync(file, { force: true });
  const memory = entries.filter((e) => e.backend === 'memory');
  if (memory.length === 0) return;
  const ms = memory.reduce((sum, e) => sum + e.ms, 0);
  const over = ms > MEMORY_BUDGET_MS ? ' — OVER BUDGET' : '';
  console.log(`contract suite on the memory backend: ${(ms / 1000).toFixed(1)} s (budget ${MEMORY_BUDGET_MS / 1000} s, ${memory.length} files)${over}`);
}
