import {
  context,
  metrics,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Counter,
  type Histogram,
  type Link,
  type Span,
  type SpanContext,
} from '@opentelemetry/api';

/**
 * OpenTelemetry traces and metrics, through `@opentelemetry/api` only: without an SDK registered
 * by the app every call here is a no-op. Names follow the OpenTelemetry messaging semantic
 * conventions (`messaging.system` = `oncetask`, the kind as destination, the task ID as message
 * ID, the environment as consumer group); the library's own attributes are under `oncetask.*`.
 *
 * Spans: `send <kind>` (PRODUCER) when tasks are created — its context is stored on each task
 * document (`traceContext`, W3C trace context); `process <kind>` (CONSUMER) per attempt, linked
 * to the stored context (or its child with `traceParenting: 'child'`); `settle <kind>` (CLIENT)
 * around each outcome write, named by the outcome.
 */

/** How a `process` span relates to the `send` span of its task. */
export type TraceParenting = 'link' | 'child';

/** The stored trace context of a task: W3C `traceparent` (and `tracestate`). */
export type StoredTraceContext = Record<string, string>;

/** What a `process` span needs to know of each task of the attempt. */
export interface ProcessedTask {
  id: string;
  attempt: number;
  resourceKey: string | null;
  generatorId: string | null;
  waitUntil: Date;
  traceContext: StoredTraceContext | null;
}

/** The outcome write a `settle` span covers (its `messaging.operation.name`). */
export type SettleOperation = 'succeed' | 'retry' | 'fail' | 'cancel' | 'release';

const SYSTEM = 'oncetask';
const SCOPE = 'oncetask';

/** A started `process` span and its timing. */
export interface ProcessSpan {
  /** Ends the span with the attempt's outcome (`error`: the attempt's error, if it failed). */
  end(outcome: string, error?: Error): void;
}

export class Telemetry {
  private readonly tracer = trace.getTracer(SCOPE);
  private readonly sent: Counter;
  private readonly consumed: Counter;
  private readonly processDuration: Histogram;
  private readonly operationDuration: Histogram;
  private readonly queueLag: Histogram;
  private readonly retried: Counter;
  private readonly failed: Counter;
  private readonly leaseLost: Counter;
  private readonly conflicts: Counter;
  private readonly operations: Counter;

  constructor(
    private readonly env: string,
    private readonly parenting: TraceParenting,
  ) {
    const meter = metrics.getMeter(SCOPE);
    this.sent = meter.createCounter('messaging.client.sent.messages', { description: 'Tasks created.', unit: '{message}' });
    this.consumed = meter.createCounter('messaging.client.consumed.messages', { description: 'Task attempts claimed.', unit: '{message}' });
    this.processDuration = meter.createHistogram('messaging.process.duration', { description: 'Duration of an attempt (handler and outcome write).', unit: 's' });
    this.operationDuration = meter.createHistogram('messaging.client.operation.duration', { description: 'Duration of a create or an outcome write.', unit: 's' });
    this.queueLag = meter.createHistogram('oncetask.task.queue_lag', { description: 'Claim time minus due time.', unit: 's' });
    this.retried = meter.createCounter('oncetask.tasks.retried', { description: 'Failed attempts that will be retried.', unit: '{task}' });
    this.failed = meter.createCounter('oncetask.tasks.failed', { description: 'Tasks that failed for good.', unit: '{task}' });
    this.leaseLost = meter.createCounter('oncetask.lease.lost', { description: 'Attempts whose lease was lost or expired (nothing recorded).', unit: '{lease}' });
    this.conflicts = meter.createCounter('oncetask.claim.conflicts', { description: 'Claims lost to another worker.', unit: '{claim}' });
    this.operations = meter.createCounter('oncetask.firestore.operations', { description: 'Billed Firestore operations, by type.', unit: '{operation}' });
  }

  private base(kind: string, operationType: string, operationName: string): Attributes {
    return {
      'messaging.system': SYSTEM,
      'messaging.destination.name': kind,
      'messaging.operation.type': operationType,
      'messaging.operation.name': operationName,
      'messaging.consumer.group.name': this.env,
    };
  }

  /**
   * Runs a create (or createMany: one span, `messaging.batch.message_count`) inside its
   * `send <kind>` span, started under the caller's active context. `write` gets the context to
   * store on the task documents (null when nothing is recorded).
   */
  async send<T>(kind: string, ids: readonly string[], write: (traceContext: StoredTraceContext | null) => Promise<T>): Promise<T> {
    const attributes = this.base(kind, 'send', 'send');
    if (ids.length === 1) attributes['messaging.message.id'] = ids[0]!;
    else attributes['messaging.batch.message_count'] = ids.length;
    const span = this.tracer.startSpan(`send ${kind}`, { kind: SpanKind.PRODUCER, attributes }, context.active());
    const carrier: StoredTraceContext = {};
    if (span.isRecording()) {
      propagation.inject(trace.setSpan(context.active(), span), carrier);
      // No propagator registered (an SDK set up by hand): store the W3C traceparent anyway.
      if (Object.keys(carrier).length === 0) carrier.traceparent = toTraceparent(span);
    }
    return this.timed(span, kind, 'send', 'send', () => write(Object.keys(carrier).length > 0 ? carrier : null), () =>
      this.sent.add(ids.length, { 'messaging.system': SYSTEM, 'messaging.destination.name': kind, 'messaging.operation.name': 'send' }),
    );
  }

