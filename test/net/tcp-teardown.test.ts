// Every TCP pair ends with both descriptors closed, whatever order FIN, RST and errors arrive in
// (issue 11 defect 1): each scenario drives one order through a real forwarder on loopback and
// checks that every pair finishes and /proc/self/fd returns to its baseline, for both engines.
import { readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import { describe, expect, it, onTestFinished } from 'vitest';
import { listenTcp } from '../../src/tcp/forwarder.js';
import { resetSocket, shutdownPending } from '../../src/node-internals.js';
import { engines, requireNative, tcpForwarder, type Engine } from '../helpers/engines.js';
import { settled, track, waitFor, withDeadline } from '../helpers/net.js';

const V4 = '127.0.0.1';
const KiB = 1024;
const MiB = 1024 * KiB;

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** pipeCount counts this process's pipe descriptors (the native engine pools idle pipes). */
function pipeCount(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('pipe:')) n++;
    } catch {
      // closed between the listing and the look
    }
  }
  return n;
}

/**
 * descriptors is what must return to its baseline: every descriptor for the TypeScript engine;
 * for the native one every descriptor but pipes, as it keeps up to 64 empty pipes (128
 * descriptors) pooled for the next bytes in flight (native/tcp.c pipe_give), a bound checked apart.
 */
function descriptors(engine: Engine): number {
  return engine === 'native' ? fdCount() - pipeCount() : fdCount();
}

/** POOLED_PIPE_FDS bounds the native engine's pooled pipes (native/engine.h pool[64][2]). */
const POOLED_PIPE_FDS = 128;

