// A benchmark target, run as its own process: `tcp-echo` (echoes every byte), `tcp-source`
// (writes as fast as each connection takes it, for the bulk rows) or `udp-echo`. It listens on
// host:port and runs until it is stopped.
import { createSocket } from 'node:dgram';
import { createServer, type Socket } from 'node:net';
import { config } from './common.js';

interface TargetConfig {
  mode: 'tcp-echo' | 'tcp-source' | 'udp-echo';
  host: string;
  port: number;
}

const c = config<TargetConfig>();
const CHUNK = Buffer.alloc(256 * 1024, 0x61);

function source(s: Socket): void {
  const pump = (): void => {
    while (!s.destroyed && s.write(CHUNK));
  };
  s.on('drain', pump);
  pump();
}

if (c.mode === 'udp-echo') {
  const sock = createSocket('udp4');
  sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
  sock.on('error', (e) => process.stderr.write(`udp target: ${e.message}\n`));
  sock.bind(c.port, c.host);
} else {
  const server = createServer({ noDelay: true }, (s) => {
    s.on('error', () => s.destroy());
    if (c.mode === 'tcp-source') {
      s.on('data', () => {});
      source(s);
    } else {
      s.on('data', (d) => s.write(d));
      s.on('end', () => s.end());
    }
  });
  server.on('error', (e) => {
    process.stderr.write(`tcp target: ${e.message}\n`);
    process.exit(1);
  });
  server.listen({ host: c.host, port: c.port, backlog: 4096 });
}
process.on('SIGTERM', () => process.exit(0));
