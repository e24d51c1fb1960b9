// Tables for the pure parts of `portpub run`: docker/cli's -e and --env-file rules, the daemon's
// environment merge, libnetwork's /etc/hosts, and docker ps's PORTS column and durations.
import { describe, expect, it } from 'vitest';
import { parseExpose } from '../../src/cli/run.js';
import { displayablePorts, humanDuration } from '../../src/cli/ps.js';
import { parseEnvFile, serviceEnv, userVariables, validateEnv } from '../../src/netns/env.js';
import { checkHostname, hostsFile, hostsLine, parseAddHost } from '../../src/netns/hosts.js';
import { userNamespaceProblem } from '../../src/netns/userns.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';

describe('validateEnv (docker/cli opts.ValidateEnv)', () => {
  const host = { FROM_HOST: 'h v' };
  it.each([
    ['A=1', 'A=1'],
    ['A=', 'A='],
    ['A=b=c', 'A=b=c'],
    ['FROM_HOST', 'FROM_HOST=h v'],
    ['UNSET', 'UNSET'],
  ])('%s -> %s', (value, want) => {
    expect(validateEnv(value, host)).toBe(want);
  });
  it('refuses an empty name with Docker text', () => {
    expect(() => validateEnv('=x', host)).toThrow(
      'invalid argument "=x" for "-e, --env" flag: invalid environment variable: =x',
    );
  });
});

describe('parseEnvFile (docker/cli opts/file.go)', () => {
  const host = { FROM_HOST: 'h' };
  it('keeps values verbatim, skips comments and blanks, trims leading space, drops a BOM', () => {
    const text = '\uFEFFA=1\r\n# c\n\n   B= two  \nC="q"\nFROM_HOST\nUNSET\n\tD=x\n';
    expect(parseEnvFile(text, 'f', host)).toEqual([
      'A=1',
      'B= two  ',
      'C="q"',
      'FROM_HOST=h',
      'D=x',
    ]);
  });
  it.each([
    ['A B=1\n', "f: poorly formatted environment: variable 'A B' contains whitespaces"],
    ['=1\n', "f: poorly formatted environment: no variable name on line '=1'"],
  ])('refuses %j', (text, message) => {
    expect(() => parseEnvFile(text, 'f', host)).toThrow(message);
  });
  it('refuses a line that is not UTF-8, naming it and its bytes as docker/cli does', () => {
    const bytes = Buffer.concat([
      Buffer.from('A=1\r\n# ok\nB='),
      Buffer.from([0xff, 0x41]),
      Buffer.from('\r\n'),
    ]);
    expect(() => parseEnvFile(bytes, 'f.env', host)).toThrow(
      'env file f.env contains invalid utf8 bytes at line 3: [66 61 255 65]',
    );
    // UTF-16 (with its BOM) is not UTF-8 either.
    const utf16 = Buffer.from('\uFEFFA=1\n', 'utf16le');
    expect(() => parseEnvFile(utf16, 'u.env', host)).toThrow(
      'env file u.env contains invalid utf8 bytes at line 1: [255 254 65 0 61 0 49 0]',
    );
  });
  it('drops a BOM from the first line only', () => {
    expect(parseEnvFile(Buffer.from('\uFEFFA=1\n\uFEFFB=2\n'), 'f', host)).toEqual([
      'A=1',
      '\uFEFFB=2',
    ]);
  });
});

describe('serviceEnv (the daemon merge, then HOME)', () => {
  it('orders PATH, HOSTNAME, links, user values (replacing in place), HOME last', () => {
    const env = serviceEnv({
      hostname: 'abc',
      links: [['DB_PORT', 'tcp://1:2']],
      user: ['X=1', 'PATH=/bin', 'DB_PORT=mine', 'X=2'],
    });
    expect(env).toEqual([
      ['PATH', '/bin'],
      ['HOSTNAME', 'abc'],
      ['DB_PORT', 'mine'],
      ['X', '1'],
      ['X', '2'],
      ['HOME', '/root'],
    ]);
  });
  it('-t puts TERM=xterm after HOSTNAME, under the user values', () => {
    const env = serviceEnv({ hostname: 'h', links: [['L', '1']], user: [], tty: true });
    expect(env.map(([k]) => k)).toEqual(['PATH', 'HOSTNAME', 'TERM', 'L', 'HOME']);
    expect(env[2]).toEqual(['TERM', 'xterm']);
    const mine = serviceEnv({ hostname: 'h', links: [], user: ['TERM=vt100'], tty: true });
    expect(mine.find(([k]) => k === 'TERM')).toEqual(['TERM', 'vt100']);
  });
  it('a bare KEY unsets a default; a given HOME is kept', () => {
    const env = serviceEnv({ hostname: 'h', links: [], user: ['HOSTNAME', 'HOME=/tmp'] });
    expect(env.map(([k]) => k)).toEqual(['PATH', 'HOME']);
    expect(env[1]).toEqual(['HOME', '/tmp']);
  });
  it('userVariables keeps the last value of each key, in first-seen order', () => {
    expect(userVariables(['A=1', 'B=2', 'A=3', 'C'])).toEqual([
      ['A', '3'],
      ['B', '2'],
    ]);
  });
});

