// The log lines of a TCP binding, written alike by both engines (src/tcp/forwarder.ts with
// src/tcp/pair.ts, and src/engine/native-tcp.ts): a closed pair, a failed connect, an accept
// error, a refused client and a looped one. Floods are rate-limited (src/log-limit.ts): refusals,
// loops, and running out of descriptors (accept and connect share that limit).
import { LogLimit } from '../log-limit.js';
import type { Logger } from '../logger.js';
import type { TcpEnding } from './options.js';

/** ClosedLine is the close line of one pair (README "Logs"). */
export interface ClosedLine {
  client: string;
  bytesClientToTarget: number;
  bytesTargetToClient: number;
  durationMs: number;
  how: TcpEnding;
  code: string | undefined;
}

function isFdExhaustion(code: string | undefined): boolean {
  return code === 'EMFILE' || code === 'ENFILE';
}

/** TcpLogLines writes one binding's lines; one per forwarder. */
export class TcpLogLines {
  private readonly refusals = new LogLimit();
  private readonly exhaustion = new LogLimit();
  private readonly loops = new LogLimit();

  constructor(
    private readonly logger: Logger,
    /** The target as the lines name it (`host:port`, or `dialer`). */
    private readonly targetText: string,
  ) {}

  /** closed writes a pair's close line (info). */
  closed(line: ClosedLine): void {
    if (!this.logger.isLevelEnabled('info')) return;
    const { code, ...fields } = line;
    this.logger.info({ ...fields, ...(code !== undefined ? { code } : {}) }, 'connection closed');
  }

  /** connectFailed warns of a failed target connection; out of descriptors, rate-limited. */
  connectFailed(client: string, code: string | undefined, err: string): void {
    const fields = { client, targetAddress: this.targetText, code, err };
    if (!isFdExhaustion(code)) {
      this.logger.warn(fields, 'cannot connect to target');
      return;
    }
    const n = this.exhaustion.take(Date.now());
    if (n > 0) this.logger.error({ ...fields, count: n }, 'cannot connect to target: out of fds');
  }

  /** acceptFailed reports an accept error (the listener goes on), rate-limited. */
  acceptFailed(code: string | undefined, err: string): void {
    const n = this.exhaustion.take(Date.now());
    if (n > 0) this.logger.error({ code, err, count: n }, 'accept failed; still listening');
  }

  /** refused warns of a client turned away at maxConnections, rate-limited. */
  refused(client: string, maxConnections: number): void {
    const n = this.refusals.take(Date.now());
    if (n === 0) return;
    this.logger.warn(
      { client, maxConnections, refused: n },
      'connection refused: maxConnections reached',
    );
  }

  /** looped warns of a connection from portpub's own target side, rate-limited. */
  looped(client: string): void {
    const n = this.loops.take(Date.now());
    if (n === 0) return;
    this.logger.warn(
      { client, targetAddress: this.targetText, dropped: n },
      'connection dropped: it comes from portpub itself (the target leads back to portpub)',
    );
  }
}
