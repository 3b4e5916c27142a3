/**
 * A producer process for the wake-up tests: creates COUNT `jobTask`s one after another, each as
 * soon as the last was answered, then prints `done`. Tasks created in another process reach a
 * worker only through Firestore (the in-process hand-over of creates does not apply).
 * Settings: ONCE_TASK_ENV, ONCE_TASK_COLLECTION, COUNT.
 */
import { Firestore } from '@google-cloud/firestore';
import { OnceTaskManager } from '../../src/index.js';
import { jobTask } from '../tasks.js';

const db = new Firestore({ projectId: 'demo-oncetask' });
const manager = new OnceTaskManager({ firestore: db, collection: process.env.ONCE_TASK_COLLECTION });
const count = Number(process.env.COUNT ?? 1);
for (let n = 0; n < count; n++) await manager.create(jobTask, { n });
process.stdout.write('done\n');
await db.terminate();
