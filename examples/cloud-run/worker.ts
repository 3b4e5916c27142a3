/**
 * A production-style oncetask worker for Cloud Run.
 *
 * - Firestore comes from firebase-admin, with Application Default Credentials (on Cloud Run:
 *   the service account of the revision).
 * - An HTTP server answers /healthz (liveness) and /readyz (readiness: Firestore answered), because
 *   a Cloud Run *service* must listen on $PORT.
 * - SIGTERM (a new revision, scale-in) stops claiming, lets running handlers finish for 7 s and
 *   hands the rest back, before Cloud Run's SIGKILL 10 s later.
 *
 * Environment: PORT (set by Cloud Run), ONCE_TASK_ENV (e.g. "prod"), ONCE_TASK_LOG_LEVEL;
 * STUB_MAIL_LATENCY_MS (how long the stand-in mail provider takes, default 50).
 */
import { createServer } from 'node:http';
import { initializeApp } from 'firebase-admin/app';
import { getFirestore } from 'firebase-admin/firestore';
import { pino } from 'pino';
// In your app: from 'oncetask'.
import { exponentialBackoff, NonRetryableError, OnceTaskManager } from '../../src/index.js';
// Task definitions: a module shared with the code that creates the tasks.
import { sendWelcomeEmail } from './worker-tasks.js';


// Cloud Logging reads the level from a `severity` field, not pino's numeric `level`.
const SEVERITY: Record<string, string> = { trace: 'DEBUG', debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR', fatal: 'CRITICAL' };
const logger = pino({
  level: process.env.ONCE_TASK_LOG_LEVEL ?? 'info',
  messageKey: 'message',
  formatters: { level: (label) => ({ severity: SEVERITY[label] ?? 'DEFAULT' }) },
});

initializeApp();
const manager = new OnceTaskManager({ firestore: getFirestore(), logger });

manager.handle(
  sendWelcomeEmail,
  async (task, ctx) => {
    const messageId = await deliver(task.data.email, 'welcome', ctx.signal);
    return { messageId }; // stored as the task's result
  },
  {
    concurrency: 8, // handlers of this kind at once in this instance
    timeoutMs: 30_000, // abort ctx.signal and count a failed attempt after 30 s
    leaseMs: 2 * 60_000, // renewed every 40 s while the handler runs; a crashed instance's task is retried after 2 min
    retry: exponentialBackoff({ maxAttempts: 5 }),
  },
);

/** Stand-in for your mail provider's client. Pass the signal on so aborts stop the request. */
async function deliver(to: string, template: string, signal: AbortSignal): Promise<string> {
  if (to.endsWith('.invalid')) throw new NonRetryableError(`refusing to mail ${to}`); // retrying cannot help
  const latencyMs = Number(process.env.STUB_MAIL_LATENCY_MS ?? 50);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, latencyMs);
    signal.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason as Error)), { once: true });
  });
  logger.info({ to, template }, 'mail sent (stub)');
  return `stub-${Date.now()}`;
}

manager.start();

let stopping = false;
// Ready once Firestore has answered (one COUNT aggregation, 1 read): until then the instance
// cannot claim anything, so a readiness probe should not send it traffic.
let ready = false;
manager.countPending(sendWelcomeEmail).then(
  () => (ready = true),
  (err: unknown) => logger.error({ err }, 'Firestore did not answer; not ready'),
);
const server = createServer((req, res) => {
  // 503 once stopping, so a probe does not count a shutting-down instance as healthy.
  const status = req.url === '/healthz' ? (stopping ? 503 : 200) : req.url === '/readyz' ? (ready && !stopping ? 200 : 503) : 404;
  res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok\n' : `${status}\n`);
});
server.listen(Number(process.env.PORT ?? 8080), () => logger.info({ port: process.env.PORT ?? 8080 }, 'listening'));

process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  logger.info({}, 'SIGTERM: stopping the worker');
  server.close();
  // 7 s for running handlers, ~2 s left for handing leases back before SIGKILL. A task whose
  // hand-back does not get through is not lost: it is retried once its lease expires.
  manager.stop({ graceMs: 7000 }).then(
    () => process.exit(0),
    (err: unknown) => {
      logger.error({ err }, 'stop failed');
      process.exit(1);
    },
  );
});