/** closed resolves once socket has closed (at once if it already has). */
function closed(socket: net.Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/**
 * Scenario is one order of events on every pair: the origin (client or target) sends `bytes`;
 * the receiver (the other end) reads or not, and may send `receiverSends` bytes of its own
 * meanwhile (an upload, an answer), with or without its FIN. Then, while the forwarder's thread
 * is blocked (the test ends run in a worker, test/fixtures/tcp-teardown-peers.mjs), the origin
 * sends its FIN (`fin`), resets, and a receiver that has not ended answers 64 KiB: the forwarder
 * meets FIN, reset and answer in one event-loop turn, so the end() it gives the receiver's
 * socket is still pending (libuv: a shutdown) when relaying the answer fails on the reset
 * origin. That is the order that leaked (issue 11), and why resetSocket exists.
 */
interface Scenario {
  origin: 'client' | 'target';
  /** bytes the origin sends before it closes, per connection (spread so some fill the buffers). */
  bytes: (i: number) => number;
  fin: boolean;
  receiverReads: boolean;
  receiverSends: number;
  receiverFin: boolean;
}

const PAIRS = 8;
/** spread: 64 KiB to ~2.2 MiB across the pairs, so one of them meets a socket buffer just full. */
const spread = (i: number): number => 64 * KiB + i * 300 * KiB;
const none = (): number => 0;
const bulk = (): number => 16 * MiB;

/** rows crosses every order worth driving: who resets, FIN first or not, reading or not. */
function rows(): [string, Scenario][] {
  const out: [string, Scenario][] = [];
  for (const origin of ['client', 'target'] as const) {
    for (const [size, bytes] of [
      ['nothing', none],
      ['up to 2 MiB', spread],
      ['16 MiB (writes pending)', bulk],
    ] as const) {
      for (const fin of [false, true]) {
        for (const receiverReads of [false, true]) {
          for (const [receiverSends, receiverFin] of [
            [0, false],
            [4 * MiB, true],
          ] as const) {
            const name =
              `${origin} sends ${size}; the other end ` +
              `${receiverReads ? 'reads' : 'does not read'}` +
              (receiverSends > 0
                ? `, sends ${receiverSends / KiB} KiB${receiverFin ? ' and FIN' : ''}`
                : '') +
              `; in one turn: ${fin ? 'FIN, ' : ''}RST${receiverFin ? '' : ', an answer'}`;
            out.push([name, { origin, bytes, fin, receiverReads, receiverSends, receiverFin }]);
          }
        }
      }
    }
  }
  return out;
}

/** Peers is the worker holding every test end, with one request/answer at a time. */
interface Peers {
  ask<T = object>(msg: Record<string, unknown>): Promise<T>;
  /** inOneTurn posts msg and blocks this thread until the worker has done it all. */
  inOneTurn(msg: Record<string, unknown>): void;
}

async function peers(): Promise<Peers & { port: number }> {
  const worker = new Worker(new URL('../fixtures/tcp-teardown-peers.mjs', import.meta.url));
  onTestFinished(async () => {
    await worker.terminate();
  });
  const ask = <T>(msg: Record<string, unknown>): Promise<T> => {
    const answer = new Promise<T>((resolve, reject) =>
      worker.once('message', (m: T & { error?: string }) =>
        m.error ? reject(new Error(m.error)) : resolve(m),
      ),
    );
    worker.postMessage(msg);
    return withDeadline(answer, 10_000, `the worker's answer to ${String(msg.op)}`);
  };
  const inOneTurn = (msg: Record<string, unknown>): void => {
    const word = new Int32Array(new SharedArrayBuffer(4));
    worker.postMessage({ ...msg, word: word.buffer });
    expect(Atomics.wait(word, 0, 0, 10_000), 'the worker acting in one turn').not.toBe('timed-out');
  };
  const { port } = await ask<{ port: number }>({ op: 'listen' });
  return { ask, inOneTurn, port };
}

async function run(engine: Engine, s: Scenario): Promise<void> {
  const ends = await peers();
  const listener = await listenTcp(V4, 0);
  track(listener, (l) => l.close());
  const fw = tcpForwarder(engine, listener, { targetHost: V4, targetPort: ends.port });
  const baseline = descriptors(engine);
  const pipesBefore = pipeCount();

  await ends.ask({ op: 'connect', port: fw.address.port, pairs: PAIRS, origin: s.origin });
  // A byte from each receiver, left unread by the origin: the origin's close() is then a reset.
  const toOrigin = (): number =>
    s.origin === 'client' ? fw.stats().bytesTargetToClient : fw.stats().bytesClientToTarget;
  await waitFor(() => toOrigin() >= PAIRS, 'the greetings to reach the origins');

  const { receiverReads, receiverSends, receiverFin } = s;
  const bytes = Array.from({ length: PAIRS }, (_, i) => s.bytes(i));
  await ends.ask({ op: 'send', bytes, receiverReads, receiverSends, receiverFin });
  // Let whatever can move, move (FINs relayed, buffers filled), then the row's last act.
  await settled(
    () => fw.stats().bytesClientToTarget + fw.stats().bytesTargetToClient,
    'traffic',
    200,
  );
  ends.inOneTurn({ op: 'reset', fin: s.fin, answer: !receiverFin });
  // The forwarder meets the resets with the receivers as they were; then every receiver reads
  // and ends, so that a pair left half-open by design (it saw the FIN, and nothing made it see
  // the reset) finishes too.
  await settled(() => fw.stats().connectionsActive, 'the resets to be relayed', 200);
  await ends.ask({ op: 'finish' });

  await waitFor(() => fw.stats().connectionsActive === 0, 'every pair to finish', 10_000);
  await ends.ask({ op: 'close' });
  await waitFor(
    () => descriptors(engine) <= baseline,
    `descriptors back to ${baseline}`,
    5_000,
  ).catch(() => expect(descriptors(engine)).toBe(baseline));
  if (engine === 'native') expect(pipeCount()).toBeLessThanOrEqual(pipesBefore + POOLED_PIPE_FDS);
  // close() (drain on stop) resolves at once: no pair is left to wait for.
  await withDeadline(fw.close(), 1_000, 'close() with nothing to drain');
}

requireNative();

describe.each(engines)(
  'pair teardown (%s engine): both descriptors closed whatever the order',
  (engine) => {
    it.each(rows())('%s', async (_name, scenario) => run(engine, scenario), 30_000);
  },
);

// JS-only: resetSocket is the TypeScript relay's node-internals reset; the native engine has none.
describe('resetSocket', () => {
  it('closes a socket whose shutdown is pending (libuv refuses the reset: EINVAL)', async () => {
    const peers: net.Socket[] = [];
    const server = net.createServer({ pauseOnConnect: true }, (s) => {
      s.on('error', () => undefined);
      peers.push(s);
    });
    onTestFinished(() => {
      for (const s of peers) s.destroy();
      server.close();
    });
    await new Promise<void>((resolve) => server.listen(0, V4, resolve));
    const baseline = fdCount();
    const socket = net.connect({ port: (server.address() as net.AddressInfo).port, host: V4 });
    const errors: string[] = [];
    socket.on('error', (err: NodeJS.ErrnoException) => errors.push(`${err.syscall}:${err.code}`));
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.end(); // nothing queued: the shutdown goes to libuv now and completes next turn
    expect(shutdownPending(socket)).toBe(true);
    resetSocket(socket);
    await withDeadline(closed(socket), 2_000, "the socket's close");
    expect(errors).toEqual([]);
    await waitFor(() => peers.length === 1, 'the accept');
    peers[0]!.destroy();
    await waitFor(() => fdCount() <= baseline, `descriptors back to ${baseline}`);
  });
});

/**
 * sameTurn drives the order that leaked descriptors (issue 11): in one event-loop turn the
 * forwarder reads the origin's bytes and FIN (so end() goes to the other socket, whose shutdown
 * is then pending until the next turn) and then the receiver's bytes, whose relay to the origin
 * fails (the origin has reset): the pair resets the socket it has just ended. The two test ends
 * run in a worker thread and act while this thread is blocked, so the forwarder meets it all in
 * one turn.
 */
async function sameTurn(engine: Engine, origin: 'client' | 'target'): Promise<void> {
  const baseline = descriptors(engine);
  const pipesBefore = pipeCount();
  const worker = new Worker(new URL('../fixtures/tcp-same-tick-peer.mjs', import.meta.url));
  onTestFinished(async () => {
    await worker.terminate();
  });
  const reply = <T>(): Promise<T> =>
    withDeadline(new Promise<T>((resolve) => worker.once('message', resolve)), 5_000, 'the worker');
  worker.postMessage({ op: 'listen' });
  const { port: targetPort } = await reply<{ port: number }>();
  const listener = await listenTcp(V4, 0);
  track(listener, (l) => l.close());
  const fw = tcpForwarder(engine, listener, { targetHost: V4, targetPort });
  worker.postMessage({ op: 'connect', port: fw.address.port, origin });
  await reply();
  const toOrigin = (): number =>
    origin === 'client' ? fw.stats().bytesTargetToClient : fw.stats().bytesClientToTarget;
  await waitFor(() => toOrigin() === 1, 'the greeting to reach the origin');

  const word = new Int32Array(new SharedArrayBuffer(4));
  worker.postMessage({ op: 'go', origin, word: word.buffer });
  expect(Atomics.wait(word, 0, 0, 5_000)).not.toBe('timed-out');

  await waitFor(() => fw.stats().connectionsActive === 0, 'the pair to finish');
  await withDeadline(fw.close(), 1_000, 'close() with nothing to drain');
  await worker.terminate();
  await waitFor(() => descriptors(engine) <= baseline, `descriptors back to ${baseline}`).catch(
    () => expect(descriptors(engine)).toBe(baseline),
  );
  if (engine === 'native') expect(pipeCount()).toBeLessThanOrEqual(pipesBefore + POOLED_PIPE_FDS);
}

describe.each(engines)(
  'pair teardown (%s engine): FIN, reset and an answer in one turn',
  (engine) => {
    it('client sends, FIN, reset; the target answers', () => sameTurn(engine, 'client'));
    it('target sends, FIN, reset; the client uploads', () => sameTurn(engine, 'target'));
  },
);
