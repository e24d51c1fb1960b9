import { describe, expect, it } from 'vitest';
import {
  formatPortLines,
  joinHostPort,
  naturalCompare,
  parsePortArg,
  queryPort,
  toPortMap,
  type Binding,
} from '../../src/docker/report.js';
import type { Protocol } from '../../src/docker/spec.js';

/** The fixture of docker/cli port_test.go TestNewPortCommandOutput: each port on `::` then `0.0.0.0`. */
function fixture(ips: string[]): Binding[] {
  const ports: [number, Protocol, number][] = [
    [80, 'tcp', 3456],
    [443, 'tcp', 4567],
    [443, 'udp', 5678],
  ];
  // Go ranges over a map, so docker/cli sees the ports in any order: start from a shuffled one.
  const out: Binding[] = [];
  for (const [targetPort, protocol, hostPort] of ports.reverse()) {
    for (const hostIp of ips) {
      out.push({ hostIp, hostPort, targetHost: '172.17.0.2', targetPort, protocol });
    }
  }
  return out;
}

describe('formatPortLines', () => {
  it('matches docker/cli testdata/container-port-all-ports.golden', () => {
    const golden = [
      '80/tcp -> 0.0.0.0:3456',
      '80/tcp -> [::]:3456',
      '443/tcp -> 0.0.0.0:4567',
      '443/tcp -> [::]:4567',
      '443/udp -> 0.0.0.0:5678',
      '443/udp -> [::]:5678',
    ];
    expect(formatPortLines(fixture(['::', '0.0.0.0']))).toEqual(golden);
    expect(`${formatPortLines(fixture(['::', '0.0.0.0'])).join('\n')}\n`).toBe(
      `${golden.join('\n')}\n`,
    );
  });

  it('sorts port numbers naturally, not as text', () => {
    const b = (targetPort: number, protocol: Protocol = 'tcp'): Binding => ({
      hostIp: '127.0.0.1',
      hostPort: 40000 + targetPort,
      targetHost: 'localhost',
      targetPort,
      protocol,
    });
    expect(formatPortLines([b(8080), b(10), b(443), b(9), b(53, 'udp'), b(53)])).toEqual([
      '9/tcp -> 127.0.0.1:40009',
      '10/tcp -> 127.0.0.1:40010',
      '53/tcp -> 127.0.0.1:40053',
      '53/udp -> 127.0.0.1:40053',
      '443/tcp -> 127.0.0.1:40443',
      '8080/tcp -> 127.0.0.1:48080',
    ]);
  });

  it('prints nothing when nothing is published', () => {
    expect(formatPortLines([])).toEqual([]);
  });
});

describe('queryPort', () => {
  const all = fixture(['::', '0.0.0.0']);

  it.each([
    { arg: '80', expected: ['0.0.0.0:3456', '[::]:3456'] },
    { arg: '80/tcp', expected: ['0.0.0.0:3456', '[::]:3456'] },
    { arg: '443/udp', expected: ['0.0.0.0:5678', '[::]:5678'] },
    { arg: '443/UDP', expected: ['0.0.0.0:5678', '[::]:5678'] },
    { arg: '0443/', expected: ['0.0.0.0:4567', '[::]:4567'] },
  ])('docker port C $arg', ({ arg, expected }) => {
    expect(queryPort(all, arg, 'some_container')).toEqual(expected);
  });

  it('matches container-port-ipv4 (one address)', () => {
    expect(queryPort(fixture(['0.0.0.0']), '80', 'c')).toEqual(['0.0.0.0:3456']);
  });

  it.each(['8080', '80/udp', '80/xyz', '0', '443/Udp/x'])(
    "says no public port '%s' published",
    (arg) => {
      expect(() => queryPort(all, arg, 'some_container')).toThrow(
        expect.objectContaining({
          code: 'ERR_NO_PORT',
          exitCode: 1,
          message: `no public port '${arg}' published for some_container`,
        }),
      );
    },
  );

  it.each([
    { arg: '', message: 'invalid port: value is empty' },
    { arg: '/tcp', message: "invalid port '': value is empty" },
    { arg: 'abc', message: "invalid port 'abc': invalid syntax" },
    { arg: '-1', message: "invalid port '-1': invalid syntax" },
    { arg: '+80', message: "invalid port '+80': invalid syntax" },
    { arg: '80-81/tcp', message: "invalid port '80-81': invalid syntax" },
    { arg: '65536', message: "invalid port '65536': value out of range" },
    {
      arg: '99999999999999999999999',
      message: "invalid port '99999999999999999999999': value out of range",
    },
  ])('rejects $arg as moby network.ParsePort does', ({ arg, message }) => {
    expect(() => queryPort(all, arg, 'c')).toThrow(
      expect.objectContaining({ code: 'ERR_USAGE', exitCode: 2, message }),
    );
  });

  it('parses the argument to a number and a lower-case protocol', () => {
    expect(parsePortArg('080/SCTP')).toEqual({ port: 80, protocol: 'sctp' });
  });

  it("lower-cases the protocol rune by rune, as Go's strings.ToLower does", () => {
    expect(parsePortArg('80/ΑΣ')).toEqual({ port: 80, protocol: 'ασ' });
    expect(parsePortArg('80/İ')).toEqual({ port: 80, protocol: 'i' });
  });
});

describe('naturalCompare (fvbommel/sortorder natsort_test.go)', () => {
  it.each([
    ['0', '00', true],
    ['00', '0', false],
    ['aa', 'ab', true],
    ['ab', 'abc', true],
    ['abc', 'ad', true],
    ['ab1', 'ab2', true],
    ['ab1c', 'ab1c', false],
    ['ab12', 'abc', true],
    ['ab2a', 'ab10', true],
    ['a0001', 'a0000001', true],
    ['a10', 'abcdefgh2', true],
    ['аб2аб', 'аб10аб', true],
    ['2аб', '3аб', true],
    ['a1b', 'a01b', true],
    ['a01b', 'a1b', false],
    ['ab01b', 'ab010b', true],
    ['ab010b', 'ab01b', false],
    ['a01b001', 'a001b01', true],
    ['a001b01', 'a01b001', false],
    ['a1', 'a1x', true],
    ['1ax', '1b', true],
    ['1b', '1ax', false],
    ['082', '83', true],
    ['083a', '9a', false],
    ['9a', '083a', true],
  ] as const)('%s < %s is %s', (a, b, less) => {
    expect(naturalCompare(a, b) < 0).toBe(less);
  });

  it('sorts TestStringSort', () => {
    expect(['abc5', 'abc1', 'abc01', 'ab', 'abc10', 'abc2'].sort(naturalCompare)).toEqual([
      'ab',
      'abc1',
      'abc01',
      'abc2',
      'abc5',
      'abc10',
    ]);
  });
});

describe('joinHostPort / toPortMap', () => {
  it.each([
    ['0.0.0.0', '0.0.0.0:80'],
    ['::', '[::]:80'],
    ['fe80::1%eth0', '[fe80::1%eth0]:80'],
    ['localhost', 'localhost:80'],
  ])('joins %s', (host, expected) => {
    expect(joinHostPort(host, 80)).toBe(expected);
  });

  it('groups like docker inspect .NetworkSettings.Ports', () => {
    const map = toPortMap(fixture(['0.0.0.0', '::']));
    expect(Object.keys(map)).toEqual(['443/tcp', '443/udp', '80/tcp']);
    expect(map['80/tcp']).toEqual([
      { HostIp: '0.0.0.0', HostPort: '3456' },
      { HostIp: '::', HostPort: '3456' },
    ]);
  });
});
