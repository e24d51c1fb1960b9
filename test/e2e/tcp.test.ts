// End to end through the built CLI (bin/portpub.js -> dist/): real TCP servers and clients talk
// through portpub's TCP forwarding: redis-server with redis-cli and redis-benchmark, and an HTTP
// server with curl.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, type TestContext } from 'vitest';
import { parsePortLine, startCli, type Running } from '../helpers/cli.js';
import { connectTcp, freePort, outcome, track, waitFor, withDeadline } from '../helpers/net.js';
import { needs } from '../helpers/udp.js';

const REDIS_SERVER = '/usr/bin/redis-server';
const REDIS_CLI = '/usr/bin/redis-cli';
const REDIS_BENCHMARK = '/usr/bin/redis-benchmark';
const CURL = '/usr/bin/curl';

function works(cmd: string, args: string[]): boolean {
  return existsSync(cmd) && spawnSync(cmd, args, { timeout: 5_000, stdio: 'ignore' }).status === 0;
}

const tools = {
  redis: works(REDIS_SERVER, ['--version']) && works(REDIS_CLI, ['--version']),
  benchmark: existsSync(REDIS_BENCHMARK),
  curl: works(CURL, ['--version']),
  // dist/cli.js is built by `npm run build`, which `npm test` runs first.
  cli: existsSync(new URL('../../dist/cli/main.js', import.meta.url)),
};

const MiB = 1 << 20;

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** run executes a command to completion with a hard deadline; stdout is kept as bytes. */
function run(cmd: string, args: string[], timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { timeout: timeoutMs, encoding: 'buffer', maxBuffer: 64 * MiB },
      (err, stdout, stderr) => {
        if (err?.killed) {
          reject(new Error(`${cmd} ${args.join(' ')} hung (killed after ${timeoutMs} ms)`));
          return;
        }
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, stdout, stderr: stderr.toString('utf8') });
      },
    );
  });
}

/** logLines parses portpub's JSON log lines. */
function logLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** portpub publishes 127.0.0.1:<ephemeral> -> 127.0.0.1:targetPort and resolves the host port. */
async function portpub(targetPort: number, extra: string[] = []): Promise<[Running, number]> {
  const running = await startCli(
    [
      '-p',
      `127.0.0.1:0:${targetPort}`,
      '--target',
      '127.0.0.1',
      '--log-level',
      'debug',
      '--log-format',
      'json',
      ...extra,
    ],
    1,
  );
  const line = parsePortLine(running.lines[0]!);
  expect(line).toMatchObject({ target: `${targetPort}/tcp`, host: '127.0.0.1' });
  return [running, line.port];
}

