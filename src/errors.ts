/**
 * Every error the library throws or records is an {@link OnceTaskError} with a stable `code`,
 * so callers can branch on `err.code` instead of parsing messages.
 */

/** Stable machine-readable codes of {@link OnceTaskError}. */
export type OnceTaskErrorCode =
  | 'INVALID_PAYLOAD'
  | 'INVALID_OPTIONS'
  | 'INVALID_ID'
  | 'TASK_NOT_FOUND'
  | 'INVALID_STATE'
  | 'LEASE_LOST'
  | 'NON_RETRYABLE'
  | 'HANDLER_TIMEOUT'
  | 'HANDLER_ALREADY_REGISTERED'
  | 'UNENCODABLE_VALUE'
  | 'MALFORMED_TASK'
  | 'LEASE_EXPIRED'
  | 'SHUTDOWN'
  | 'TASK_CANCELLED'
  | 'ENVIRONMENT_MISMATCH'
  | 'BACKEND_TIMEOUT'
  | 'HOOK_TIMEOUT'
  | 'WAIT_TIMEOUT';

/** Base class of every error raised by oncetask. */
export class OnceTaskError extends Error {
  /** Stable code; never changes between versions for the same condition. */
  readonly code: OnceTaskErrorCode;

  constructor(code: OnceTaskErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** One problem found by schema validation: where it is and what is wrong. */
export interface ValidationIssue {
  /** Dotted path of the offending field, `""` for the payload itself. */
  path: string;
  message: string;
}

/** A payload does not match its kind's schema. Nothing was written. */
export class InvalidPayloadError extends OnceTaskError {
  /** Every problem found, first one also named in `message`. */
  readonly issues: readonly ValidationIssue[];

  constructor(kind: string, issues: readonly ValidationIssue[]) {
    const first = issues[0];
    const where = first ? (first.path === '' ? 'payload' : `field "${first.path}"`) : 'payload';
    super('INVALID_PAYLOAD', `invalid ${kind} payload: ${where}: ${first?.message ?? 'invalid'}`);
    this.issues = issues;
  }
}

/** An option passed to a public method is invalid. Nothing was written. */
export class InvalidOptionsError extends OnceTaskError {
  constructor(message: string) {
    super('INVALID_OPTIONS', message);
  }
}

/** A task ID (from the kind's `id` function or a caller) cannot be used. */
export class InvalidIdError extends OnceTaskError {
  constructor(message: string) {
    super('INVALID_ID', message);
  }
}

/** No task with this ID exists in this manager's environment. */
export class TaskNotFoundError extends OnceTaskError {
  readonly taskId: string;

  constructor(taskId: string, env: string) {
    super('TASK_NOT_FOUND', `task "${taskId}" does not exist in environment "${env}"`);
    this.taskId = taskId;
  }
}

/** The task exists but is in a state that does not allow the operation. */
export class InvalidStateError extends OnceTaskError {
  constructor(message: string) {
    super('INVALID_STATE', message);
  }
}

/**
 * A worker's lease was taken over (or the task was deleted or changed by an admin):
 * its write was refused so it cannot overwrite the newer attempt.
 */
export class LeaseLostError extends OnceTaskError {
  constructor(taskId: string, detail: string) {
    super('LEASE_LOST', `lease on task "${taskId}" lost: ${detail}`);
  }
}

/** Throw this from a handler to fail the task at once, without further retries. */
export class NonRetryableError extends OnceTaskError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NON_RETRYABLE', message, options);
  }
}

/** A handler ran longer than its `timeoutMs`; its signal was aborted. */
export class HandlerTimeoutError extends OnceTaskError {
  constructor(timeoutMs: number) {
    super('HANDLER_TIMEOUT', `handler exceeded timeoutMs (${timeoutMs} ms)`);
  }
}

/** A kind already has a handler on this manager. */
export class HandlerAlreadyRegisteredError extends OnceTaskError {
  constructor(kind: string) {
    super('HANDLER_ALREADY_REGISTERED', `kind "${kind}" already has a handler on this manager`);
  }
}

/** A value (payload or handler result) cannot be stored in Firestore. */
export class UnencodableValueError extends OnceTaskError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNENCODABLE_VALUE', message, options);
  }
}

/** A stored task document does not have the shape the library writes. */
export class MalformedTaskError extends OnceTaskError {
  constructor(docId: string, detail: string) {
    super('MALFORMED_TASK', `malformed task document "${docId}": ${detail}`);
  }
}

/** Recorded when a task is re-claimed because the previous attempt's lease ran out. */
export class LeaseExpiredError extends OnceTaskError {
  constructor(attempt: number) {
    super('LEASE_EXPIRED', `attempt ${attempt} did not finish before its lease expired (worker crashed or stalled)`);
  }
}

/** The reason given to a handler's signal when the manager stops and its grace period ends. */
export class ShutdownError extends OnceTaskError {
  constructor() {
    super('SHUTDOWN', 'worker is shutting down; the task was released for another worker');
  }
}

/** The reason given to a running handler's signal when its task is cancelled. */
export class TaskCancelledError extends OnceTaskError {
  constructor(taskId: string) {
    super('TASK_CANCELLED', `task "${taskId}" was cancelled`);
  }
}

/** The task exists, but in another environment than the manager's: nothing was changed. */
export class EnvironmentMismatchError extends OnceTaskError {
  readonly taskId: string;

  constructor(taskId: string, env: string, others: readonly string[]) {
    super('ENVIRONMENT_MISMATCH', `task "${taskId}" is not in environment "${env}" (it exists in ${others.map((e) => `"${e}"`).join(', ')})`);
    this.taskId = taskId;
  }
}

/** Turns anything thrown into an Error without losing its text. */
export function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === 'string') return new Error(thrown);
  try {
    return new Error(`non-Error thrown: ${JSON.stringify(thrown)}`);
  } catch {
    return new Error(`non-Error thrown: ${String(thrown)}`);
  }
}

/**
 * Firestore did not answer a call within its deadline (a partition, an outage). For a write,
 * whether it was applied is unknown; every write of the library is idempotent to repeat
 * (`create` of the same ID, `cancel` of the same task), so the caller may simply try again.
 */
export class BackendTimeoutError extends OnceTaskError {
  /** What was being done, e.g. `create "welcome-42"`. */
  readonly operation: string;
  /** How long the call was given, in ms. */
  readonly timeoutMs: number;

  constructor(operation: string, timeoutMs: number) {
    super('BACKEND_TIMEOUT', `${operation}: Firestore did not answer within ${timeoutMs} ms; the outcome is unknown and the call is safe to repeat`);
    this.operation = operation;
    this.timeoutMs = timeoutMs;
  }
}

/** A `beforeRun` hook did not return within `hookTimeoutMs`: recorded as the attempt's error. */
export class HookTimeoutError extends OnceTaskError {
  constructor(
    /** Which hook. */
    readonly hook: string,
    readonly timeoutMs: number,
  ) {
    super('HOOK_TIMEOUT', `${hook} hook did not return within ${timeoutMs} ms`);
  }
}

/** `waitFor` gave up: the task did not become terminal within `timeoutMs`. */
export class WaitTimeoutError extends OnceTaskError {
  constructor(
    readonly taskId: string,
    readonly timeoutMs: number,
  ) {
    super('WAIT_TIMEOUT', `task "${taskId}" did not finish within ${timeoutMs} ms`);
  }
}
