import { describe, expect, it } from 'vitest';
import { parseComposeText, linkPorts, type ComposeOptions } from '../../src/docker/compose.js';

const parse = (text: string, opts: ComposeOptions = {}, file = 'portpub.yaml') =>
  parseComposeText(text, file, { env: {}, ...opts });

const expectUsage = (fn: () => unknown, message: string) =>
  expect(fn).toThrow(expect.objectContaining({ code: 'ERR_USAGE', exitCode: 2, message }));

// A docker-compose.yml as found in the wild: short and long ports, TCP and UDP, fixed and
// ephemeral, a pool, an anchor merged in, and plenty of keys portpub has no use for.
const REAL_COMPOSE = `
name: shop
x-defaults: &defaults
  restart: unless-stopped
  ports:
    - "9100:9100"
services:
  web:
    image: nginx:1.27
    build: { context: ., target: prod }
    depends_on: [db]
    environment:
      - MODE=prod
    ports:
      - "8080:80"
      - "127.0.0.1:8443:443"
      - target: 9000
        published: "9000"
        protocol: udp
        name: metrics
        mode: host
        app_protocol: http
      - "3000"
      - "[::1]:5353:53/udp"
    volumes:
      - ./html:/usr/share/nginx/html:ro
  db:
    image: postgres:16
    ports:
      - target: 5432
        host_ip: 127.0.0.1
        published: 15432
      - target: 5433
        published: "16000-16010"
    expose:
      - "6000-6001"
      - 7000/udp
  exporter:
    <<: *defaults
    image: prom/node-exporter
networks:
  default: {}
volumes:
  data: {}
`;

describe('parseComposeText: a real docker-compose.yml', () => {
  const { services, warnings } = parse(REAL_COMPOSE);

  it('keeps file order and reads every mapping with Docker semantics', () => {
    expect(services.map((s) => s.name)).toEqual(['web', 'db', 'exporter']);
    expect(services[0]!.mappings).toEqual([
      { hostIp: '', hostPort: '8080', targetPort: 80, protocol: 'tcp' },
      { hostIp: '127.0.0.1', hostPort: '8443', targetPort: 443, protocol: 'tcp' },
      { hostIp: '', hostPort: '9000', targetPort: 9000, protocol: 'udp', portName: 'metrics' },
      { hostIp: '', hostPort: '', targetPort: 3000, protocol: 'tcp' },
      { hostIp: '::1', hostPort: '5353', targetPort: 53, protocol: 'udp' },
    ]);
    expect(services[1]!.mappings).toEqual([
      { hostIp: '127.0.0.1', hostPort: '15432', targetPort: 5432, protocol: 'tcp' },
      { hostIp: '', hostPort: '16000-16010', targetPort: 5433, protocol: 'tcp' },
    ]);
    expect(services[2]!.mappings).toEqual([
      { hostIp: '', hostPort: '9100', targetPort: 9100, protocol: 'tcp' },
    ]);
  });

  it('targets 127.0.0.1 when nothing names a target', () => {
    expect(services.map((s) => s.target)).toEqual(['127.0.0.1', '127.0.0.1', '127.0.0.1']);
  });

  it('ignores compose keys it has no use for without a word', () => {
    expect(warnings).toEqual([]);
  });

  it('collects expose and published targets as link ports', () => {
    expect(services[1]!.expose).toEqual([
      { port: 6000, protocol: 'tcp' },
      { port: 6001, protocol: 'tcp' },
      { port: 7000, protocol: 'udp' },
    ]);
    expect(linkPorts(services[1]!)).toEqual([
      { port: 5432, protocol: 'tcp' },
      { port: 5433, protocol: 'tcp' },
      { port: 6000, protocol: 'tcp' },
      { port: 6001, protocol: 'tcp' },
      { port: 7000, protocol: 'udp' },
    ]);
  });
});

