/**
 * A TCP proxy that puts network faults between a Firestore client and the emulator: used by the
 * tests (test/network-faults.test.ts) and by `npm run chaos`. It works below gRPC and HTTP/2, as
 * a real network fault does: the SDK sees dropped connections, silence, lost answers and delay.
 *
 *   const proxy = await FaultProxy.start({ host: '127.0.0.1', port: 8080 });
 *   new Firestore({ host: proxy.host, ssl: false, projectId });
 *   proxy.blackhole(); ... proxy.heal();
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

/** What the proxy does with traffic now. */
export type FaultMode = 'pass' | 'partition' | 'blackhole';

/** Counters of what the proxy did. */
export interface FaultProxyStats {
  connections: number;
  refused: number;
  bytesUp: number;
  bytesDown: number;
  answersDropped: number;
}

interface Pair {
  client: Socket;
  upstream: Socket;
}

/** An answer frame of a unary call is larger than this; HTTP/2 control frames (PING, WINDOW_UPDATE, SETTINGS) are smaller. */
const MIN_ANSWER_BYTES = 40;

export class FaultProxy {
  private mode: FaultMode = 'pass';
  private delayMs = 0;
  private dropArmed = 0;
  private passBeforeDrop = 0;
  private partitionAfterDrop = false;
  private readonly pairs = new Set<Pair>();
  /** Counters since start. */
  readonly stats: FaultProxyStats = { connections: 0, refused: 0, bytesUp: 0, bytesDown: 0, answersDropped: 0 };

  private constructor(
    private readonly server: Server,
    private readonly target: { host: string; port: number },
  ) {}

  /** Starts a proxy on a free loopback port in front of `target`. */
  static async start(target: { host: string; port: number }): Promise<FaultProxy> {
    let proxy!: FaultProxy;
    const server = createServer((client) => proxy.accept(client));
    proxy = new FaultProxy(server, target);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** `127.0.0.1:PORT`, for `FIRESTORE_EMULATOR_HOST` or `new Firestore({ host, ssl: false })`. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The proxy's port. */
  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address ? address.port : 0;
  }

  /** The current mode. */
  get current(): FaultMode {
    return this.mode;
  }

  /** Drops every open connection and refuses new ones (reset at once), until {@link heal}. */
  partition(): void {
    this.mode = 'partition';
    for (const pair of this.pairs) this.drop(pair);
  }

  /** Keeps connections open and accepts new ones, but forwards nothing either way: calls hang. */
  blackhole(): void {
    this.mode = 'blackhole';
  }

  /** Back to forwarding. Black-holed connections are dropped (their streams are out of step), so clients reconnect. */
  heal(): void {
    if (this.mode === 'blackhole') for (const pair of this.pairs) this.drop(pair);
    this.mode = 'pass';
  }

  /**
   * Loses the next `count` answers: a server→client chunk the size of an answer is swallowed
   * and its connection dropped right after, while the request had been forwarded — a write the
   * server applied whose answer never arrives. Arm it, then issue one write on an idle client;
   * `after` lets that many answers through first (e.g. the read before a read-then-write);
   * `thenPartition` partitions the client at the moment the (last) answer is lost, until
   * {@link heal}: the SDK's re-send and the caller's read-back wait while others act.
   */
  dropAnswers(count = 1, options: { after?: number; thenPartition?: boolean } = {}): void {
    this.dropArmed += count;
    this.passBeforeDrop = options.after ?? 0;
    this.partitionAfterDrop = options.thenPartition ?? false;
  }

  /** Delays forwarding in both directions by `ms` (0: off). */
  latency(ms: number): void {
    this.delayMs = Math.max(0, ms);
  }

  /** Closes every connection and the listening socket. */
  async close(): Promise<void> {
    for (const pair of this.pairs) this.drop(pair);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.mode === 'partition') {
      this.stats.refused++;
      client.resetAndDestroy();
      return;
    }
    this.stats.connections++;
    const upstream = connect(this.target.port, this.target.host);
    const pair: Pair = { client, upstream };
    this.pairs.add(pair);
    const close = (): void => this.drop(pair);
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.on('data', (chunk: Buffer) => {
      if (this.mode !== 'pass') return; // black hole: the request never arrives
      this.stats.bytesUp += chunk.length;
      this.forward(upstream, chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (this.mode !== 'pass') return;
      if (this.dropArmed > 0 && chunk.length >= MIN_ANSWER_BYTES && this.passBeforeDrop-- <= 0) {
        this.dropArmed--;
        this.stats.answersDropped++;
        if (this.dropArmed === 0 && this.partitionAfterDrop) {
          this.partitionAfterDrop = false;
          this.partition();
        } else this.drop(pair);
        return;
      }
      this.stats.bytesDown += chunk.length;
      this.forward(client, chunk);
    });
  }

  private forward(to: Socket, chunk: Buffer): void {
    if (this.delayMs === 0) {
      if (!to.destroyed) to.write(chunk);
      return;
    }
    setTimeout(() => !to.destroyed && to.write(chunk), this.delayMs);
  }

  private drop(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.resetAndDestroy();
    pair.upstream.destroy();
  }
}
