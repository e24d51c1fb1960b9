// Ping-pong latency on one TCP connection or one UDP socket: a 14-byte message, the next sent
// when the echo is back, for at most `count` round trips or `seconds`, whichever ends first.
// UDP: a reply not back within 200 ms counts as lost and the next ping (a new sequence
// number in its last 4 bytes) goes out.
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { config, deadline, nowUs, percentile, result } from './common.js';

interface PingConfig {
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
  count: number;
  seconds: number;
  warmup: number;
}

const c = config<PingConfig>();
deadline((c.seconds + 10) * 1000);
const MSG = Buffer.from('ping-pong-1234');
const UDP_LOSS_MS = 200;
const samples: number[] = [];
let lost = 0;
let sent = 0;
let t0 = 0;
const stopAt = Date.now() + c.seconds * 1000;

function finish(): void {
  // The warm-up round trips are left out, but never more than half of them (a slow machine).
  const skip = Math.min(c.warmup, Math.floor(samples.length / 2));
  const sorted = samples.slice(skip).sort((a, b) => a - b);
  result({
    samples: sorted.length,
    lost,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
  });
}

const more = (): boolean => sent < c.count + c.warmup && Date.now() < stopAt;

if (c.proto === 'tcp') {
  const s = connect({ host: c.host, port: c.port, noDelay: true });
  let got = 0;
  s.on('error', (e) => {
    process.stderr.write(`tcp ping-pong: ${e.message}\n`);
    process.exit(1);
  });
  s.once('connect', () => {
    t0 = nowUs();
    sent++;
    s.write(MSG);
  });
  s.on('data', (d: Buffer) => {
    got += d.length;
    if (got < MSG.length) return;
    got -= MSG.length;
    samples.push(nowUs() - t0);
    if (!more()) {
      s.destroy();
      finish();
      return;
    }
    t0 = nowUs();
    sent++;
    s.write(MSG);
  });
} else {
  const s = createSocket('udp4');
  let timer: NodeJS.Timeout | undefined;
  const ping = (): void => {
    if (!more()) {
      s.close();
      finish();
      return;
    }
    t0 = nowUs();
    sent++;
    MSG.writeUInt32BE(sent, 10);
    s.send(MSG);
    timer = setTimeout(() => {
      lost++;
      ping();
    }, UDP_LOSS_MS);
  };
  s.on('message', (m: Buffer) => {
    // A late reply to a ping already counted lost is not this ping's answer.
    if (m.length !== MSG.length || m.readUInt32BE(10) !== sent) return;
    clearTimeout(timer);
    samples.push(nowUs() - t0);
    ping();
  });
  s.on('error', (e) => process.stderr.write(`udp ping-pong: ${e.message}\n`));
  s.connect(c.port, c.host, ping);
}
