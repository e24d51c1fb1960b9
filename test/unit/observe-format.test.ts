// The pure parts of issue 16's views: endpoint addresses, docker-style units, rates between two
// snapshots, and the rows of stats and top.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseListenAddress } from '../../src/observe/http.js';
import type { LiveBinding, Snapshot } from '../../src/observe/live.js';
import {
  formatStats,
  formatTop,
  humanBytes,
  humanDuration,
  statsRows,
  topRows,
} from '../../src/observe/table.js';

describe('parseListenAddress', () => {
  it.each([
    ['127.0.0.1:9100', { host: '127.0.0.1', port: 9100 }],
    ['[::1]:0', { host: '::1', port: 0 }],
    [':9100', { host: '0.0.0.0', port: 9100 }],
    ['0.0.0.0:65535', { host: '0.0.0.0', port: 65535 }],
  ])('%s', (text, want) => {
    expect(parseListenAddress(text, '--metrics')).toEqual(want);
  });

  it.each([
    ['9100', /expected HOST:PORT/],
    ['localhost:9100', /host must be an IP address/],
    ['::1:9100', /expected HOST:PORT/],
    ['[127.0.0.1]:80', /host must be an IP address/],
    ['127.0.0.1:65536', /port out of range/],
    ['127.0.0.1:', /expected HOST:PORT/],
    ['127.0.0.1:80x', /expected HOST:PORT/],
  ])('refuses %s', (text, why) => {
    expect(() => parseListenAddress(text, '--ui')).toThrow(why);
    try {
      parseListenAddress(text, '--ui');
    } catch (err) {
      expect((err as { code: string }).code).toBe('ERR_USAGE');
      expect((err as Error).message).toContain(`--ui: `);
      expect((err as Error).message).toContain(JSON.stringify(text));
    }
  });
});

describe('units', () => {
  it.each([
    [0, '0B'],
    [999, '999B'],
    [1000, '1kB'],
    [12_345, '12.3kB'],
    [123_457, '123kB'],
    [999_499, '999kB'],
    [999_500, '1MB'],
    [45_600_000, '45.6MB'],
    [2e12, '2TB'],
  ])('humanBytes(%d) = %s', (n, want) => {
    expect(humanBytes(n)).toBe(want);
  });

  it.each([
    [850, '850ms'],
    [12_400, '12s'],
    [184_000, '3m4s'],
    [7_500_000, '2h5m'],
  ])('humanDuration(%d) = %s', (ms, want) => {
    expect(humanDuration(ms)).toBe(want);
  });
});

function tcpBinding(bytesIn: number, bytesOut: number): LiveBinding {
  return {
    service: 'web',
    hostIp: '::',
    hostPort: 8080,
    targetHost: '127.0.0.1',
    targetPort: 80,
    protocol: 'tcp',
    key: '[::]:8080/tcp',
    tcp: {
      connectionsActive: 2,
      connectionsTotal: 9,
      connectionsRejected: 1,
      connectFailures: 0,
      bytesClientToTarget: bytesIn,
      bytesTargetToClient: bytesOut,
    },
  };
}

describe('statsRows', () => {
  it('gives per-second rates from two snapshots of the same binding', () => {
    const before: Snapshot = { pid: 7, at: 1_000, bindings: [tcpBinding(1_000, 0)] };
    const now: Snapshot = { pid: 7, at: 3_000, bindings: [tcpBinding(5_000, 2_000)] };
    const [row] = statsRows([now], [before]);
    expect(row).toEqual({
      pid: 7,
      service: 'web',
      binding: '[::]:8080',
      target: '127.0.0.1:80',
      protocol: 'tcp',
      active: 2,
      total: 9,
      bytesClientToTarget: 5_000,
      bytesTargetToClient: 2_000,
      rateClientToTarget: 2_000,
      rateTargetToClient: 1_000,
      drops: 1,
    });
    // Without a previous snapshot (or one of another process) there is no rate yet.
    expect(statsRows([now])[0]!.rateClientToTarget).toBeNull();
    expect(statsRows([now], [{ ...before, pid: 8 }])[0]!.rateClientToTarget).toBeNull();
    // A restarted counter is no negative rate.
    expect(statsRows([before], [{ ...now, at: 500 }])[0]!.rateClientToTarget).toBe(0);
  });

  it('sums every UDP drop reason, names unnamed runs by pid', () => {
    const udp: LiveBinding = {
      hostIp: '127.0.0.1',
      hostPort: 5353,
      targetHost: '127.0.0.1',
      targetPort: 53,
      protocol: 'udp',
      key: '127.0.0.1:5353/udp',
      udp: {
        flowsActive: 1,
        flowsTotal: 3,
        datagramsClientToTarget: 4,
        datagramsTargetToClient: 4,
        bytesClientToTarget: 40,
        bytesTargetToClient: 80,
        drops: { 'queue-full': 2, 'too-large': 5 } as never,
        evictions: 0,
      },
    };
    const rows = statsRows([{ pid: 42, at: 1, bindings: [udp] }]);
    expect(rows[0]).toMatchObject({ service: 'pid 42', active: 1, total: 3, drops: 7 });
    const text = formatStats(rows).split('\n');
    expect(text[1]!.split(/ {3,}/)).toEqual([
      'pid 42',
      '127.0.0.1:5353 -> 127.0.0.1:53',
      'udp',
      '1',
      '3',
      '40B',
      '80B',
      '--',
      '--',
      '7',
    ]);
  });
});

describe('topRows', () => {
  it('lists connections oldest first, ages from the snapshot time', () => {
    const conn = (client: string, openedAt: number) => ({
      key: '[::]:8080/tcp',
      protocol: 'tcp' as const,
      client,
      host: '[::1]:8080',
      targetLocal: '127.0.0.1:40000',
      target: '127.0.0.1:80',
      openedAt,
      lastActivityAt: openedAt + 100.4,
      bytesClientToTarget: 1,
      bytesTargetToClient: 2,
      state: 'open' as const,
    });
    const rows = topRows([
      {
        pid: 7,
        at: 10_000,
        name: 'demo',
        bindings: [],
        connections: [conn('[::1]:2', 9_000), conn('[::1]:1', 4_000)],
      },
    ]);
    expect(rows.map((r) => [r.client, r.service, r.ageMs, r.idleMs])).toEqual([
      ['[::1]:1', 'demo', 6_000, 5_900],
      ['[::1]:2', 'demo', 1_000, 900],
    ]);
  });
});

describe('the README shows the real tables', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('\n## Watching it flow\n');
  const text = readme.slice(start, readme.indexOf('\n## ', start + 1));
  /** after is the line following `$ portpub <command>` in the section. */
  const after = (command: string) => {
    const lines = text.split('\n');
    return lines[lines.indexOf(`$ portpub ${command}`) + 1];
  };

  it('stats and top headers', () => {
    expect(start).toBeGreaterThan(0);
    expect(after('stats --no-stream')?.split(/ {3,}/)).toEqual(
      formatStats([]).trimEnd().split(/ {3,}/),
    );
    expect(after('top dns --no-stream')?.split(/ {3,}/)).toEqual(
      formatTop([]).trimEnd().split(/ {3,}/),
    );
  });
});
