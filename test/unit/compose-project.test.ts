// A compose project read from disk as `docker compose` reads it (issue 13 defect 9, issue 11
// defect 5): several files merged, `.env` beside the file, profiles, network_mode: host,
// container_name, the default names found upwards, the project name, and the size limit.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseDotenv } from '../../src/docker/dotenv.js';
import {
  MAX_COMPOSE_FILE_BYTES,
  loadComposeProject,
  projectName,
  projectRequests,
  readBounded,
} from '../../src/publish/compose-load.js';

function tempDir(name = 'proj'): string {
  const root = mkdtempSync(join(tmpdir(), 'portpub-compose-'));
  onTestFinished(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, name);
  mkdirSync(dir);
  return dir;
}

function write(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
}

const expectUsage = (fn: () => unknown, message: string | RegExp) =>
  expect(fn).toThrow(
    expect.objectContaining({
      code: 'ERR_USAGE',
      exitCode: 2,
      message: typeof message === 'string' ? message : (expect.stringMatching(message) as string),
    }),
  );

/** ports lists a project's plan as `service hostIp:hostPort->target/proto`. */
const ports = (p: Parameters<typeof projectRequests>[0]) =>
  projectRequests(p).map(
    (r) =>
      `${r.name} ${r.mapping.hostIp}:${r.mapping.hostPort}->${r.mapping.targetPort}/${r.mapping.protocol}`,
  );

describe('loadComposeProject: several files', () => {
  it('merges -f a -f b as compose does: ports appended, same key replaced, values overridden', () => {
    const dir = tempDir();
    write(dir, {
      'a.yaml':
        'services:\n  web:\n    target: 10.0.0.1\n    ports: ["8080:80", "127.0.0.1:9000:9000"]\n' +
        '    expose: [5000]\n  db:\n    ports: ["5432"]\n',
      'b.yaml':
        'services:\n  web:\n    target: 10.0.0.2\n    ports: ["8443:443", "127.0.0.1:9000:9000"]\n' +
        '    expose: [5000, 6000]\n  cache:\n    ports: ["6379:6379"]\n',
    });
    const p = loadComposeProject({ cwd: dir, files: ['a.yaml', 'b.yaml'], env: {} });
    expect(ports(p)).toEqual([
      'web :8080->80/tcp',
      'web 127.0.0.1:9000->9000/tcp',
      'web :8443->443/tcp',
      'db :->5432/tcp',
      'cache :6379->6379/tcp',
    ]);
    expect(p.services[0]).toMatchObject({
      target: '10.0.0.2',
      expose: [
        { port: 5000, protocol: 'tcp' },
        { port: 6000, protocol: 'tcp' },
      ],
    });
    expect(p.files).toEqual([join(dir, 'a.yaml'), join(dir, 'b.yaml')]);
  });

  it('names the file an error is in', () => {
    const dir = tempDir();
    write(dir, {
      'a.yaml': 'services:\n  web:\n    ports: ["80"]\n',
      'b.yaml': 'services:\n  web:\n    ports: ["80/xyz"]\n',
    });
    expectUsage(
      () => loadComposeProject({ cwd: dir, files: ['a.yaml', 'b.yaml'], env: {} }),
      'b.yaml: services.web.ports[0]: invalid proto: xyz',
    );
  });
});

describe('loadComposeProject: default files', () => {
  it("finds compose.yaml and merges its compose.override.yaml, in compose's order", () => {
    const dir = tempDir();
    write(dir, {
      'docker-compose.yml': 'services:\n  old:\n    ports: ["1:1"]\n',
      'compose.yaml': 'services:\n  web:\n    ports: ["8080:80"]\n',
      'compose.override.yaml': 'services:\n  web:\n    ports: ["8443:443"]\n',
    });
    const p = loadComposeProject({ cwd: dir, env: {} });
    expect(ports(p)).toEqual(['web :8080->80/tcp', 'web :8443->443/tcp']);
    expect(p.files).toEqual([join(dir, 'compose.yaml'), join(dir, 'compose.override.yaml')]);
  });

  it('finds docker-compose.yml from a subdirectory, as compose looks upwards', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'src', 'deep'), { recursive: true });
    write(dir, { 'docker-compose.yml': 'services:\n  web:\n    ports: ["8080:80"]\n' });
    const p = loadComposeProject({ cwd: join(dir, 'src', 'deep'), env: {} });
    expect(p.files).toEqual([join(dir, 'docker-compose.yml')]);
    expect(p.name).toBe('proj');
  });

  it('takes the files from COMPOSE_FILE when no -f is given, as compose does', () => {
    const dir = tempDir();
    write(dir, {
      'compose.yaml': 'services:\n  a:\n    ports: ["1:1"]\n',
      'x.yaml': 'services:\n  x:\n    ports: ["2:2"]\n',
      'y.yaml': 'services:\n  x:\n    ports: ["3:3"]\n',
    });
    const env = { COMPOSE_FILE: 'x.yaml:y.yaml' };
    expect(ports(loadComposeProject({ cwd: dir, env }))).toEqual(['x :2->2/tcp', 'x :3->3/tcp']);
    const sep = { COMPOSE_FILE: 'x.yaml,y.yaml', COMPOSE_PATH_SEPARATOR: ',' };
    expect(ports(loadComposeProject({ cwd: dir, env: sep }))).toHaveLength(2);
    expect(ports(loadComposeProject({ cwd: dir, env, files: ['compose.yaml'] }))).toEqual([
      'a :1->1/tcp',
    ]);
  });

  it('prefers portpub.yaml, without compose override files', () => {
    const dir = tempDir();
    write(dir, {
      'portpub.yaml': 'services:\n  a:\n    ports: ["1:1"]\n',
      'compose.yaml': 'services:\n  b:\n    ports: ["2:2"]\n',
      'compose.override.yaml': 'services:\n  c:\n    ports: ["3:3"]\n',
    });
    expect(ports(loadComposeProject({ cwd: dir, env: {} }))).toEqual(['a :1->1/tcp']);
  });
});

