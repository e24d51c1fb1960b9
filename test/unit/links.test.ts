import { describe, expect, it } from 'vitest';
import {
  formatDotenv,
  formatExport,
  linkEnv,
  parseLink,
  type EnvVar,
} from '../../src/docker/links.js';

const lines = (vars: EnvVar[]): string[] => vars.map(([k, v]) => `${k}=${v}`);

describe('linkEnv', () => {
  // moby daemon/links/links_test.go TestLinkMultipleEnv, and the reference section 4.
  const multiple = linkEnv({
    parent: 'db',
    alias: 'docker',
    ip: '172.0.17.2',
    ports: [
      { port: 6382, protocol: 'udp' },
      { port: 6381, protocol: 'tcp' },
      { port: 6300, protocol: 'udp' },
      { port: 6379, protocol: 'tcp' },
      { port: 6380, protocol: 'tcp' },
    ],
    env: { PASSWORD: 'gordon' },
  });

  it('matches TestLinkMultipleEnv once sorted, byte for byte', () => {
    expect([...lines(multiple)].sort()).toEqual([
      'DOCKER_ENV_PASSWORD=gordon',
      'DOCKER_NAME=/db/docker',
      'DOCKER_PORT=tcp://172.0.17.2:6379',
      'DOCKER_PORT_6300_UDP=udp://172.0.17.2:6300',
      'DOCKER_PORT_6300_UDP_ADDR=172.0.17.2',
      'DOCKER_PORT_6300_UDP_PORT=6300',
      'DOCKER_PORT_6300_UDP_PROTO=udp',
      'DOCKER_PORT_6379_TCP=tcp://172.0.17.2:6379',
      'DOCKER_PORT_6379_TCP_ADDR=172.0.17.2',
      'DOCKER_PORT_6379_TCP_END=tcp://172.0.17.2:6381',
      'DOCKER_PORT_6379_TCP_PORT=6379',
      'DOCKER_PORT_6379_TCP_PORT_END=6381',
      'DOCKER_PORT_6379_TCP_PORT_START=6379',
      'DOCKER_PORT_6379_TCP_PROTO=tcp',
      'DOCKER_PORT_6379_TCP_START=tcp://172.0.17.2:6379',
      'DOCKER_PORT_6380_TCP=tcp://172.0.17.2:6380',
      'DOCKER_PORT_6380_TCP_ADDR=172.0.17.2',
      'DOCKER_PORT_6380_TCP_PORT=6380',
      'DOCKER_PORT_6380_TCP_PROTO=tcp',
      'DOCKER_PORT_6381_TCP=tcp://172.0.17.2:6381',
      'DOCKER_PORT_6381_TCP_ADDR=172.0.17.2',
      'DOCKER_PORT_6381_TCP_PORT=6381',
      'DOCKER_PORT_6381_TCP_PROTO=tcp',
      'DOCKER_PORT_6382_UDP=udp://172.0.17.2:6382',
      'DOCKER_PORT_6382_UDP_ADDR=172.0.17.2',
      'DOCKER_PORT_6382_UDP_PORT=6382',
      'DOCKER_PORT_6382_UDP_PROTO=udp',
    ]);
  });

  it('emits in the order Link.ToEnv appends (TCP first; run variables after the run ends)', () => {
    expect(lines(multiple)).toEqual([
      'DOCKER_PORT=tcp://172.0.17.2:6379',
      'DOCKER_PORT_6379_TCP=tcp://172.0.17.2:6379',
      'DOCKER_PORT_6379_TCP_ADDR=172.0.17.2',
      'DOCKER_PORT_6379_TCP_PORT=6379',
      'DOCKER_PORT_6379_TCP_PROTO=tcp',
      'DOCKER_PORT_6380_TCP=tcp://172.0.17.2:6380',
      'DOCKER_PORT_6380_TCP_ADDR=172.0.17.2',
      'DOCKER_PORT_6380_TCP_PORT=6380',
      'DOCKER_PORT_6380_TCP_PROTO=tcp',
      'DOCKER_PORT_6381_TCP=tcp://172.0.17.2:6381',
      'DOCKER_PORT_6381_TCP_ADDR=172.0.17.2',
      'DOCKER_PORT_6381_TCP_PORT=6381',
      'DOCKER_PORT_6381_TCP_PROTO=tcp',
      'DOCKER_PORT_6300_UDP=udp://172.0.17.2:6300',
      'DOCKER_PORT_6300_UDP_ADDR=172.0.17.2',
      'DOCKER_PORT_6300_UDP_PORT=6300',
      'DOCKER_PORT_6300_UDP_PROTO=udp',
      'DOCKER_PORT_6379_TCP_START=tcp://172.0.17.2:6379',
      'DOCKER_PORT_6379_TCP_PORT_START=6379',
      'DOCKER_PORT_6379_TCP_END=tcp://172.0.17.2:6381',
      'DOCKER_PORT_6379_TCP_PORT_END=6381',
      'DOCKER_PORT_6382_UDP=udp://172.0.17.2:6382',
      'DOCKER_PORT_6382_UDP_ADDR=172.0.17.2',
      'DOCKER_PORT_6382_UDP_PORT=6382',
      'DOCKER_PORT_6382_UDP_PROTO=udp',
      'DOCKER_NAME=/db/docker',
      'DOCKER_ENV_PASSWORD=gordon',
    ]);
  });

  it("reproduces the docs' DB example (docker run --name web2 --link db:db)", () => {
    const vars = linkEnv({
      parent: 'web2',
      alias: 'db',
      ip: '172.17.0.5',
      ports: [{ port: 5432, protocol: 'tcp' }],
    });
    expect(lines(vars)).toEqual([
      'DB_PORT=tcp://172.17.0.5:5432',
      'DB_PORT_5432_TCP=tcp://172.17.0.5:5432',
      'DB_PORT_5432_TCP_ADDR=172.17.0.5',
      'DB_PORT_5432_TCP_PORT=5432',
      'DB_PORT_5432_TCP_PROTO=tcp',
      'DB_NAME=/web2/db',
    ]);
    const webdb = linkEnv({ parent: 'web', alias: 'webdb', ip: '172.17.0.5', ports: [] });
    expect(webdb).toEqual([['WEBDB_NAME', '/web/webdb']]);
  });

  it.each([
    { alias: 'docker-1', prefix: 'DOCKER_1' }, // links_test.go TestLinkNaming
    { alias: 'my-db.internal', prefix: 'MY_DB.INTERNAL' }, // '.' is kept as it is
    { alias: 'Db_2', prefix: 'DB_2' },
  ])('names variables for alias $alias with prefix $prefix', ({ alias, prefix }) => {
    const vars = linkEnv({
      parent: 'app',
      alias,
      ip: '10.0.0.2',
      ports: [{ port: 6379, protocol: 'tcp' }],
    });
    expect(vars[0]).toEqual([`${prefix}_PORT`, 'tcp://10.0.0.2:6379']);
    expect(vars.at(-1)).toEqual([`${prefix}_NAME`, `/app/${alias}`]);
  });

  it('writes run variables for a run that ends at the last port, per protocol', () => {
    const vars = linkEnv({
      parent: 'p',
      alias: 'svc',
      ip: '10.0.0.9',
      ports: [
        { port: 53, protocol: 'udp' },
        { port: 54, protocol: 'udp' },
        { port: 80, protocol: 'tcp' },
        { port: 53, protocol: 'tcp' },
      ],
    });
    expect(lines(vars)).toEqual([
      'SVC_PORT=tcp://10.0.0.9:53',
      'SVC_PORT_53_TCP=tcp://10.0.0.9:53',
      'SVC_PORT_53_TCP_ADDR=10.0.0.9',
      'SVC_PORT_53_TCP_PORT=53',
      'SVC_PORT_53_TCP_PROTO=tcp',
      'SVC_PORT_80_TCP=tcp://10.0.0.9:80',
      'SVC_PORT_80_TCP_ADDR=10.0.0.9',
      'SVC_PORT_80_TCP_PORT=80',
      'SVC_PORT_80_TCP_PROTO=tcp',
      'SVC_PORT_53_UDP=udp://10.0.0.9:53',
      'SVC_PORT_53_UDP_ADDR=10.0.0.9',
      'SVC_PORT_53_UDP_PORT=53',
      'SVC_PORT_53_UDP_PROTO=udp',
      'SVC_PORT_54_UDP=udp://10.0.0.9:54',
      'SVC_PORT_54_UDP_ADDR=10.0.0.9',
      'SVC_PORT_54_UDP_PORT=54',
      'SVC_PORT_54_UDP_PROTO=udp',
      'SVC_PORT_53_UDP_START=udp://10.0.0.9:53',
      'SVC_PORT_53_UDP_PORT_START=53',
      'SVC_PORT_53_UDP_END=udp://10.0.0.9:54',
      'SVC_PORT_53_UDP_PORT_END=54',
      'SVC_NAME=/p/svc',
    ]);
  });

  it('does not join a TCP run with the next protocol even when the numbers follow on', () => {
    const vars = linkEnv({
      parent: 'p',
      alias: 'a',
      ip: '10.0.0.1',
      ports: [
        { port: 80, protocol: 'tcp' },
        { port: 81, protocol: 'udp' },
      ],
    });
    expect(vars.some(([k]) => k.endsWith('_START') || k.endsWith('_END'))).toBe(false);
  });

  it('sorts sctp before udp and counts a duplicate port once (links_test.go TestSortPorts)', () => {
    const vars = linkEnv({
      parent: 'p',
      alias: 'a',
      ip: '1.2.3.4',
      ports: [
        { port: 6379, protocol: 'tcp' },
        { port: 6376, protocol: 'udp' },
        { port: 6380, protocol: 'tcp' },
        { port: 6376, protocol: 'sctp' },
        { port: 6381, protocol: 'tcp' },
        { port: 6381, protocol: 'udp' },
        { port: 6375, protocol: 'udp' },
        { port: 6375, protocol: 'sctp' },
        { port: 6375, protocol: 'sctp' },
      ],
    });
    const order = vars.filter(([k]) => /^A_PORT_\d+_[A-Z]+$/.test(k)).map(([k]) => k);
    expect(order).toEqual([
      'A_PORT_6379_TCP',
      'A_PORT_6380_TCP',
      'A_PORT_6381_TCP',
      'A_PORT_6375_SCTP',
      'A_PORT_6376_SCTP',
      'A_PORT_6375_UDP',
      'A_PORT_6376_UDP',
      'A_PORT_6381_UDP',
    ]);
  });

  it('skips HOME and PATH from the linked environment and keeps the rest in order', () => {
    const vars = linkEnv({
      parent: 'p',
      alias: 'a',
      ip: '1.2.3.4',
      ports: [],
      env: { HOME: '/root', ZED: 'z', PATH: '/bin', ALPHA: 'a=b' },
    });
    expect(lines(vars)).toEqual(['A_NAME=/p/a', 'A_ENV_ZED=z', 'A_ENV_ALPHA=a=b']);
  });
});

