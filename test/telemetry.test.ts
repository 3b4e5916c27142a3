import { metrics, propagation, SpanKind, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type HistogramMetricData, type SumMetricData } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { spawn } from 'node:child_process';
import { beforeEach, describe, expect, it } from 'vitest';
import { fixedDelay } from '../src/index.js';
import { emulatorHost, useFirestore, waitFor } from './fixture.js';
import { makeManager, TEST_COLLECTION } from './support.js';
import { jobTask, keyedTask } from './tasks.js';

// The SDK the app would register; the library itself depends on @opentelemetry/api only.
const spans = new InMemorySpanExporter();
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
const reader = new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE), exportIntervalMillis: 3_600_000 });
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));

const db = useFirestore();
beforeEach(() => spans.reset());

const named = (name: string) => spans.getFinishedSpans().filter((s) => s.name === name);
const ofTask = (list: ReadableSpan[], id: string) => list.filter((s) => s.attributes['messaging.message.id'] === id);

/** The metric's data points whose attributes include `match`. */
async function points(name: string, match: Record<string, unknown>) {
  const { resourceMetrics } = await reader.collect();
  const metric = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name) as SumMetricData | HistogramMetricData | undefined;
  return (metric?.dataPoints ?? []).filter((p) => Object.entries(match).every(([k, v]) => p.attributes[k] === v));
}
const sum = async (name: string, match: Record<string, unknown>) => (await points(name, match)).reduce((a, p) => a + (typeof p.value === 'number' ? p.value : p.value.count), 0);

