import { pino, type DestinationStream } from 'pino';

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

/** Cloud Logging's severities for pino's levels. */
const SEVERITY: Record<string, string> = { trace: 'DEBUG', debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR', fatal: 'CRITICAL' };

/** Which line shape the default logger writes. */
export type LogFormat = 'pino' | 'cloud-logging';

/**
 * The default log format: `ONCE_TASK_LOG_FORMAT` (`pino` or `cloud-logging`), else Cloud
 * Logging's shape when running on Cloud Run (`K_SERVICE` is set), else pino's.
 */
export function defaultLogFormat(env: NodeJS.ProcessEnv = process.env): LogFormat {
  const chosen = env.ONCE_TASK_LOG_FORMAT;
  if (chosen === 'pino' || chosen === 'cloud-logging') return chosen;
  return env.K_SERVICE ? 'cloud-logging' : 'pino';
}

/**
 * The default logger: pino to stdout (or `destination`), named `oncetask`, at
 * `ONCE_TASK_LOG_LEVEL` (default `info`; `silent` turns it off). In the `cloud-logging` format
 * each line has `severity` (`INFO`, `WARNING`, `ERROR`…) instead of pino's numeric `level`,
 * `message` instead of `msg` and an RFC 3339 `time`, so Cloud Logging files it under the right
 * severity and shows the message.
 */
export function defaultLogger(format: LogFormat = defaultLogFormat(), destination?: DestinationStream): OnceTaskLogger {
  const level = process.env.ONCE_TASK_LOG_LEVEL ?? 'info';
  const options =
    format === 'cloud-logging'
      ? {
          name: 'oncetask',
          level,
          messageKey: 'message',
          timestamp: pino.stdTimeFunctions.isoTime,
          formatters: { level: (label: string) => ({ severity: SEVERITY[label] ?? 'DEFAULT' }) },
        }
      : { name: 'oncetask', level };
  return destination ? pino(options, destination) : pino(options);
}
