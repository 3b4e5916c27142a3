/**
 * Vitest global setup: one Firestore emulator for the whole test run.
 * It runs in the main vitest process before any test file; workers get the
 * address through `inject('firestoreEmulatorHost')` and the environment.
 */
import type { TestProject } from 'vitest/node';
import { startEmulator } from '../src/testing/emulator.js';
import { printContractBudget, startContractTimes } from './contract/budget.js';

declare module 'vitest' {
  export interface ProvidedContext {
    firestoreEmulatorHost: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const emulator = await startEmulator({
    // Progress lines only; the emulator's own output (lines starting with
    // '> ') is shown with ONCETASK_EMULATOR_VERBOSE=1, and on a failed start
    // its tail is in the error anyway.
    log: (line) => {
      if (line.startsWith('> ') && process.env.ONCETASK_EMULATOR_VERBOSE !== '1') return;
      console.log(`[emulator] ${line}`);
    },
  });
  process.env.FIRESTORE_EMULATOR_HOST = emulator.host;
  project.provide('firestoreEmulatorHost', emulator.host);
  const contractTimes = startContractTimes(); // test/contract/ records its memory-backend time there
  return async () => {
    await emulator.stop();
    printContractBudget(contractTimes);
  };
}