describe('OpenTelemetry', () => {
  it('send (PRODUCER) at create, stored on the task; process (CONSUMER) linked to it; settle (CLIENT) named by the outcome', async () => {
    const m = makeManager(db);
    m.handle(jobTask, () => 'ok');
    await m.create(jobTask, { n: 1 });
    const [send] = named('send job');
    expect(send!.kind).toBe(SpanKind.PRODUCER);
    expect(send!.attributes).toEqual({
      'messaging.system': 'oncetask',
      'messaging.destination.name': 'job',
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'send',
      'messaging.consumer.group.name': m.env,
      'messaging.message.id': 'job-1',
    });
    const doc = (await db.collection(TEST_COLLECTION).where('env', '==', m.env).get()).docs[0]!;
    expect(doc.get('traceContext')).toEqual({ traceparent: `00-${send!.spanContext().traceId}-${send!.spanContext().spanId}-01` });
    m.start();
    await waitFor(() => named('settle job').length === 1);
    const [processSpan] = named('process job');
    expect(processSpan!.kind).toBe(SpanKind.CONSUMER);
    expect(processSpan!.attributes).toMatchObject({ 'messaging.system': 'oncetask', 'messaging.operation.type': 'process', 'messaging.message.id': 'job-1', 'oncetask.attempt': 1, 'oncetask.outcome': 'succeeded' });
    expect(processSpan!.links.map((l) => l.context.spanId)).toEqual([send!.spanContext().spanId]);
    expect(processSpan!.spanContext().traceId).not.toBe(send!.spanContext().traceId); // linked, not parented (the default)
    const [settle] = named('settle job');
    expect(settle!.kind).toBe(SpanKind.CLIENT);
    expect(settle!.attributes).toMatchObject({ 'messaging.operation.type': 'settle', 'messaging.operation.name': 'succeed', 'messaging.message.id': 'job-1' });
  });

  it("traceParenting: 'child' makes the attempt part of the producer's trace", async () => {
    const m = makeManager(db, { traceParenting: 'child' });
    m.handle(jobTask, () => undefined);
    await m.create(jobTask, { n: 1 });
    m.start();
    await waitFor(() => named('process job').length === 1);
    const [send] = named('send job');
    const [processSpan] = named('process job');
    expect(processSpan!.spanContext().traceId).toBe(send!.spanContext().traceId);
    expect(processSpan!.parentSpanContext?.spanId).toBe(send!.spanContext().spanId);
  });

  it('counts sends, claims, retries and final failures, with error.type and the outcome on each attempt span', async () => {
    const m = makeManager(db);
    const attrs = { 'messaging.destination.name': 'job' };
    const before = { retried: await sum('oncetask.tasks.retried', attrs), failed: await sum('oncetask.tasks.failed', attrs), consumed: await sum('messaging.client.consumed.messages', attrs), sent: await sum('messaging.client.sent.messages', attrs) };
    m.handle(jobTask, (task, ctx) => {
      if (ctx.attempt <= task.data.failTimes) throw Object.assign(new Error('smtp down'), { code: 'SMTP_DOWN' });
    }, { retry: fixedDelay({ maxAttempts: 2, delayMs: 10 }) });
    await m.createMany(jobTask, [{ n: 1, failTimes: 1 }, { n: 2, failTimes: 5 }, { n: 3 }]);
    expect(named('send job')[0]!.attributes['messaging.batch.message_count']).toBe(3);
    m.start();
    await waitFor(() => named('process job').length === 5); // 1: 2 attempts, 2: 2 attempts, 3: 1
    const processSpans = named('process job');
    expect(ofTask(processSpans, 'job-1').map((s) => s.attributes['oncetask.outcome'])).toEqual(['retrying', 'succeeded']);
    expect(ofTask(processSpans, 'job-2').map((s) => [s.attributes['oncetask.outcome'], s.attributes['error.type'], s.status.code])).toEqual([['retrying', 'SMTP_DOWN', 2], ['failed', 'SMTP_DOWN', 2]]);
    expect(ofTask(named('settle job'), 'job-2').map((s) => s.attributes['messaging.operation.name'])).toEqual(['retry', 'fail']);
    expect((await sum('oncetask.tasks.retried', attrs)) - before.retried).toBe(2);
    expect((await sum('oncetask.tasks.failed', attrs)) - before.failed).toBe(1);
    expect((await sum('messaging.client.consumed.messages', attrs)) - before.consumed).toBe(5);
    expect((await sum('messaging.client.sent.messages', attrs)) - before.sent).toBe(3);
    expect(await sum('oncetask.task.queue_lag', attrs)).toBeGreaterThanOrEqual(5); // one per claim
    expect(await sum('messaging.process.duration', { ...attrs, 'oncetask.outcome': 'failed', 'error.type': 'SMTP_DOWN' })).toBe(1);
    expect(await sum('messaging.process.duration', { ...attrs, 'oncetask.outcome': 'succeeded' })).toBeGreaterThanOrEqual(2); // job-1 (2nd attempt) and job-3
    expect(await sum('oncetask.firestore.operations', { 'oncetask.operation.type': 'write' })).toBeGreaterThan(0);
  });

  it('a group handler gets one process span, linked to every task of the group', async () => {
    const m = makeManager(db);
    m.handleGroup(keyedTask, () => undefined);
    await m.create(keyedTask, { n: 1, key: 'acct' });
    await m.create(keyedTask, { n: 2, key: 'acct' });
    const sends = named('send keyed').map((s) => s.spanContext().spanId).sort();
    m.start();
    await waitFor(() => named('process keyed').length === 1);
    const [group] = named('process keyed');
    expect(group!.attributes).toMatchObject({ 'messaging.batch.message_count': 2, 'oncetask.resource_key': 'acct' });
    expect(group!.links.map((l) => l.context.spanId).sort()).toEqual(sends);
  });

  it('links the consumer to the producer across processes: the context travels on the task document', async () => {
    const m = makeManager(db);
    await m.createMany(jobTask, [{ n: 1 }, { n: 2 }]);
    const send = named('send job')[0]!.spanContext();
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/workers/otel-worker.ts'], {
      env: { ...process.env, FIRESTORE_EMULATOR_HOST: emulatorHost(), ONCE_TASK_ENV: m.env, ONCE_TASK_COLLECTION: TEST_COLLECTION, ONCE_TASK_LOG_LEVEL: 'silent', EXPECT: '2' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const found = out.split('\n').find((l) => l.startsWith('spans '));
        if (found) resolve(found);
      });
      child.once('exit', (code) => reject(new Error(`otel worker exited (${code}) before reporting`)));
    });
    const report = JSON.parse(line.slice('spans '.length)) as { id: string; traceId: string; links: { traceId: string; spanId: string }[] }[];
    expect(report.map((r) => r.id).sort()).toEqual(['job-1', 'job-2']);
    for (const r of report) expect(r.links).toEqual([{ traceId: send.traceId, spanId: send.spanId }]);
  }, 30_000);

  it('opt-in queue gauges report tasks by status and the oldest due age, from counts', async () => {
    const m = makeManager(db, { queueMetricsIntervalMs: 1000 });
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    m.handle(jobTask, () => held, { concurrency: 1 });
    await m.createMany(jobTask, [1, 2, 3].map((n) => ({ n })), { waitUntil: new Date(Date.now() - 5000) });
    m.start();
    const gauge = async (name: string, match: Record<string, unknown>) => (await points(name, { 'messaging.destination.name': 'job', 'messaging.consumer.group.name': m.env, ...match }))[0]?.value;
    await waitFor(async () => (await gauge('oncetask.queue.tasks', { 'oncetask.status': 'running' })) === 1, { timeoutMs: 10_000 });
    expect(await gauge('oncetask.queue.tasks', { 'oncetask.status': 'pending' })).toBe(2);
    expect(await gauge('oncetask.queue.tasks', { 'oncetask.status': 'succeeded' })).toBe(0);
    expect(await gauge('oncetask.queue.oldest_due_age', {})).toBeGreaterThanOrEqual(4);
    release();
  }, 20_000);
});