  /**
   * Starts the `process <kind>` span of an attempt (of one task, or of a group: links to every
   * task's stored context and `messaging.batch.message_count`), and counts the claim and its lag.
   */
  startProcess(kind: string, tasks: readonly ProcessedTask[], now: number): ProcessSpan {
    const first = tasks[0]!;
    const attributes: Attributes = {
      ...this.base(kind, 'process', 'process'),
      'oncetask.attempt': first.attempt,
      ...(first.resourceKey !== null ? { 'oncetask.resource_key': first.resourceKey } : {}),
    };
    if (tasks.length === 1) {
      attributes['messaging.message.id'] = first.id;
      if (first.generatorId !== null) attributes['oncetask.generator'] = first.generatorId;
    } else attributes['messaging.batch.message_count'] = tasks.length;
    const linked = tasks.map((t) => remoteContext(t.traceContext)).filter((c): c is NonNullable<typeof c> => c !== null);
    const links: Link[] = linked.map((c) => ({ context: c }));
    const parent = this.parenting === 'child' && tasks.length === 1 && linked.length === 1 ? trace.setSpanContext(ROOT_CONTEXT, linked[0]!) : ROOT_CONTEXT;
    const span = this.tracer.startSpan(`process ${kind}`, { kind: SpanKind.CONSUMER, attributes, links }, parent);
    const metricAttributes = { 'messaging.system': SYSTEM, 'messaging.destination.name': kind, 'messaging.consumer.group.name': this.env };
    this.consumed.add(tasks.length, metricAttributes);
    for (const t of tasks) this.queueLag.record(Math.max(0, now - t.waitUntil.getTime()) / 1000, metricAttributes);
    const started = performance.now();
    return {
      end: (outcome, error) => {
        span.setAttribute('oncetask.outcome', outcome);
        this.finish(span, error);
        this.processDuration.record((performance.now() - started) / 1000, { ...metricAttributes, 'oncetask.outcome': outcome, ...(error ? { 'error.type': errorType(error) } : {}) });
      },
    };
  }

  /** Runs an outcome write inside a `settle <kind>` span named by its operation. */
  settle<T>(kind: string, taskId: string, operation: SettleOperation, write: () => Promise<T>): Promise<T> {
    const span = this.tracer.startSpan(`settle ${kind}`, { kind: SpanKind.CLIENT, attributes: { ...this.base(kind, 'settle', operation), 'messaging.message.id': taskId } }, ROOT_CONTEXT);
    return this.timed(span, kind, 'settle', operation, write);
  }

  /** Runs `call`, ends `span` with its error if it throws, and records its duration as a client operation. */
  private async timed<T>(span: Span, kind: string, type: string, operation: string, call: () => Promise<T>, onSuccess?: () => void): Promise<T> {
    const started = performance.now();
    let error: unknown;
    try {
      const result = await call();
      onSuccess?.();
      return result;
    } catch (err) {
      error = err;
      throw err;
    } finally {
      this.finish(span, error);
      this.operationDuration.record((performance.now() - started) / 1000, { ...this.base(kind, type, operation), ...(error !== undefined ? { 'error.type': errorType(error) } : {}) });
    }
  }

  /** Counts an attempt that will be retried, or a task that failed for good. */
  failure(kind: string, final: boolean, error: Error): void {
    (final ? this.failed : this.retried).add(1, { 'messaging.destination.name': kind, 'error.type': errorType(error) });
  }

  /** Counts an attempt whose lease was lost or expired. */
  lostLease(kind: string): void {
    this.leaseLost.add(1, { 'messaging.destination.name': kind });
  }

  /** Counts claims lost to other workers. */
  lostClaims(kind: string, count: number): void {
    if (count > 0) this.conflicts.add(count, { 'messaging.destination.name': kind });
  }

  /** Counts billed Firestore operations (`read`, `write`, `delete`, `listener_read`). */
  firestoreOperations(type: 'read' | 'write' | 'delete' | 'listener_read', count: number): void {
    if (count > 0) this.operations.add(count, { 'oncetask.operation.type': type, 'messaging.consumer.group.name': this.env });
  }

  private finish(span: Span, error?: unknown): void {
    if (error !== undefined) {
      span.setAttribute('error.type', errorType(error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
      if (error instanceof Error) span.recordException(error);
    }
    span.end();
  }
}

/** `error.type`: an error's string `code` (e.g. `HANDLER_TIMEOUT`), else its class name. */
export function errorType(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.length > 0) return code;
  return error instanceof Error ? error.constructor.name : 'Error';
}

function toTraceparent(span: Span): string {
  const { traceId, spanId, traceFlags } = span.spanContext();
  return `00-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, '0')}`;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The span context stored on a task, if it is a valid one (read by the registered propagator, else as W3C `traceparent`). */
function remoteContext(stored: StoredTraceContext | null): SpanContext | null {
  if (stored === null) return null;
  const extracted = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, stored));
  if (extracted && trace.isSpanContextValid(extracted)) return extracted;
  const parsed = TRACEPARENT.exec(stored.traceparent ?? '');
  if (!parsed) return null;
  const own: SpanContext = { traceId: parsed[1]!, spanId: parsed[2]!, traceFlags: Number.parseInt(parsed[3]!, 16), isRemote: true };
  return trace.isSpanContextValid(own) ? own : null;
}