describe('loadComposeProject: .env and the environment', () => {
  it('reads .env beside the file for interpolation; the environment wins over it', () => {
    const dir = tempDir();
    write(dir, {
      '.env': '# ports\nWEB_PORT=9999\nexport DB_PORT="15432" # quoted\nHOST=127.0.0.2\n',
      'compose.yaml':
        'services:\n  web:\n    ports: ["${WEB_PORT:-8080}:80"]\n  db:\n    target: ${HOST}\n' +
        '    ports: ["${DB_PORT}:5432"]\n',
    });
    expect(ports(loadComposeProject({ cwd: dir, env: {} }))).toEqual([
      'web :9999->80/tcp',
      'db :15432->5432/tcp',
    ]);
    const p = loadComposeProject({ cwd: dir, env: { WEB_PORT: '7777' } });
    expect(ports(p)[0]).toBe('web :7777->80/tcp');
    expect(p.services[1]!.target).toBe('127.0.0.2');
  });

  it('parses .env as compose-go does', () => {
    expect(
      parseDotenv(
        [
          'A=plain value # comment',
          "B='single ${A} kept'",
          'C="double\\nline ${A}"',
          'D=${A}-x',
          'export E=e',
          'F="multi',
          'line"',
          'G=a#b',
          '',
          '# comment',
        ].join('\n'),
        '.env',
        {},
      ),
    ).toEqual({
      A: 'plain value',
      B: 'single ${A} kept',
      C: 'double\nline plain value',
      D: 'plain value-x',
      E: 'e',
      F: 'multi\nline',
      G: 'a#b',
    });
    expect(() => parseDotenv('BAD KEY=1\n', '/p/.env')).toThrow('/p/.env: line 1');
  });
});

describe('loadComposeProject: profiles, network_mode, container_name', () => {
  const file =
    'services:\n  web:\n    container_name: shop-web\n    ports: ["8080:80"]\n' +
    '  debug:\n    profiles: [debug]\n    ports: ["9229:9229"]\n' +
    '  tools:\n    profiles: [tools, debug]\n    ports: ["7000:7000"]\n' +
    '  host:\n    network_mode: host\n    ports: ["81:81"]\n';

  it('publishes a service under profiles: only when one of its profiles is active', () => {
    const dir = tempDir();
    write(dir, { 'compose.yaml': file });
    expect(ports(loadComposeProject({ cwd: dir, env: {} }))).toEqual(['web :8080->80/tcp']);
    expect(ports(loadComposeProject({ cwd: dir, env: {}, profiles: ['tools'] }))).toEqual([
      'web :8080->80/tcp',
      'tools :7000->7000/tcp',
    ]);
    expect(ports(loadComposeProject({ cwd: dir, env: { COMPOSE_PROFILES: 'debug' } }))).toEqual([
      'web :8080->80/tcp',
      'debug :9229->9229/tcp',
      'tools :7000->7000/tcp',
    ]);
    expect(ports(loadComposeProject({ cwd: dir, env: {}, profiles: ['*'] }))).toHaveLength(3);
  });

  it('warns that network_mode: host discards ports, and publishes none of them', () => {
    const dir = tempDir();
    write(dir, { 'compose.yaml': file });
    const p = loadComposeProject({ cwd: dir, env: {} });
    expect(p.services.find((s) => s.name === 'host')!.mappings).toEqual([]);
    expect(p.warnings).toHaveLength(1);
    expect(p.warnings[0]).toMatch(
      /compose\.yaml: services\.host: network_mode: host: published ports are discarded/,
    );
  });

  it('network_mode: none publishes nothing, with a warning', () => {
    const dir = tempDir();
    write(dir, {
      'compose.yaml': 'services:\n  off:\n    network_mode: none\n    ports: ["82:82"]\n',
    });
    const p = loadComposeProject({ cwd: dir, env: {} });
    expect(p.services[0]!.mappings).toEqual([]);
    expect(p.warnings).toEqual([
      expect.stringMatching(
        /compose\.yaml: services\.off: network_mode: none: the service has no network/,
      ),
    ]);
  });

  it.each(['service:vpn', 'container:vpn'])(
    'network_mode: %s with ports is refused, as the engine refuses it',
    (mode) => {
      const dir = tempDir();
      write(dir, {
        'compose.yaml':
          'services:\n  vpn:\n    ports: ["8080:80"]\n' +
          `  app:\n    network_mode: "${mode}"\n    ports: ["8081:81"]\n`,
      });
      expectUsage(
        () => loadComposeProject({ cwd: dir, env: {} }),
        new RegExp(
          `compose\\.yaml: services\\.app: network_mode: ${mode}: conflicting options: ` +
            'port publishing and the container type network mode \\(publish the ports on ',
        ),
      );
      // Without ports: it shares vpn's network, and vpn's ports are published.
      write(dir, {
        'compose.yaml':
          'services:\n  vpn:\n    ports: ["8080:80"]\n' + `  app:\n    network_mode: "${mode}"\n`,
      });
      expect(ports(loadComposeProject({ cwd: dir, env: {} }))).toEqual(['vpn :8080->80/tcp']);
    },
  );

  it('keeps container_name, and refuses one Docker would refuse', () => {
    const dir = tempDir();
    write(dir, { 'compose.yaml': file });
    expect(loadComposeProject({ cwd: dir, env: {} }).services[0]!.containerName).toBe('shop-web');
    write(dir, { 'bad.yaml': 'services:\n  web:\n    container_name: "a b"\n' });
    expectUsage(
      () => loadComposeProject({ cwd: dir, files: ['bad.yaml'], env: {} }),
      /^bad\.yaml: services\.web\.container_name: invalid container name "a b"/,
    );
  });
});

