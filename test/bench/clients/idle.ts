// Holds `count` idle TCP connections (opened `batch` at a time, one echo verified on each; no
// new batch after half of `maxSeconds`, the hard deadline),
// driven by stdin lines: prints {"opened"} once all are up, then on "check" sends a second
// echo on each and prints {"alive"}, and exits on "close" or when stdin ends.
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { config, deadline } from './common.js';

interface IdleConfig {
  host: string;
  port: number;
  count: number;
  batch: number;
  maxSeconds: number;
}

const c = config<IdleConfig>();
deadline(c.maxSeconds * 1000);
const ECHO_MS = 5000;
const held: Socket[] = [];
let failed = 0;

function say(v: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(v) + '\n');
}

/** echo sends one byte on s and resolves whether it came back within ECHO_MS. */
function echo(s: Socket): Promise<boolean> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve(false);
    const done = (ok: boolean): void => {
      clearTimeout(t);
      s.off('data', onData);
      s.off('close', onClose);
      resolve(ok);
    };
    const onData = (): void => done(true);
    const onClose = (): void => done(false);
    const t = setTimeout(() => done(false), ECHO_MS);
    s.on('data', onData);
    s.on('close', onClose);
    s.write('x');
  });
}

function open(): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const s = connect({ host: c.host, port: c.port });
    s.on('error', () => {});
    s.once('connect', () => {
      void echo(s).then((ok) => resolve(ok ? s : undefined));
    });
    s.once('close', () => resolve(undefined));
  });
}

async function openAll(): Promise<void> {
  const stopAt = Date.now() + (c.maxSeconds * 1000) / 2;
  for (let i = 0; i < c.count && Date.now() < stopAt; i += c.batch) {
    const n = Math.min(c.batch, c.count - i);
    const got = await Promise.all(Array.from({ length: n }, open));
    for (const s of got) {
      if (s) held.push(s);
      else failed++;
    }
  }
  say({ opened: held.length, failed });
}

async function check(): Promise<void> {
  const ok = await Promise.all(held.map(echo));
  say({ alive: ok.filter(Boolean).length });
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line === 'check') void check();
  if (line === 'close') process.exit(0);
});
rl.on('close', () => process.exit(0));
void openAll();
