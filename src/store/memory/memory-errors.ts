/**
 * Errors of the in-memory database, shaped as the SDK's: a server refusal is an `Error` with a
 * numeric gRPC `code` and a message starting `"<code> <NAME>: "` (what src/store/calls.ts
 * reads); a misuse the SDK catches before sending (a bad argument) is a plain `Error` thrown
 * at the call, without a code.
 */

/** gRPC status codes the database answers with. */
export const CODE = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  INTERNAL: 13,
} as const;

const NAMES: Record<number, string> = {
  3: 'INVALID_ARGUMENT',
  5: 'NOT_FOUND',
  6: 'ALREADY_EXISTS',
  9: 'FAILED_PRECONDITION',
  10: 'ABORTED',
  13: 'INTERNAL',
};

/** A refusal by the (simulated) server, as the SDK surfaces it. */
export class MemoryFirestoreError extends Error {
  /** The server's own words, without the code prefix (the SDK's `details`). */
  readonly details: string;
  readonly metadata: Record<string, unknown> = {};

  constructor(
    readonly code: number,
    details: string,
  ) {
    super(`${code} ${NAMES[code] ?? 'UNKNOWN'}: ${details}`);
    this.name = 'Error';
    this.details = details;
  }
}

/** Resource name of a document, as Firestore spells it in its messages. */
export function resourceName(path: string): string {
  return `projects/memory/databases/(default)/documents/${path}`;
}

/** The message of the SDK's refusal to talk once terminated. */
export const TERMINATED_MESSAGE = 'The client has already been terminated';

/** What a caller gets for an SDK feature this backend leaves out. */
export function unsupported(what: string): Error {
  return new Error(`${what} is not supported by the memory backend`);
}