describe('project name', () => {
  it("follows compose's precedence: -p, COMPOSE_PROJECT_NAME, name:, the directory", () => {
    expect(projectName('flag', 'env', 'file', '/x/Dir')).toBe('flag');
    expect(projectName(undefined, 'env', 'file', '/x/Dir')).toBe('env');
    expect(projectName(undefined, undefined, 'file', '/x/Dir')).toBe('file');
    expect(projectName(undefined, undefined, undefined, '/x/My.Shop_1')).toBe('myshop_1');
    expectUsage(
      () => projectName('Bad', undefined, undefined, '/x'),
      /invalid project name "Bad" \(--project-name\)/,
    );
  });

  it('reads name: and COMPOSE_PROJECT_NAME from .env', () => {
    const dir = tempDir('Some Dir');
    write(dir, { 'compose.yaml': 'name: shop\nservices:\n  web:\n    ports: ["80"]\n' });
    expect(loadComposeProject({ cwd: dir, env: {} }).name).toBe('shop');
    write(dir, { '.env': 'COMPOSE_PROJECT_NAME=fromenv\n' });
    expect(loadComposeProject({ cwd: dir, env: {} }).name).toBe('fromenv');
    expect(loadComposeProject({ cwd: dir, env: {}, projectName: 'flag' }).name).toBe('flag');
  });
});

describe('size limit', () => {
  it('refuses a file over MAX_COMPOSE_FILE_BYTES before parsing it, naming the file', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'big.yaml'), Buffer.alloc(MAX_COMPOSE_FILE_BYTES + 1, 0x61));
    expectUsage(
      () => loadComposeProject({ cwd: dir, files: ['big.yaml'], env: {} }),
      `big.yaml: too large (${MAX_COMPOSE_FILE_BYTES + 1} bytes): config files are limited to ${MAX_COMPOSE_FILE_BYTES} bytes (4 MiB)`,
    );
  });

  it('reads a file at the limit, and cuts off a stream that goes over it', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'f'), 'x'.repeat(100));
    expect(readBounded(join(dir, 'f'), 'f', 100)).toHaveLength(100);
    expectUsage(
      () => readBounded('/dev/zero', '/dev/zero', 1000),
      /^\/dev\/zero: too large \(over 1000 bytes\)/,
    );
  });
});

describe("compose's merge tags", () => {
  it('!reset clears what earlier files said, !override replaces it, and neither warns', () => {
    const dir = tempDir();
    write(dir, {
      'a.yaml':
        'services:\n  web:\n    network_mode: host\n    ports: ["8080:80", "8443:443"]\n' +
        '    expose: [5000]\n',
      'b.yaml':
        'services:\n  web:\n    network_mode: !reset null\n    ports: !override\n      - "9090:80"\n' +
        '    expose: !reset []\n',
    });
    const p = loadComposeProject({ cwd: dir, files: ['a.yaml', 'b.yaml'], env: {} });
    expect(ports(p)).toEqual(['web :9090->80/tcp']);
    expect(p.services[0]!.expose).toEqual([]);
    expect(p.warnings).toEqual([]);
    write(dir, { 'c.yaml': 'services:\n  web:\n    ports: !reset []\n' });
    const q = loadComposeProject({ cwd: dir, files: ['b.yaml', 'c.yaml'], env: {} });
    expect(ports(q)).toEqual([]);
  });
});
