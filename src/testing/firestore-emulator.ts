import { startEmulator } from './emulator.js';

/** Options of {@link startFirestoreEmulator}. */
export interface StartFirestoreEmulatorOptions {
  /** Start a new emulator even if `FIRESTORE_EMULATOR_HOST` names a running one. Default false. */
  fresh?: boolean;
  /** Port to bind. Default: a free one. */
  port?: number;
  /** Progress lines (and the emulator's own output, prefixed `> `). Default: none. */
  log?: (line: string) => void;
}

/** A running (or reused) Firestore emulator. */
export interface FirestoreEmulator {
  /** `host:port`: the value for `FIRESTORE_EMULATOR_HOST`. */
  host: string;
  /** Stops it if this call started it (a reused one is left running). */
  stop(): Promise<void>;
}

/**
 * The Firestore emulator for tests, as the library's own test suite starts it: reuses the one at
 * `FIRESTORE_EMULATOR_HOST` when that is set and answers; otherwise runs `gcloud emulators
 * firestore start` on a free port (Debian/Ubuntu: `apt-get install google-cloud-cli
 * google-cloud-cli-firestore-emulator`; it needs Java). Fails with that install hint when
 * neither is there. Also sets `FIRESTORE_EMULATOR_HOST` for the process, so SDK clients find it.
 */
export async function startFirestoreEmulator(options: StartFirestoreEmulatorOptions = {}): Promise<FirestoreEmulator> {
  const handle = await startEmulator(options);
  process.env.FIRESTORE_EMULATOR_HOST = handle.host;
  return { host: handle.host, stop: handle.stop };
}
