/**
 * `oncetask/testing`: test your task kinds in milliseconds on an in-memory backend with a clock
 * you move, or against the Firestore emulator with the same tests.
 * @packageDocumentation
 */
export { createTestKit } from './test-kit.js';
export type { TestKit, TestKitOptions, KitManagerOptions, TaskRun, KitWaitOptions } from './test-kit.js';
export { ManualClock } from './manual-clock.js';
export { memoryBackend } from '../store/backend.js';
export type { StorageBackend } from '../store/backend.js';
export { startFirestoreEmulator } from './firestore-emulator.js';
export type { FirestoreEmulator, StartFirestoreEmulatorOptions } from './firestore-emulator.js';
