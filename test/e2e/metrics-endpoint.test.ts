// --metrics through the built CLI: the endpoint parses as the Prometheus text format (strictly),
// carries prom-client's process metrics, and its counters match what a client pushed and what
// `portpub stats` reports for the same process.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parsePortLine } from '../helpers/cli.js';
import { connectTcp, echoServer, pushEcho, roundTrip, waitFor } from '../helpers/net.js';
import { echoServer as udpEcho, needs, request, udpSocket } from '../helpers/udp.js';
import { loadNative } from '../../src/engine/load.js';
import { jsonLines, loggedUrl, observeEnv } from '../fixtures/observe-env.js';
import { parseExposition, value, type Family } from '../fixtures/observe-prom.js';
import { officialParserMissing, parseOfficial } from '../fixtures/prom-official.js';

/** Both engines count alike; the native one where it built. */
const native = loadNative().binding !== undefined;

async function scrapeText(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

async function scrape(url: string): Promise<Map<string, Family>> {
  return parseExposition(await scrapeText(url));
}

/** series keys a sample by name and labels, label order aside. */
function series(name: string, labels: Record<string, string>): string {
  return `${name}${JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)))}`;
}

/**
 * agreeWithOfficial: the Prometheus project's own parser reads the same scrape, with every
 * portpub sample at the value the strict parser read.
 */
async function agreeWithOfficial(text: string): Promise<void> {
  const ours = new Map<string, number>();
  for (const f of parseExposition(text).values()) {
    for (const s of f.samples) ours.set(series(s.name, s.labels), s.value);
  }
  const official = (await parseOfficial(text)).filter((s) => s.name.startsWith('portpub_'));
  expect(official.length).toBeGreaterThan(10);
  for (const s of official) {
    expect(ours.get(series(s.name, s.labels)), s.name).toBe(s.value);
  }
  expect(ours.size).toBeGreaterThanOrEqual(official.length);
  const types = new Map(official.map((s) => [s.family, s.type]));
  expect(types.get('portpub_bytes')).toBe('counter');
  expect(types.get('portpub_connections_active')).toBe('gauge');
}

describe('--metrics', () => {
  it.for(['js', 'native'])(
    'exposes counters that match the traffic and portpub stats (%s engine)',
    async (engine, t) => {
      if (engine === 'native' && !native) t.skip('the native engine did not build');
      needs(t, [officialParserMissing()]);
      const o = observeEnv();
      const tcpTarget = await echoServer();
      const udpTarget = await udpEcho('udp4', '127.0.0.1');
      const pp = await o.start(
        [
          '-p',
          `127.0.0.1::${tcpTarget.port}`,
          '-p',
          `127.0.0.1::${udpTarget.port}/udp`,
          '--name',
          'metered',
          '--metrics',
          '127.0.0.1:0',
          '--engine',
          engine,
        ],
        2,
      );
      const url = await loggedUrl(pp, 'metrics');
      const tcpPort = parsePortLine(pp.lines.find((l) => l.includes('/tcp'))!).port;
      const udpPort = parsePortLine(pp.lines.find((l) => l.includes('/udp'))!).port;

      const socket = await connectTcp(tcpPort);
      await pushEcho(socket, 70_001, 1);
      const dgram = await udpSocket('udp4', '127.0.0.1');
      await request(dgram, 'ping!', udpPort, '127.0.0.1', { tries: 5 });

      const tcp = { binding: `127.0.0.1:${tcpPort}`, protocol: 'tcp' };
      const udp = { binding: `127.0.0.1:${udpPort}`, protocol: 'udp' };
      let m = new Map<string, Family>();
      await waitFor(
        async () => {
          m = await scrape(url);
          return (
            value(m, 'portpub_bytes_total', { ...tcp, direction: 'target_to_client' }) === 70_001 &&
            value(m, 'portpub_bytes_total', { ...udp, direction: 'target_to_client' }) === 5
          );
        },
        'the counters to reach the traffic',
        15_000,
      );
      expect(m.get('portpub_bytes_total')!.type).toBe('counter');
      expect(m.get('portpub_connections_active')!.type).toBe('gauge');
      expect(value(m, 'portpub_connections_active', tcp)).toBe(1);
      expect(value(m, 'portpub_connections_total', tcp)).toBe(1);
      expect(value(m, 'portpub_bytes_total', { ...tcp, direction: 'client_to_target' })).toBe(
        70_001,
      );
      expect(value(m, 'portpub_bytes_total', { ...udp, direction: 'client_to_target' })).toBe(5);
      expect(value(m, 'portpub_udp_flows_active', udp)).toBe(1);
      expect(value(m, 'portpub_udp_flows_total', udp)).toBe(1);
      expect(
        value(m, 'portpub_udp_datagrams_total', { ...udp, direction: 'client_to_target' }),
      ).toBe(1);
      const drops = m.get('portpub_udp_drops_total')!.samples;
      expect(drops.length).toBeGreaterThan(3);
      expect(drops.every((s) => s.value === 0 && s.labels.reason !== '')).toBe(true);
      for (const s of m.get('portpub_connections_total')!.samples) {
        expect(s.labels).toMatchObject({
          service: 'metered',
          target: `127.0.0.1:${tcpTarget.port}`,
        });
      }
      // prom-client's default process metrics come along.
      expect(m.get('process_cpu_user_seconds_total')?.type).toBe('counter');
      expect(m.get('process_resident_memory_bytes')?.samples[0]!.value).toBeGreaterThan(0);

      // The same counters, as portpub stats reads them from the control socket.
      const stats = jsonLines<Record<string, number | string>>(
        (await o.run(['stats', 'metered', '--no-stream', '--format', 'json', '--interval', '50ms']))
          .stdout,
      );
      const afterText = await scrapeText(url);
      const after = parseExposition(afterText);
      await agreeWithOfficial(afterText);
      for (const [labels, port] of [
        [tcp, tcpPort],
        [udp, udpPort],
      ] as const) {
        // TCP and UDP may be given the same port number: the protocol tells the rows apart.
        const row = stats.find(
          (r) => r.binding === `127.0.0.1:${port}` && r.protocol === labels.protocol,
        )!;
        for (const direction of ['client_to_target', 'target_to_client'] as const) {
          const key =
            direction === 'client_to_target' ? 'bytesClientToTarget' : 'bytesTargetToClient';
          expect(value(after, 'portpub_bytes_total', { ...labels, direction })).toBe(row[key]);
        }
      }
    },
  );

  it.for([
    ['200us', true],
    ['0', false],
  ] as const)(
    "counts the native engine thread's busy polls (PORTPUB_BUSY_POLL=%s)",
    async ([window, polls], t) => {
      if (!native) t.skip('the native engine did not build');
      const o = observeEnv();
      o.env.PORTPUB_BUSY_POLL = window;
      const target = await echoServer();
      const pp = await o.start([
        '-p',
        `127.0.0.1::${target.port}`,
        '--metrics',
        '127.0.0.1:0',
        '--engine',
        'native',
      ]);
      const url = await loggedUrl(pp, 'metrics');
      const before = await scrape(url);
      // Before any traffic the engine thread runs (it serves the listener) and has not polled.
      expect(value(before, 'portpub_engine_busy_polls_total', {})).toBe(0);
      const socket = await connectTcp(parsePortLine(pp.lines[0]!).port);
      // Small requests and replies: after each, the engine polls for the next one (engine.c).
      for (let i = 0; i < 5; i++) expect(await roundTrip(socket, `ping ${i}`)).toBe(`ping ${i}`);
      const m = await scrape(url);
      expect(m.get('portpub_engine_busy_polls_total')!.type).toBe('counter');
      const begun = value(m, 'portpub_engine_busy_polls_total', {});
      const hits = value(m, 'portpub_engine_busy_poll_hits_total', {});
      if (polls) expect(begun).toBeGreaterThanOrEqual(1);
      else expect(begun).toBe(0);
      expect(hits).toBeGreaterThanOrEqual(0);
      expect(hits).toBeLessThanOrEqual(begun);
    },
  );

  it('works on up, labelled by service', async () => {
    const o = observeEnv();
    const target = await echoServer();
    const dir = mkdtempSync(join(tmpdir(), 'portpub-observe-up-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'portpub.yaml');
    writeFileSync(file, `services:\n  web:\n    ports:\n      - "127.0.0.1::${target.port}"\n`);
    const pp = await o.start(['up', '-f', file, '--metrics', '127.0.0.1:0']);
    const m = await scrape(await loggedUrl(pp, 'metrics'));
    const s = m.get('portpub_connections_total')!.samples;
    expect(s).toHaveLength(1);
    expect(s[0]!.labels.service).toBe('web');
  });

  it('answers HEAD like GET without a body, 405 to other methods, 404 elsewhere', async () => {
    const o = observeEnv();
    const target = await echoServer();
    const pp = await o.start(['-p', `127.0.0.1::${target.port}`, '--metrics', '127.0.0.1:0']);
    const url = await loggedUrl(pp, 'metrics');
    const head = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(10_000) });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await head.text()).toBe('');
    const post = await fetch(url, { method: 'POST', signal: AbortSignal.timeout(10_000) });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const other = await fetch(new URL('/other', url), { signal: AbortSignal.timeout(10_000) });
    expect(other.status).toBe(404);
  });

  it('sums the counters of every --tcp-workers process', async () => {
    const o = observeEnv();
    const target = await echoServer();
    const pp = await o.start([
      '-p',
      `127.0.0.1::${target.port}`,
      '--name',
      'many',
      '--tcp-workers',
      '3',
      '--metrics',
      '127.0.0.1:0',
    ]);
    const url = await loggedUrl(pp, 'metrics');
    const { port } = parsePortLine(pp.lines[0]!);
    const sockets = [];
    for (let i = 1; i <= 8; i++) {
      const s = await connectTcp(port);
      await pushEcho(s, 1000 * i);
      sockets.push(s);
    }
    // The connections spread over the three processes (two workers and the main one).
    const tcp = { binding: `127.0.0.1:${port}`, protocol: 'tcp' };
    let m = new Map<string, Family>();
    await waitFor(
      async () => {
        m = await scrape(url);
        return (
          value(m, 'portpub_bytes_total', { ...tcp, direction: 'target_to_client' }) === 36_000
        );
      },
      'the summed counters to reach the traffic',
      20_000,
    );
    expect(value(m, 'portpub_connections_total', tcp)).toBe(8);
    expect(value(m, 'portpub_connections_active', tcp)).toBe(8);
    expect(value(m, 'portpub_bytes_total', { ...tcp, direction: 'client_to_target' })).toBe(36_000);
    expect(m.get('portpub_connections_total')!.samples).toHaveLength(1);
  });

  it('refuses a bad ADDR (exit 2) and a busy one (exit 1), leaving nothing running', async () => {
    const o = observeEnv();
    const target = await echoServer();
    const bad = await o.run(['-p', `127.0.0.1::${target.port}`, '--metrics', 'localhost:9100']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--metrics: host must be an IP address/);
    // The target's own listening port is busy.
    const busy = await o.run([
      '-p',
      `127.0.0.1::${target.port}`,
      '--metrics',
      `127.0.0.1:${target.port}`,
    ]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(
      new RegExp(`--metrics 127\\.0\\.0\\.1:${target.port}: cannot listen: EADDRINUSE`),
    );
    const none = await o.run(['port']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no running portpub/);
  });
});

describe('the test parser of the text format', () => {
  it.each([
    ['a sample without # TYPE', 'x 1\n'],
    ['a duplicate series', '# TYPE x gauge\nx{a="1"} 1\nx{a="1"} 2\n'],
    ['an unquoted label', '# TYPE x gauge\nx{a=1} 1\n'],
    ['a bad escape', '# TYPE x gauge\nx{a="\\t"} 1\n'],
    ['a bad value', '# TYPE x gauge\nx 1,5\n'],
    ['no final newline', '# TYPE x gauge\nx 1'],
    ['TYPE after samples', '# TYPE x gauge\nx 1\n# TYPE x counter\n'],
  ])('rejects %s', (_, text) => {
    expect(() => parseExposition(text)).toThrow();
  });

  it('reads labels with escapes, histograms and special values', () => {
    const m = parseExposition(
      '# HELP h A histogram.\n# TYPE h histogram\nh_bucket{le="+Inf"} 3\nh_sum 1.5e0\nh_count 3\n\n' +
        '# TYPE g gauge\ng{path="a\\"b\\\\c\\nd"} NaN 1700000000000\n',
    );
    expect(m.get('h')!.samples.map((s) => s.value)).toEqual([3, 1.5, 3]);
    expect(m.get('h')!.help).toBe('A histogram.');
    expect(m.get('g')!.samples[0]!.labels.path).toBe('a"b\\c\nd');
    expect(m.get('g')!.samples[0]!.value).toBeNaN();
  });
});
