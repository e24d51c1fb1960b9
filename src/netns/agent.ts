// The agent: a small program portpub starts inside a service's new namespaces (RootlessKit's
// "builtin" port driver is the model). It brings `lo` up, sets the hostname, mounts the private
// /etc/hosts, runs the command, and on request dials the service's ports inside the namespace and
// hands the connected sockets back over its IPC channel. It imports nothing of portpub at run time
// but the leaves tty.ts and shell.ts, and ends with its parent: a closed channel (portpub gone, even by SIGKILL)
// kills the command.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import type { FromAgent, ToAgent } from './protocol.js';
import { signalsFor } from './tty.js';

type Handle = net.Socket | net.Server | dgram.Socket;

function send(message: FromAgent, handle?: Handle, done?: () => void): void {
  if (!process.connected) return;
  // Sending fails only once the channel is closing, which 'disconnect' handles.
  process.send!(message, handle as net.Socket | undefined, {}, () => done?.());
}

/** PACKAGES names where each tool the setup runs comes from, for the not-found message. */
const PACKAGES: Record<string, string> = {
  ip: 'iproute2',
  mount: 'util-linux',
  hostname: 'hostname',
};

function run(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 10_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === 'ENOENT'
          ? `not found (install ${PACKAGES[file] ?? file})`
          : stderr.trim() || err.message;
      reject(new Error(`${file} ${args.join(' ')}: ${why}`));
    });
  });
}

async function setup(hostname: string, mounts: { source: string; target: string }[]) {
  // A new network namespace has only `lo`, and it is down: nothing could reach 127.0.0.1.
  await run('ip', ['link', 'set', 'lo', 'up']);
  try {
    await run('hostname', [hostname]);
  } catch (err) {
    // Without the hostname program, root of the user namespace may still write the sysctl.
    try {
      writeFileSync('/proc/sys/kernel/hostname', hostname);
    } catch {
      throw err;
    }
  }
  // unshare --mount made every mount private: these bind mounts are seen by this namespace only.
  for (const m of mounts) await run('mount', ['--bind', m.source, m.target]);
}

let child: ChildProcess | undefined;
/** Signals the command: under -t the child is script(1), and they go to the command under it. */
let killCommand: ((signal: NodeJS.Signals) => void) | undefined;
const listeners = new Map<number, net.Server>();

function start(m: Extract<ToAgent, { t: 'start' }>): void {
  const env: Record<string, string> = {};
  for (const [k, v] of m.env) env[k] = v;
  const c = spawn(m.command, m.args, {
    env,
    ...(m.cwd !== undefined ? { cwd: m.cwd } : {}),
    stdio: [
      // Under -t without -i the terminal's input is a pipe nobody writes, so the command's reads
      // wait, as under docker run -t: from /dev/null script would pass an end-of-file on to a
      // terminal in canonical mode, and `run -dt -- sh` would end at once.
      m.stdin ? 'inherit' : m.tty ? 'pipe' : 'ignore',
      'inherit',
      'inherit',
      ...(m.tty ? ['pipe' as const] : []),
    ],
  });
  child = c;
  killCommand = signalsFor(c, m.tty);
  let spawned = false;
  c.once('spawn', () => {
    spawned = true;
    send({ t: 'started', pid: c.pid ?? 0 });
  });
  c.on('error', (err: NodeJS.ErrnoException) => {
    if (spawned) return; // a failed kill(); 'exit' still reports how the command ended
    // As a shell (and Docker) would: 127 not found, 126 found but not executable.
    const code = err.code === 'ENOENT' ? 127 : 126;
    const why = code === 127 ? 'command not found' : `cannot execute (${err.code ?? err.message})`;
    process.stderr.write(`portpub: ${m.command}: ${why}\n`);
    finish({ t: 'exit', code, signal: null, error: why });
  });
  c.on('exit', (code, signal) => finish({ t: 'exit', code, signal }));
}

/** signalCommand sends a signal to the command while it runs (under -t, past script). */
function signalCommand(signal: NodeJS.Signals): void {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  killCommand?.(signal);
}

/** finish reports how the command ended and exits; as PID 1 of its PID namespace, that ends the rest. */
function finish(message: FromAgent): void {
  const exit = () => process.exit(0);
  if (!process.connected) exit();
  send(message, undefined, exit);
}

function dial(m: Extract<ToAgent, { t: 'dial' }>): void {
  const failed = (err: NodeJS.ErrnoException) =>
    send({ t: 'dial-failed', id: m.id, code: err.code ?? 'EIO', message: err.message });
  if (m.protocol === 'tcp') {
    const s = new net.Socket({ allowHalfOpen: true });
    // Paused before connecting, so not one byte the service sends first is read here: the whole
    // stream goes to the socket's new owner.
    s.pause();
    s.once('error', failed);
    s.connect({ host: '127.0.0.1', port: m.port }, () => {
      s.off('error', failed);
      s.on('error', () => undefined);
      send({ t: 'dialed', id: m.id }, s);
    });
    return;
  }
  handOverUdp(m.id, '127.0.0.1', 0, failed);
}

/**
 * handOverUdp binds a UDP socket here and sends it to the parent, then closes this copy. For a
 * dial the parent connects it: a datagram can only arrive once the parent has sent from it, and
 * by then this copy is closed ('released'), so no reply is read here.
 */
function handOverUdp(
  id: number,
  host: string,
  port: number,
  failed: (err: NodeJS.ErrnoException) => void,
): void {
  const s = dgram.createSocket('udp4');
  s.once('error', failed);
  s.bind(port, host, () => {
    s.off('error', failed);
    s.on('error', () => undefined);
    send({ t: 'dialed', id }, s, () => {
      s.close();
      send({ t: 'released', id });
    });
  });
}

function listen(m: Extract<ToAgent, { t: 'listen' }>): void {
  // pauseOnConnect: the accepted socket is handed over before anything is read from it.
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (c) => {
    c.on('error', () => undefined);
    send({ t: 'accepted', id: m.id }, c);
  });
  listeners.set(m.id, server);
  server.once('error', (err: NodeJS.ErrnoException) =>
    send({ t: 'listen-failed', id: m.id, code: err.code ?? 'EIO', message: err.message }),
  );
  server.listen({ host: m.host, port: m.port }, () => send({ t: 'listening', id: m.id }));
}

function onMessage(m: ToAgent): void {
  switch (m.t) {
    case 'setup':
      setup(m.hostname, m.mounts).then(
        () => send({ t: 'ready' }),
        (err: unknown) => {
          send({ t: 'fatal', message: (err as Error).message }, undefined, () => process.exit(1));
        },
      );
      return;
    case 'start':
      if (!child) start(m);
      return;
    case 'dial':
      dial(m);
      return;
    case 'listen':
      listen(m);
      return;
    case 'bind-udp':
      handOverUdp(m.id, m.host, m.port, (err) =>
        send({ t: 'dial-failed', id: m.id, code: err.code ?? 'EIO', message: err.message }),
      );
      return;
    case 'signal':
      signalCommand(m.signal);
      send({ t: 'signalled' });
      return;
  }
}

// Signals from the terminal reach every process of its group; portpub decides what the command gets.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => undefined);
process.on('message', onMessage);
process.on('disconnect', () => {
  // portpub is gone: nothing may outlive it.
  child?.kill('SIGKILL');
  process.exit(137);
});
if (!process.send) {
  process.stderr.write('portpub agent: started without an IPC channel\n');
  process.exit(1);
}
send({ t: 'hello', pid: process.pid });