describe('parseComposeText: short syntax', () => {
  it.each([
    { entry: '"80"', expected: [{ hostIp: '', hostPort: '', targetPort: 80, protocol: 'tcp' }] },
    { entry: '80', expected: [{ hostIp: '', hostPort: '', targetPort: 80, protocol: 'tcp' }] },
    // A number is a container port only, even one that came from a base-60 reading.
    { entry: '1342', expected: [{ hostIp: '', hostPort: '', targetPort: 1342, protocol: 'tcp' }] },
    {
      entry: '"8000-8001:80-81/UDP"',
      expected: [
        { hostIp: '', hostPort: '8000', targetPort: 80, protocol: 'udp' },
        { hostIp: '', hostPort: '8001', targetPort: 81, protocol: 'udp' },
      ],
    },
    {
      entry: '"0.0.0.0::53/udp"',
      expected: [{ hostIp: '0.0.0.0', hostPort: '', targetPort: 53, protocol: 'udp' }],
    },
    { entry: '80:80', expected: [{ hostIp: '', hostPort: '80', targetPort: 80, protocol: 'tcp' }] },
  ])('reads $entry', ({ entry, expected }) => {
    const { services, warnings } = parse(`services:\n  s:\n    ports:\n      - ${entry}\n`);
    expect(services[0]!.mappings).toEqual(expected);
    expect(warnings).toEqual([]);
  });

  it('reads an unquoted 22:22 as the string meant and explains the YAML 1.1 base-60 trap', () => {
    const { services, warnings } = parse(
      'services:\n  ssh:\n    ports:\n      - 22:22\n      - 49100:22\n      - "21:21"\n',
    );
    expect(services[0]!.mappings).toEqual([
      { hostIp: '', hostPort: '22', targetPort: 22, protocol: 'tcp' },
      { hostIp: '', hostPort: '49100', targetPort: 22, protocol: 'tcp' },
      { hostIp: '', hostPort: '21', targetPort: 21, protocol: 'tcp' },
    ]);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toBe(
      'portpub.yaml: services.ssh.ports[0]: unquoted 22:22 is read by YAML 1.1 parsers ' +
        '(docker-compose v1, PyYAML and others) as the base-60 number 1342; portpub reads it as ' +
        'the string "22:22" (YAML 1.2). Quote it ("22:22") so every tool agrees',
    );
    expect(warnings[1]).toContain('base-60 number 2946022'); // 49100 * 60 + 22
  });

  it('detects the trap through an anchor too', () => {
    const { warnings } = parse(
      'x-p: &p\n  - 22:22\nservices:\n  a:\n    ports: *p\n  b:\n    ports: *p\n',
    );
    expect(warnings.map((w) => w.split(':')[1])).toEqual([
      ' services.a.ports[0]',
      ' services.b.ports[0]',
    ]);
  });
});

describe('parseComposeText: targets', () => {
  const file = `
x-portpub-target: 10.0.0.1
services:
  a: { ports: ["80"] }
  b: { target: db.internal, ports: ["81"] }
  c: { x-portpub-target: "[fd00::2]", ports: ["82"] }
`;

  it.each([
    { opts: {}, expected: ['10.0.0.1', 'db.internal', 'fd00::2'] },
    {
      opts: { targetFor: { a: '192.168.1.5', b: 'other' } },
      expected: ['192.168.1.5', 'other', 'fd00::2'],
    },
    {
      opts: { defaultTarget: 'ignored.example' },
      expected: ['10.0.0.1', 'db.internal', 'fd00::2'],
    },
  ])('resolves with $opts', ({ opts, expected }) => {
    expect(parse(file, opts).services.map((s) => s.target)).toEqual(expected);
  });

  it('falls back to defaultTarget, then 127.0.0.1', () => {
    const text = 'services:\n  a: { ports: ["80"] }\n';
    expect(parse(text, { defaultTarget: 'host.docker.internal' }).services[0]!.target).toBe(
      'host.docker.internal',
    );
    expect(parse(text).services[0]!.target).toBe('127.0.0.1');
  });

  it('refuses --target-for naming a service the file lacks, and a bad address', () => {
    const text = 'services:\n  a: { ports: ["80"] }\n';
    expectUsage(
      () => parse(text, { targetFor: { nope: '1.2.3.4' } }),
      'portpub.yaml: --target-for names service "nope", which the file does not define',
    );
    expectUsage(
      () => parse('services:\n  a: { target: "not a host" }\n'),
      'portpub.yaml: services.a.target: invalid target address "not a host": must be an IP address or a host name',
    );
  });
});

