import { pino } from 'pino';

/**
 * The logging surface the library uses: a subset of pino's `Logger`, so a pino logger (or any
 * logger with these methods) can be passed in.
 */
export interface OnceTaskLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): OnceTaskLogger;
}

/**
 * The default logger: pino to stdout, named `oncetask`, at `ONCE_TASK_LOG_LEVEL` (default
 * `info`; `silent` turns it off).
 */
export function defaultLogger(): OnceTaskLogger {
  return pino({ name: 'oncetask', level: process.env.ONCE_TASK_LOG_LEVEL ?? 'info' });
}
