// TCP bulk receiver: opens `streams` connections to a tcp-source target (through the subject)
// and counts the bytes received in a window of `seconds`, after a short warm-up. The rate is
// measured here, at the receiver.
import { connect, type Socket } from 'node:net';
import { config, deadline, nowUs, result } from './common.js';

interface BulkConfig {
  host: string;
  port: number;
  streams: number;
  seconds: number;
}

const c = config<BulkConfig>();
deadline((c.seconds + 10) * 1000);
const WARMUP_MS = Math.min(200, c.seconds * 200);

let bytes = 0;
let counting = false;
let errors = 0;
const sockets: Socket[] = [];
let connected = 0;

function begin(): void {
  setTimeout(() => {
    counting = true;
    const t0 = nowUs();
    setTimeout(() => {
      const secs = (nowUs() - t0) / 1e6;
      counting = false;
      for (const s of sockets) s.destroy();
      result({ bytes, seconds: secs, gbps: (bytes * 8) / secs / 1e9, errors });
    }, c.seconds * 1000);
  }, WARMUP_MS);
}

for (let i = 0; i < c.streams; i++) {
  const s = connect({ host: c.host, port: c.port });
  sockets.push(s);
  s.on('data', (d: Buffer) => {
    if (counting) bytes += d.length;
  });
  s.on('error', () => errors++);
  s.once('connect', () => {
    if (++connected === c.streams) begin();
  });
}
