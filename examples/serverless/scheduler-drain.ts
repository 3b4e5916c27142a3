/**
 * Scale-to-zero workers, woken by Cloud Scheduler: a Cloud Run service (min instances 0) whose
 * `POST /drain` runs due tasks until none is left or 50 s have passed, then answers with what
 * ran. A Cloud Scheduler job pings it every minute:
 *
 *   gcloud scheduler jobs create http oncetask-drain --schedule='* * * * *' \
 *     --uri="https://<service-url>/drain" --http-method=POST \
 *     --oidc-service-account-email=<invoker service account>
 *
 * Tasks created between pings wait for the next one (up to a minute); tasks that are handed back
 * at the time limit run on the next ping. One drain runs at a time per instance; a ping while one
 * runs is answered 409. Set the service's request timeout above `maxMs` + the grace period.
 */
import { createServer, type Server } from 'node:http';
import type { OnceTaskManager } from '../../src/index.js';

/** The HTTP server: `POST /drain` drains the manager; anything else is 404. */
export function drainServer(manager: OnceTaskManager, maxMs = 50_000): Server {
  let draining = false;
  return createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/drain') {
      res.writeHead(404).end();
      return;
    }
    if (draining) {
      res.writeHead(409, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'a drain is running' }));
      return;
    }
    draining = true;
    manager
      .drain({ maxMs, graceMs: 5000 })
      .then((result) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result)))
      .catch((err: unknown) => res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(err) })))
      .finally(() => (draining = false));
  });
}

// Run as the service's entry point (`node scheduler-drain.js`): Firestore from firebase-admin
// with Application Default Credentials, PORT from Cloud Run.
if (import.meta.url === `file://${process.argv[1]}`) {
  const { initializeApp } = await import('firebase-admin/app');
  const { getFirestore } = await import('firebase-admin/firestore');
  const { workerManager } = await import('./tasks.js');
  initializeApp();
  drainServer(workerManager(getFirestore())).listen(Number(process.env.PORT ?? 8080));
}
