// The small HTTP side shared by --metrics and --ui: parsing an ADDR option (`127.0.0.1:9100`,
// `[::1]:0`, `:9100`) and listening on it with every socket owned and closed on stop.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type Socket } from 'node:net';
import { UsageError } from '../errors.js';
import { joinHostPort } from '../docker/report.js';

/** ListenAddress is where an HTTP endpoint listens. */
export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * parseListenAddress reads HOST:PORT (IPv6 in brackets) or :PORT (every address, as
 * node_exporter's `:9100`). HOST must be an IP literal: an endpoint is bound, not resolved.
 */
export function parseListenAddress(text: string, flag: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(text);
  const bad = (why: string) => new UsageError(`${flag}: ${why}: ${JSON.stringify(text)}`);
  if (!m) throw bad('expected HOST:PORT, [IPv6]:PORT or :PORT');
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  if (port > 65535) throw bad('port out of range 0-65535');
  if (host === '') return { host: '0.0.0.0', port };
  if (m[1] !== undefined ? isIP(host) !== 6 : isIP(host) !== 4) {
    throw bad('host must be an IP address (IPv6 in brackets)');
  }
  return { host, port };
}

/** HttpEndpoint is a listening HTTP server; close() ends every connection it has. */
export interface HttpEndpoint {
  /** url is `http://host:port` as bound (the real port when 0 was asked). */
  readonly url: string;
  close(): Promise<void>;
}

/** listenHttp serves `handler` on `addr`; a handler that throws answers 500. */
export async function listenHttp(
  addr: ListenAddress,
  handler: (req: IncomingMessage, res: ServerResponse) => Promise<void> | void,
): Promise<HttpEndpoint> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    Promise.resolve()
      .then(() => handler(req, res))
      .catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`${(err as Error).message}\n`);
      });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: addr.host, port: addr.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  const port = bound !== null && typeof bound === 'object' ? bound.port : addr.port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${joinHostPort(addr.host, port)}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}