describe('parseComposeText: warnings', () => {
  it('names file, service and key for every unknown key', () => {
    const { services, warnings } = parse(
      `
version: "3.9"
colour: blue
x-anything: 1
include: [other.yaml]
services:
  web:
    image: nginx
    portz: ["80"]
    extends: base
    x-note: fine
    ports:
      - target: 80
        published: 8080
        protocl: udp
        x-extra: ok
`,
      {},
      'docker-compose.yml',
    );
    expect(warnings).toEqual([
      'docker-compose.yml: unknown top-level key "colour" ignored',
      'docker-compose.yml: include: not followed: services of included files are not published',
      'docker-compose.yml: services.web: unknown key "portz" ignored',
      'docker-compose.yml: services.web.extends: not followed: ports of the extended service are not published',
      'docker-compose.yml: services.web.ports[0]: unknown key "protocl" ignored',
    ]);
    expect(services[0]!.mappings).toEqual([
      { hostIp: '', hostPort: '8080', targetPort: 80, protocol: 'tcp' },
    ]);
  });

  it('warns when there are no services', () => {
    expect(parse('name: x\n').warnings).toEqual(['portpub.yaml: no services defined']);
  });
});

describe('parseComposeText: errors', () => {
  it.each([
    { ports: '["80", "8080:80/xyz"]', message: 'services.web.ports[1]: invalid proto: xyz' },
    { ports: '["abc:80"]', message: 'services.web.ports[0]: invalid hostPort: abc' },
    { ports: '["1.2.3:80:80"]', message: 'services.web.ports[0]: invalid IP address: 1.2.3' },
    {
      ports: '["8000-8001:80-82"]',
      message:
        'services.web.ports[0]: invalid ranges specified for container and host Ports: 80-82 and 8000-8001',
    },
    { ports: '["0"]', message: 'services.web.ports[0]: invalid port specification: "0/tcp"' },
    { ports: '[70000]', message: 'services.web.ports[0]: invalid containerPort: 70000' },
    { ports: '[80.5]', message: 'services.web.ports[0]: invalid containerPort: 80.5' },
    { ports: '[true]', message: 'services.web.ports[0]: invalid type boolean for port' },
    {
      ports: '["published=8080,target=80"]',
      message: 'services.web.ports[0]: invalid containerPort: published=8080,target=80',
    },
    { ports: '"80:80"', message: 'services.web.ports: must be a list' },
    {
      ports: '[{published: 80}]',
      message: "services.web.ports[0]: missing mandatory field 'target'",
    },
    { ports: '[{target: http}]', message: 'services.web.ports[0]: invalid containerPort: http' },
    {
      ports: '[{target: 80, protocol: xyz}]',
      message: 'services.web.ports[0]: invalid proto: xyz',
    },
    {
      ports: '[{target: 80, host_ip: localhost}]',
      message: 'services.web.ports[0]: invalid IP address: localhost',
    },
    {
      ports: '[{target: 80, host_ip: "[::1]"}]',
      message: 'services.web.ports[0]: invalid IP address: [::1]',
    },
    {
      ports: '[{target: 80, published: "x"}]',
      message: 'services.web.ports[0]: invalid hostPort: x',
    },
    {
      ports: '[{target: 80, published: "0-10"}]',
      message: 'services.web.ports[0]: invalid port range: 0-10',
    },
  ])('$ports -> $message', ({ ports, message }) => {
    expectUsage(
      () => parse(`services:\n  web:\n    ports: ${ports}\n`),
      `portpub.yaml: ${message}`,
    );
  });

  it('accepts long-syntax details: upper-case protocol, IPv6 host_ip, empty published', () => {
    const { services } = parse(
      'services:\n  web:\n    ports:\n      - { target: "53", protocol: UDP, host_ip: "::", published: "" }\n',
    );
    expect(services[0]!.mappings).toEqual([
      { hostIp: '::', hostPort: '', targetPort: 53, protocol: 'udp' },
    ]);
  });

  it.each([
    { text: '', message: 'portpub.yaml: empty compose file' },
    { text: '- a\n', message: 'portpub.yaml: Top-level object must be a mapping' },
    { text: 'services: [web]\n', message: 'portpub.yaml: services: must be a mapping' },
    { text: 'services:\n  web: 3\n', message: 'portpub.yaml: services.web: must be a mapping' },
    {
      text: 'services:\n  "we b": {}\n',
      message: 'portpub.yaml: services: invalid service name "we b": must match ^[a-zA-Z0-9._-]+$',
    },
  ])('rejects $message', ({ text, message }) => {
    expectUsage(() => parse(text), message);
  });

  it('reports YAML syntax errors and duplicate keys with the file name', () => {
    expect(() => parse('services:\n  web: [\n')).toThrow(
      /^portpub\.yaml: Flow sequence .* at line 3, column 1/,
    );
    expect(() => parse('services:\n  web: {}\n  web: {}\n')).toThrow(
      /^portpub\.yaml: Map keys must be unique/,
    );
  });
});