describe('parseLink', () => {
  it.each([
    { input: 'db', expected: { name: 'db', alias: 'db' } },
    { input: 'db:webdb', expected: { name: 'db', alias: 'webdb' } },
    { input: '/db:/web/webdb', expected: { name: 'db', alias: 'webdb' } },
  ])('parses $input', ({ input, expected }) => {
    expect(parseLink(input)).toEqual(expected);
  });

  it.each([
    { input: '', message: 'empty string specified for links' },
    { input: 'link:alias:wrong', message: 'bad format for links: link:alias:wrong' },
  ])('rejects $input with Docker text', ({ input, message }) => {
    expect(() => parseLink(input)).toThrow(expect.objectContaining({ code: 'ERR_USAGE', message }));
  });
});

describe('formatExport / formatDotenv', () => {
  const vars: EnvVar[] = [
    ['DB_PORT', 'tcp://10.0.0.2:5432'],
    ['DB_ENV_PASSWORD', "it's $HOME `x` \\n"],
  ];

  it('single-quotes values so a shell takes them literally', () => {
    expect(formatExport(vars)).toBe(
      "export DB_PORT='tcp://10.0.0.2:5432'\n" +
        "export DB_ENV_PASSWORD='it'\\''s $HOME `x` \\n'\n",
    );
  });

  it('refuses a name no shell can export', () => {
    expect(() => formatExport([['A.B_PORT', 'x']])).toThrow(
      expect.objectContaining({ code: 'ERR_USAGE' }),
    );
  });

  it('writes KEY=value lines verbatim, as --env-file reads them', () => {
    expect(formatDotenv(vars)).toBe(
      "DB_PORT=tcp://10.0.0.2:5432\nDB_ENV_PASSWORD=it's $HOME `x` \\n\n",
    );
    expect(formatDotenv([['A.B_PORT', 'x']])).toBe('A.B_PORT=x\n');
    expect(() => formatDotenv([['K', 'two\nlines']])).toThrow(
      expect.objectContaining({ code: 'ERR_USAGE' }),
    );
  });

  it('round-trips through a real shell', async () => {
    const { execFileSync } = await import('node:child_process');
    const script = `${formatExport(vars)}printf '%s|%s' "$DB_PORT" "$DB_ENV_PASSWORD"`;
    const out = execFileSync('sh', ['-c', script], { encoding: 'utf8' });
    expect(out).toBe("tcp://10.0.0.2:5432|it's $HOME `x` \\n");
  });
});
