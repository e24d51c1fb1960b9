// New TCP connections per second: `clients` loops, each connects, sends one byte, waits for its
// echo and closes, until `count` echoes completed or `seconds` passed. Only completed echoes
// count; a refused, reset or stuck (2 s) connection is an error.
import { connect } from 'node:net';
import { config, deadline, nowUs, result } from './common.js';

interface ConnConfig {
  host: string;
  port: number;
  clients: number;
  count: number;
  seconds: number;
}

const c = config<ConnConfig>();
deadline((c.seconds + 10) * 1000);
const STUCK_MS = 2000;
const stopAt = Date.now() + c.seconds * 1000;
const t0 = nowUs();
let started = 0;
let done = 0;
let errors = 0;
let running = c.clients;
let firstError = '';

function loop(): void {
  if (started >= c.count || Date.now() >= stopAt) {
    if (--running === 0) {
      const secs = (nowUs() - t0) / 1e6;
      result({ done, errors, seconds: secs, perSecond: done / secs, firstError });
    }
    return;
  }
  started++;
  let settled = false;
  const s = connect({ host: c.host, port: c.port, noDelay: true });
  const settle = (ok: boolean, why?: string): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    if (ok) done++;
    else {
      errors++;
      firstError ||= why ?? 'error';
    }
    s.destroy();
    setImmediate(loop);
  };
  const timer = setTimeout(() => settle(false, 'no echo within 2 s'), STUCK_MS);
  s.once('connect', () => s.write('x'));
  s.once('data', () => settle(true));
  s.once('error', (e) => settle(false, e.message));
  s.once('close', () => settle(false, 'closed before the echo'));
}

for (let i = 0; i < c.clients; i++) loop();