describe('parseComposeText: JSON and interpolation', () => {
  it('reads JSON (JSON is YAML 1.2)', () => {
    const json = JSON.stringify({
      services: { api: { target: '10.1.1.1', ports: ['22:22', { target: 443, published: 8443 }] } },
    });
    const { services, warnings } = parseComposeText(json, 'portpub.json', { env: {} });
    expect(warnings).toEqual([]);
    expect(services).toEqual([
      {
        name: 'api',
        target: '10.1.1.1',
        expose: [],
        mappings: [
          { hostIp: '', hostPort: '22', targetPort: 22, protocol: 'tcp' },
          { hostIp: '', hostPort: '8443', targetPort: 443, protocol: 'tcp' },
        ],
      },
    ]);
  });

  it.each([
    { entry: '"${WEB_PORT:-8080}:80"', env: {}, hostPort: '8080' },
    { entry: '"${WEB_PORT:-8080}:80"', env: { WEB_PORT: '9090' }, hostPort: '9090' },
    { entry: '"${WEB_PORT:-8080}:80"', env: { WEB_PORT: '' }, hostPort: '8080' },
    { entry: '"${WEB_PORT-8080}:80"', env: { WEB_PORT: '' }, hostPort: '' },
    { entry: '"$WEB_PORT:80"', env: { WEB_PORT: '7070' }, hostPort: '7070' },
    { entry: '"${A:-${B:-6060}}:80"', env: {}, hostPort: '6060' },
    { entry: '"${A:+5050}:80"', env: { A: 'x' }, hostPort: '5050' },
  ])('interpolates $entry with $env', ({ entry, env, hostPort }) => {
    const { services } = parseComposeText(`services:\n  s:\n    ports: [${entry}]\n`, 'f.yml', {
      env,
    });
    expect(services[0]!.mappings[0]!.hostPort).toBe(hostPort);
  });

  it('warns about an unset variable and fails on a required one', () => {
    const { warnings } = parse('services:\n  s:\n    ports: ["${P}80"]\n');
    expect(warnings).toEqual([
      'portpub.yaml: services.s.ports[0]: The "P" variable is not set. Defaulting to a blank string.',
    ]);
    expectUsage(
      () => parse('services:\n  s:\n    ports: ["${P:?set P}:80"]\n'),
      'portpub.yaml: services.s.ports[0]: required variable P is missing a value: set P',
    );
    expectUsage(
      () => parse('services:\n  s:\n    ports: ["${:80"]\n'),
      'portpub.yaml: services.s.ports[0]: Invalid template: "${:80"',
    );
  });
});