describe('/etc/hosts (libnetwork etchosts, daemon links)', () => {
  it('writes the name only when the alias differs', () => {
    const base = { hostname: '0123456789ab', name: 'db', ip: '127.9.9.9' };
    expect(hostsLine({ ...base, alias: 'db' })).toBe('127.9.9.9\tdb 0123456789ab\n');
    expect(hostsLine({ ...base, alias: 'pg' })).toBe('127.9.9.9\tpg 0123456789ab db\n');
  });
  it('names a service without an id once: no hostname stands in for the id', () => {
    const plain = { name: 'api', ip: '127.0.0.2' };
    expect(hostsLine({ ...plain, alias: 'api' })).toBe('127.0.0.2\tapi\n');
    expect(hostsLine({ ...plain, alias: 'ps1' })).toBe('127.0.0.2\tps1 api\n');
  });
  it('defaults, links, then the service itself', () => {
    expect(hostsFile({ ip: '127.1.1.1', hostname: 'aaaaaaaaaaaa' }, [])).toBe(
      '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\n' +
        'ff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n' +
        '127.1.1.1\taaaaaaaaaaaa\n',
    );
  });
  it('--add-host entries after the defaults and before the links, as daemon ExtraHosts', () => {
    const link = { alias: 'db', hostname: '0123456789ab', name: 'db', ip: '127.9.9.9' };
    const file = hostsFile(
      { ip: '127.1.1.1', hostname: 'web' },
      [link],
      [
        ['foo', '10.1.2.3'],
        ['v6', '::5'],
      ],
    );
    expect(file.split('\n').slice(6)).toEqual([
      '10.1.2.3\tfoo',
      '::5\tv6',
      '127.9.9.9\tdb 0123456789ab',
      '127.1.1.1\tweb',
      '',
    ]);
  });
});

describe('--add-host (docker/cli opts.ValidateExtraHost)', () => {
  it.each([
    ['foo:10.1.2.3', ['foo', '10.1.2.3']],
    ['foo=10.1.2.3', ['foo', '10.1.2.3']],
    ['v6:::1', ['v6', '::1']],
    ['v6=[::1]', ['v6', '::1']],
    ['v4=[10.0.0.1]', ['v4', '10.0.0.1']],
    ['a.b-c:127.0.0.9', ['a.b-c', '127.0.0.9']],
  ])('%s', (value, expected) => {
    expect(parseAddHost(value)).toEqual(expected);
  });
  it.each([
    ['nohost', 'bad format for add-host: "nohost"'],
    [':1.2.3.4', 'bad format for add-host: ":1.2.3.4"'],
    ['a:1.2.3', 'invalid IP address in add-host: "1.2.3"'],
    ['a=::::1', 'invalid IP address in add-host: "::::1"'],
    ['a=[::1', 'invalid IP address in add-host: "[::1"'],
    ['a:host-gateway', 'host-gateway: a service in a network of its own'],
  ])('refuses %s', (value, message) => {
    expect(() => parseAddHost(value)).toThrow(message);
  });
});

describe('--hostname (RFC 1123, 63 characters)', () => {
  it.each(['web', 'web-1', 'a.b.c', 'x'.repeat(63), '1abc'])('takes %s', (name) => {
    expect(checkHostname(name)).toBe(name);
  });
  it.each(['-web', 'web-', 'a..b', 'a_b', 'has space', '', 'x'.repeat(64)])(
    'refuses %j',
    (name) => {
      expect(() => checkHostname(name)).toThrow(`invalid hostname format: ${name}`);
    },
  );
});

describe('docker ps formats', () => {
  const b = (
    hostIp: string,
    hostPort: number,
    targetPort: number,
    protocol: 'tcp' | 'udp' = 'tcp',
  ) => ({
    hostIp,
    hostPort,
    targetHost: '127.1.2.3',
    targetPort,
    protocol,
  });
  it.each([
    [
      [b('0.0.0.0', 5000, 5000), b('::', 5000, 5000)],
      [],
      '0.0.0.0:5000->5000/tcp, [::]:5000->5000/tcp',
    ],
    [[b('0.0.0.0', 8000, 80)], [{ port: 443, protocol: 'tcp' }], '443/tcp, 0.0.0.0:8000->80/tcp'],
    [
      [b('127.0.0.1', 9000, 9000), b('127.0.0.1', 9001, 9001), b('127.0.0.1', 9002, 9002)],
      [],
      '127.0.0.1:9000-9002->9000-9002/tcp',
    ],
    [
      [],
      [
        { port: 5432, protocol: 'tcp' },
        { port: 53, protocol: 'udp' },
      ],
      '53/udp, 5432/tcp',
    ],
  ])('PORTS %#', (bindings, exposed, want) => {
    expect(displayablePorts(bindings, exposed)).toBe(want);
  });
  it.each([
    [500, 'Less than a second'],
    [1_000, '1 second'],
    [59_000, '59 seconds'],
    [60_000, 'About a minute'],
    [600_000, '10 minutes'],
    [3_600_000, 'About an hour'],
    [3 * 3_600_000, '3 hours'],
    [72 * 3_600_000, '3 days'],
  ])('humanDuration(%i) = %s', (ms, want) => {
    expect(humanDuration(ms)).toBe(want);
  });
});

describe('--expose', () => {
  it('reads ports, protocols and ranges', () => {
    expect(parseExpose('80')).toEqual([{ port: 80, protocol: 'tcp' }]);
    expect(parseExpose('53/UDP')).toEqual([{ port: 53, protocol: 'udp' }]);
    expect(parseExpose('7000-7002').map((p) => p.port)).toEqual([7000, 7001, 7002]);
  });
  it.each(['', 'x', '0', '70000', '9-8', '80/icmp'])('refuses %j', (v) => {
    expect(() => parseExpose(v)).toThrow();
  });
});

describe('userNamespaceProblem', () => {
  it('is undefined where no switch forbids them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portpub-sysctl-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'user'));
    writeFileSync(join(dir, 'user/max_user_namespaces'), '15000\n');
    expect(userNamespaceProblem({ PORTPUB_SYSCTL_DIR: dir })).toBeUndefined();
  });
});
