/**
 * A worker process with an OpenTelemetry SDK, for the cross-process linking test: runs
 * `jobTask` and, once EXPECT `process` spans have ended, prints them as one JSON line
 * (`spans <json>`) and exits. Settings: ONCE_TASK_ENV, ONCE_TASK_COLLECTION, EXPECT.
 */
import { Firestore } from '@google-cloud/firestore';
import { propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OnceTaskManager } from '../../src/index.js';
import { jobTask } from '../tasks.js';

const exporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
propagation.setGlobalPropagator(new W3CTraceContextPropagator());

const expected = Number(process.env.EXPECT ?? 1);
const manager = new OnceTaskManager({ firestore: new Firestore({ projectId: 'demo-oncetask' }), collection: process.env.ONCE_TASK_COLLECTION, listen: false, pollIntervalMs: 50 });
manager.handle(jobTask, () => undefined, { concurrency: 4 });
manager.start();
const timer = setInterval(() => {
  const done = exporter.getFinishedSpans().filter((s) => s.name === 'process job');
  if (done.length < expected) return;
  clearInterval(timer);
  const report = done.map((s) => ({ id: s.attributes['messaging.message.id'], traceId: s.spanContext().traceId, links: s.links.map((l) => ({ traceId: l.context.traceId, spanId: l.context.spanId })) }));
  process.stdout.write(`spans ${JSON.stringify(report)}\n`);
  void manager.stop().then(() => process.exit(0));
}, 20);
process.stdout.write('ready\n');