/** redisCli runs one redis-cli command against 127.0.0.1:port and returns its trimmed output. */
async function redisCli(port: number, ...command: string[]): Promise<string> {
  const r = await run(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(port), ...command]);
  if (r.code !== 0)
    throw new Error(`redis-cli ${command.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout.toString('utf8').trim();
}

/** commandsProcessed reads redis's own count of commands served (asked directly, not via portpub). */
async function commandsProcessed(port: number): Promise<number> {
  const info = await redisCli(port, 'INFO', 'stats');
  const m = /total_commands_processed:(\d+)/.exec(info);
  if (!m) throw new Error(`no total_commands_processed in INFO stats:\n${info}`);
  return Number(m[1]);
}

/**
 * startRedis runs redis-server in the foreground on 127.0.0.1:port, with no persistence, and
 * resolves once it answers PING. It is killed by PID when the test ends.
 */
async function startRedis(port: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portpub-redis-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const child = track(
    spawn(
      REDIS_SERVER,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        '--daemonize',
        'no',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ),
    (c) => c.kill('SIGKILL'),
  );
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`redis-server exited:\n${output}`);
      return (await redisCli(port, 'PING').catch(() => '')) === 'PONG';
    },
    `redis-server on port ${port}`,
    10_000,
  );
}

/** needTools skips (or under CI=true fails) a test when a tool is missing. */
function needTools(ctx: TestContext, which: (keyof typeof tools)[]): void {
  const hints: Record<keyof typeof tools, string> = {
    redis: 'redis-server and redis-cli (apt-get install redis-server redis-tools)',
    benchmark: 'redis-benchmark (apt-get install redis-tools)',
    curl: 'curl (apt-get install curl)',
    cli: 'dist/cli.js (npm run build)',
  };
  needs(
    ctx,
    which.map((t) => !tools[t] && hints[t]),
  );
}

describe('portpub TCP end to end', () => {
  it(
    'redis: SET/GET with redis-cli and a redis-benchmark run through portpub',
    {
      timeout: 60_000,
    },
    async (ctx) => {
      needTools(ctx, ['redis', 'benchmark', 'cli']);
      const redisPort = await freePort();
      await startRedis(redisPort);
      const [running, port] = await portpub(redisPort);

      expect(await redisCli(port, 'SET', 'portpub:key', 'hello through portpub')).toBe('OK');
      expect(await redisCli(port, 'GET', 'portpub:key')).toBe('hello through portpub');
      // What went in through portpub is what redis holds (read directly, not through portpub).
      expect(await redisCli(redisPort, 'GET', 'portpub:key')).toBe('hello through portpub');

      const before = await commandsProcessed(redisPort);
      const bench = await run(
        REDIS_BENCHMARK,
        [
          '-h',
          '127.0.0.1',
          '-p',
          String(port),
          '-q',
          '-n',
          '2000',
          '-c',
          '20',
          '-t',
          'ping,set,get',
        ],
        45_000,
      );
      const text = bench.stdout.toString('utf8') + bench.stderr;
      expect(bench.code, text).toBe(0);
      expect(text).not.toMatch(/error/i);
      // -t ping runs PING_INLINE and PING_MBULK: four tests of 2,000 requests each.
      for (const t of ['PING_INLINE', 'PING_MBULK', 'SET', 'GET']) {
        expect(text).toMatch(new RegExp(`${t}: [\\d.]+ requests per second`));
      }
      expect((await commandsProcessed(redisPort)) - before).toBeGreaterThanOrEqual(4 * 2000);

      const stopped = await running.stop('SIGTERM');
      expect(stopped.code).toBe(0);
      const logs = logLines(stopped.stderr);
      expect(logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
      const closed = logs.filter((l) => l.msg === 'connection closed');
      expect(closed.length).toBeGreaterThanOrEqual(20 + 3);
      expect(
        closed.filter((l) => l.how === 'connect-failed' || l.how === 'reset-by-target'),
      ).toEqual([]);
    },
  );

  it(
    'curl: a 16 MiB download and an 8 MiB upload through portpub, byte-exact',
    {
      timeout: 60_000,
    },
    async (ctx) => {
      needTools(ctx, ['curl', 'cli']);
      // The download: deterministic bytes; the upload: the server answers with its SHA-256.
      const blob = Buffer.alloc(16 * MiB);
      for (let i = 0; i < blob.length; i += 4) blob.writeUInt32LE((i * 2654435761) >>> 0, i);
      const http = track(
        createServer((req: IncomingMessage, res: ServerResponse) => {
          if (req.method === 'GET' && req.url === '/blob') {
            res
              .writeHead(200, {
                'content-type': 'application/octet-stream',
                'content-length': blob.length,
              })
              .end(blob);
            return;
          }
          if (req.method === 'POST' && req.url === '/sha256') {
            const hash = createHash('sha256');
            let bytes = 0;
            req.on('data', (chunk: Buffer) => {
              bytes += chunk.length;
              hash.update(chunk);
            });
            req.on('end', () => res.end(`${bytes} ${hash.digest('hex')}`));
            return;
          }
          res.writeHead(404).end();
        }),
        (s) => {
          s.closeAllConnections();
          s.close();
        },
      );
      await withDeadline(
        new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve)),
        5_000,
        'the HTTP server to listen',
      );
      const httpPort = (http.address() as AddressInfo).port;
      const [running, port] = await portpub(httpPort);
      const base = `http://127.0.0.1:${port}`;

      const down = await run(CURL, ['-sS', '--fail', '--max-time', '20', `${base}/blob`], 30_000);
      expect(down.code, down.stderr).toBe(0);
      expect(down.stdout.length).toBe(blob.length);
      expect(createHash('sha256').update(down.stdout).digest('hex')).toBe(
        createHash('sha256').update(blob).digest('hex'),
      );

      const dir = mkdtempSync(join(tmpdir(), 'portpub-curl-'));
      onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
      const upload = join(dir, 'upload.bin');
      const body = blob.subarray(0, 8 * MiB);
      writeFileSync(upload, body);
      const up = await run(
        CURL,
        ['-sS', '--fail', '--max-time', '20', '--data-binary', `@${upload}`, `${base}/sha256`],
        30_000,
      );
      expect(up.code, up.stderr).toBe(0);
      expect(up.stdout.toString('utf8')).toBe(
        `${body.length} ${createHash('sha256').update(body).digest('hex')}`,
      );

      // A download under way when SIGTERM comes is drained to its end, and portpub exits 0.
      const held = await connectTcp(port);
      const heldDone = outcome(held, 20_000, 32 * MiB);
      held.write('GET /blob HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await waitFor(() => held.bytesRead > 0, 'the download to start');
      const stopped = await running.stop('SIGTERM');
      expect(stopped.code).toBe(0);
      const response = await heldDone;
      expect(response).toMatchObject({ ended: true, error: undefined });
      const tail = response.received.subarray(response.received.length - blob.length);
      expect(response.received.length).toBeGreaterThan(blob.length);
      expect(tail.equals(blob)).toBe(true);
      const logs = logLines(stopped.stderr);
      expect(logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
      expect(logs.filter((l) => l.msg === 'connection closed').length).toBeGreaterThanOrEqual(2);
    },
  );
});
