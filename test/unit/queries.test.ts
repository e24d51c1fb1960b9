import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  ERR_AMBIGUOUS_SERVICE,
  ERR_LINK_TARGET,
  ERR_NOT_RUNNING,
  ERR_NO_RELOAD_TARGET,
  ERR_NO_SUCH_SERVICE,
  envCommand,
  findReloadTarget,
  linkedEnv,
  portCommand,
  selectBindings,
} from '../../src/registry/queries.js';
import { runWithEnv } from '../../src/cli/run-with-env.js';
import { ERR_NO_PORT, type Binding } from '../../src/docker/report.js';
import { readStates, removeState, writeState, type State } from '../../src/registry/state.js';
import type { Protocol } from '../../src/docker/spec.js';

/** bind is a binding with the target on the same port unless given. */
function bind(
  hostIp: string,
  hostPort: number,
  targetPort: number,
  protocol: Protocol = 'tcp',
  more: Partial<Binding> = {},
): Binding {
  return { hostIp, hostPort, targetHost: '127.0.0.1', targetPort, protocol, ...more };
}

function state(pid: number, bindings: Binding[], more: Partial<State> = {}): State {
  return { pid, startedAt: `2024-01-01T00:00:0${pid % 10}.000Z`, bindings, ...more };
}

/** The bindings behind docker/cli testdata/container-port-all-ports.golden, shuffled. */
const golden: Binding[] = [
  bind('::', 5678, 443, 'udp'),
  bind('0.0.0.0', 4567, 443),
  bind('::', 3456, 80),
  bind('0.0.0.0', 5678, 443, 'udp'),
  bind('::', 4567, 443),
  bind('0.0.0.0', 3456, 80),
];
const GOLDEN = `80/tcp -> 0.0.0.0:3456
80/tcp -> [::]:3456
443/tcp -> 0.0.0.0:4567
443/tcp -> [::]:4567
443/udp -> 0.0.0.0:5678
443/udp -> [::]:5678
`;

/** An `up` with two services, and a plain `-p` run named `cache`. */
const up = state(
  101,
  [
    bind('0.0.0.0', 8080, 80, 'tcp', { name: 'web', targetHost: '10.0.0.2' }),
    bind('127.0.0.1', 49153, 5432, 'tcp', { name: 'db', targetHost: '172.17.0.5' }),
  ],
  { configFile: '/srv/app/portpub.yaml' },
);
const cache = state(202, [bind('0.0.0.0', 6379, 6379)], { name: 'cache' });
const anonymous = state(303, [bind('0.0.0.0', 9000, 9000)]);

function codeOf(fn: () => unknown): { code: string; message: string; exitCode: number } {
  try {
    fn();
  } catch (err) {
    return err as { code: string; message: string; exitCode: number };
  }
  throw new Error('expected an error');
}

describe('selectBindings', () => {
  it('resolves a service, a run name and a pid; nothing means everything', () => {
    const states = [up, cache, anonymous];
    expect(selectBindings(states, 'db')).toEqual({ label: 'db', bindings: [up.bindings[1]] });
    expect(selectBindings(states, 'cache')).toEqual({ label: 'cache', bindings: cache.bindings });
    expect(selectBindings(states, '303')).toEqual({ label: '303', bindings: anonymous.bindings });
    expect(selectBindings(states)).toEqual({
      label: 'portpub',
      bindings: [...up.bindings, ...cache.bindings, ...anonymous.bindings],
    });
  });

  it('names what is running when NAME is unknown', () => {
    const err = codeOf(() => selectBindings([up, cache, anonymous], 'nope'));
    expect(err).toMatchObject({
      code: ERR_NO_SUCH_SERVICE,
      exitCode: 1,
      message: 'no such service: nope (running: web, db, cache, pid 303)',
    });
  });

  it('says where it looked when nothing runs', () => {
    expect(codeOf(() => selectBindings([], 'db', '/run/user/1000/portpub'))).toMatchObject({
      code: ERR_NOT_RUNNING,
      exitCode: 1,
      message: 'no running portpub found (state dir: /run/user/1000/portpub)',
    });
  });

  it('refuses a service two portpubs serve, and the pid picks one', () => {
    const other = state(404, [bind('0.0.0.0', 8081, 80, 'tcp', { name: 'web' })]);
    expect(codeOf(() => selectBindings([up, other], 'web'))).toMatchObject({
      code: ERR_AMBIGUOUS_SERVICE,
      message: 'service web is served by several portpubs (pid 101, pid 404): give the pid instead',
    });
    expect(selectBindings([up, other], '404').bindings).toEqual(other.bindings);
  });
});

describe('portCommand', () => {
  const states = [state(7, golden, { name: 'test' })];

  it('prints docker port golden output, naturally sorted', () => {
    expect(portCommand(states, { name: 'test' })).toBe(GOLDEN);
    expect(portCommand(states, {})).toBe(GOLDEN);
  });

  it('prints nothing for no bindings', () => {
    expect(portCommand([state(8, [], { name: 'idle' })], { name: 'idle' })).toBe('');
  });

  it('queries one port, tcp by default, protocol case-insensitive', () => {
    expect(portCommand(states, { name: 'test', port: '80' })).toBe('0.0.0.0:3456\n[::]:3456\n');
    expect(portCommand(states, { name: 'test', port: '443/UDP' })).toBe(
      '0.0.0.0:5678\n[::]:5678\n',
    );
  });

  it("says docker's error for a port nothing publishes, naming the arg as typed", () => {
    expect(codeOf(() => portCommand(states, { name: 'test', port: '7890/udp' }))).toMatchObject({
      code: ERR_NO_PORT,
      exitCode: 1,
      message: "no public port '7890/udp' published for test",
    });
    expect(codeOf(() => portCommand(states, { port: '80/UDP' })).message).toBe(
      "no public port '80/UDP' published for portpub",
    );
    expect(codeOf(() => portCommand(states, { name: 'test', port: 'x' }))).toMatchObject({
      code: 'ERR_USAGE',
      message: "invalid port 'x': invalid syntax",
    });
  });

  it('reads a lone argument as the port when it names nothing running', () => {
    const live = [up, cache];
    expect(portCommand(live, { name: '5432' })).toBe('127.0.0.1:49153\n');
    expect(portCommand(live, { name: '6379/tcp' })).toBe('0.0.0.0:6379\n');
    // A name wins over a port, a pid is a name, and what is neither is an unknown service.
    const numeric = state(505, [bind('0.0.0.0', 1, 1, 'tcp', { name: '80' })]);
    expect(portCommand([...live, numeric], { name: '80' })).toBe('1/tcp -> 0.0.0.0:1\n');
    expect(portCommand(live, { name: '202' })).toBe('6379/tcp -> 0.0.0.0:6379\n');
    expect(codeOf(() => portCommand(live, { name: '99' })).message).toBe(
      "no public port '99' published for portpub",
    );
    expect(codeOf(() => portCommand(live, { name: 'x/y/z' })).code).toBe(ERR_NO_SUCH_SERVICE);
  });

  it("prints --json in docker inspect's Ports shape", () => {
    expect(portCommand(states, { json: true })).toBe(
      '{"443/tcp":[{"HostIp":"0.0.0.0","HostPort":"4567"},{"HostIp":"::","HostPort":"4567"}],' +
        '"443/udp":[{"HostIp":"0.0.0.0","HostPort":"5678"},{"HostIp":"::","HostPort":"5678"}],' +
        '"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"3456"},{"HostIp":"::","HostPort":"3456"}]}\n',
    );
    expect(portCommand(states, { port: '80', json: true })).toBe(
      '[{"HostIp":"0.0.0.0","HostPort":"3456"},{"HostIp":"::","HostPort":"3456"}]\n',
    );
    expect(portCommand([state(8, [])], { json: true })).toBe('{}\n');
    expect(codeOf(() => portCommand(states, { port: '81', json: true })).code).toBe(ERR_NO_PORT);
  });

  it('reads what a running portpub wrote, through the state directory', () => {
    const root = mkdtempSync(join(tmpdir(), 'portpub-control-test-'));
    onTestFinished(() => rmSync(root, { recursive: true, force: true }));
    const dir = join(root, 'portpub');
    expect(codeOf(() => portCommand(readStates(dir), { dir })).message).toBe(
      `no running portpub found (state dir: ${dir})`,
    );
    // This process is alive, so its file counts as a running portpub.
    writeState(dir, state(process.pid, golden, { name: 'test' }));
    onTestFinished(() => removeState(dir, process.pid));
    expect(portCommand(readStates(dir), { name: 'test', dir })).toBe(GOLDEN);
    expect(portCommand(readStates(dir), { name: String(process.pid), port: '443/udp' })).toBe(
      '0.0.0.0:5678\n[::]:5678\n',
    );
  });
});

describe('envCommand', () => {
  const db = state(11, [
    bind('0.0.0.0', 49153, 5432, 'tcp', { name: 'db', targetHost: '172.17.0.5' }),
  ]);

  it('prints the docs example (docker run --name web2 --link db:db) as export lines', () => {
    expect(envCommand([db], { service: 'db', parent: 'web2' })).toBe(
      `export DB_PORT='tcp://172.17.0.5:5432'
export DB_PORT_5432_TCP='tcp://172.17.0.5:5432'
export DB_PORT_5432_TCP_ADDR='172.17.0.5'
export DB_PORT_5432_TCP_PORT='5432'
export DB_PORT_5432_TCP_PROTO='tcp'
export DB_NAME='/web2/db'
`,
    );
  });

  it('prints a .env file, with the alias and the default parent', () => {
    expect(envCommand([db], { service: 'db', format: 'dotenv' })).toBe(
      `DB_PORT=tcp://172.17.0.5:5432
DB_PORT_5432_TCP=tcp://172.17.0.5:5432
DB_PORT_5432_TCP_ADDR=172.17.0.5
DB_PORT_5432_TCP_PORT=5432
DB_PORT_5432_TCP_PROTO=tcp
DB_NAME=/portpub/db
`,
    );
    expect(envCommand([db], { service: 'db', alias: 'webdb', parent: 'web' })).toContain(
      "export WEBDB_NAME='/web/webdb'\n",
    );
    expect(codeOf(() => envCommand([db], { service: 'db', alias: '' })).code).toBe('ERR_USAGE');
  });

  it('reproduces TestLinkMultipleEnv (except DOCKER_ENV_PASSWORD: a state has no env)', () => {
    const redis = state(
      12,
      [
        [6300, 'udp'],
        [6379, 'tcp'],
        [6380, 'tcp'],
        [6381, 'tcp'],
        [6382, 'udp'],
      ].flatMap(([port, protocol]) =>
        ['0.0.0.0', '::'].map((hostIp) =>
          bind(hostIp, 40000 + Number(port), Number(port), protocol as Protocol, {
            name: 'redis',
            targetHost: '172.0.17.2',
          }),
        ),
      ),
    );
    const out = envCommand([redis], {
      service: 'redis',
      parent: 'db',
      alias: 'docker',
      format: 'dotenv',
    });
    expect(out.trimEnd().split('\n').sort()).toEqual([
      // 'DOCKER_ENV_PASSWORD=gordon' comes from the linked container's env, which a state lacks.
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

  it('--published keeps the target-port names and gives the host endpoint as values', () => {
    // Docker publishes on both families; the IPv4 one is preferred, its wildcard made loopback.
    const both = state(13, [
      bind('::', 49153, 5432, 'tcp', { name: 'db', targetHost: '172.17.0.5' }),
      bind('0.0.0.0', 49153, 5432, 'tcp', { name: 'db', targetHost: '172.17.0.5' }),
    ]);
    expect(envCommand([both], { service: 'db', published: true, format: 'dotenv' })).toBe(
      `DB_PORT=tcp://127.0.0.1:49153
DB_PORT_5432_TCP=tcp://127.0.0.1:49153
DB_PORT_5432_TCP_ADDR=127.0.0.1
DB_PORT_5432_TCP_PORT=49153
DB_PORT_5432_TCP_PROTO=tcp
DB_NAME=/portpub/db
`,
    );
  });

  it('--published: an IPv6-only wildcard is ::1 (bracketed in URLs); runs name host ports', () => {
    const v6 = state(14, [bind('::', 8443, 443, 'tcp', { name: 'api' })]);
    expect(envCommand([v6], { service: 'api', published: true, format: 'dotenv' })).toBe(
      `API_PORT=tcp://[::1]:8443
API_PORT_443_TCP=tcp://[::1]:8443
API_PORT_443_TCP_ADDR=::1
API_PORT_443_TCP_PORT=8443
API_PORT_443_TCP_PROTO=tcp
API_NAME=/portpub/api
`,
    );
    // Ephemeral host ports for a target run: names from the run, values from the host side.
    const run = state(15, [
      bind('127.0.0.1', 40007, 6381, 'tcp', { name: 'r' }),
      bind('127.0.0.1', 40001, 6379, 'tcp', { name: 'r' }),
      bind('192.168.1.5', 40004, 6380, 'tcp', { name: 'r' }),
    ]);
    expect(envCommand([run], { service: 'r', published: true, format: 'dotenv' })).toBe(
      `R_PORT=tcp://127.0.0.1:40001
R_PORT_6379_TCP=tcp://127.0.0.1:40001
R_PORT_6379_TCP_ADDR=127.0.0.1
R_PORT_6379_TCP_PORT=40001
R_PORT_6379_TCP_PROTO=tcp
R_PORT_6380_TCP=tcp://192.168.1.5:40004
R_PORT_6380_TCP_ADDR=192.168.1.5
R_PORT_6380_TCP_PORT=40004
R_PORT_6380_TCP_PROTO=tcp
R_PORT_6381_TCP=tcp://127.0.0.1:40007
R_PORT_6381_TCP_ADDR=127.0.0.1
R_PORT_6381_TCP_PORT=40007
R_PORT_6381_TCP_PROTO=tcp
R_PORT_6379_TCP_START=tcp://127.0.0.1:40001
R_PORT_6379_TCP_PORT_START=40001
R_PORT_6379_TCP_END=tcp://127.0.0.1:40007
R_PORT_6379_TCP_PORT_END=40007
R_NAME=/portpub/r
`,
    );
  });

  it('needs one target address, except with --published', () => {
    const split = state(16, [
      bind('0.0.0.0', 1, 1, 'tcp', { name: 's', targetHost: '10.0.0.1' }),
      bind('0.0.0.0', 2, 2, 'tcp', { name: 's', targetHost: '10.0.0.2' }),
    ]);
    expect(codeOf(() => envCommand([split], { service: 's' }))).toMatchObject({
      code: ERR_LINK_TARGET,
      message:
        'service s forwards to several targets (10.0.0.1, 10.0.0.2): --link variables have one address',
    });
    expect(envCommand([split], { service: 's', published: true })).toContain(
      "export S_PORT_2_TCP_ADDR='127.0.0.1'\n",
    );
  });

  it('resolves SERVICE like port NAME: a run name works, an unknown one does not', () => {
    expect(envCommand([cache], { service: 'cache', format: 'dotenv' })).toContain(
      'CACHE_PORT=tcp://127.0.0.1:6379\n',
    );
    expect(codeOf(() => envCommand([cache], { service: 'db' })).code).toBe(ERR_NO_SUCH_SERVICE);
  });
});

describe('linkedEnv', () => {
  it('merges the variables of every --link value', () => {
    const env = linkedEnv([up, cache], ['db', 'cache:redis'], { parent: 'app' });
    expect(env).toMatchObject({
      DB_PORT: 'tcp://172.17.0.5:5432',
      DB_NAME: '/app/db',
      REDIS_PORT_6379_TCP_ADDR: '127.0.0.1',
      REDIS_NAME: '/app/redis',
    });
    expect(linkedEnv([up], ['db'], { published: true }).DB_PORT).toBe('tcp://127.0.0.1:49153');
    expect(codeOf(() => linkedEnv([up], ['a:b:c'])).message).toBe('bad format for links: a:b:c');
  });
});

describe('runWithEnv', () => {
  function capture(): { stream: PassThrough; text: () => string } {
    const stream = new PassThrough();
    let text = '';
    stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
    return { stream, text: () => text };
  }

  it('runs the command with the variables added to the environment', async () => {
    const out = capture();
    const code = await runWithEnv('sh', ['-c', 'echo "$DB_PORT $HOME"'], linkedEnv([up], ['db']), {
      stdout: out.stream,
    });
    expect(code).toBe(0);
    expect(out.text()).toBe(`tcp://172.17.0.5:5432 ${process.env.HOME}\n`);
  });

  it("resolves the child's exit code, 128+N for a signal", async () => {
    expect(await runWithEnv('sh', ['-c', 'exit 7'], {})).toBe(7);
    expect(await runWithEnv('sh', ['-c', 'kill -TERM $$'], {})).toBe(143);
  });

  it('resolves 127 and says so when the command is not found', async () => {
    const err = capture();
    expect(await runWithEnv('portpub-no-such-command', [], {}, { stderr: err.stream })).toBe(127);
    expect(err.text()).toBe('portpub: portpub-no-such-command: command not found\n');
  });

  /** trapping runs a shell that reports ready, then exits 41 on HUP, 42 on INT, 55 on TERM. */
  async function trapping(
    signals: NodeJS.Signals[],
    interactive: boolean,
  ): Promise<{ code: number; listeners: number }> {
    const before = process.listenerCount('SIGHUP');
    const out = capture();
    const child = runWithEnv(
      'sh',
      [
        '-c',
        'trap "exit 41" HUP; trap "exit 42" INT; trap "exit 55" TERM; echo ready; ' +
          'while :; do sleep 0.02; done',
      ],
      {},
      { stdout: out.stream, interactive },
    );
    await new Promise<void>((resolve) => {
      const check = () => {
        if (!out.text().includes('ready')) return;
        out.stream.off('data', check);
        resolve();
      };
      out.stream.on('data', check);
    });
    expect(process.listenerCount('SIGHUP')).toBe(before + 1);
    for (const signal of signals) {
      // One at a time: pending signals of one kind merge, and the kernel orders different ones.
      const seen = new Promise((resolve) => process.once(signal, resolve));
      process.kill(process.pid, signal);
      await seen;
    }
    const code = await child;
    return { code, listeners: process.listenerCount('SIGHUP') - before };
  }

  it('relays SIGHUP and SIGTERM to the child, and stops relaying after', async () => {
    expect(await trapping(['SIGHUP'], false)).toEqual({ code: 41, listeners: 0 });
    expect(await trapping(['SIGTERM'], false)).toEqual({ code: 55, listeners: 0 });
  });

  it("relays SIGINT, except a terminal's first (it reached the child already)", async () => {
    expect(await trapping(['SIGINT'], false)).toEqual({ code: 42, listeners: 0 });
    // Interactive: the first SIGINT is dropped, so the TERM after it is what ends the child...
    expect(await trapping(['SIGINT', 'SIGTERM'], true)).toEqual({ code: 55, listeners: 0 });
    // ...and a second SIGINT is relayed.
    expect(await trapping(['SIGINT', 'SIGINT'], true)).toEqual({ code: 42, listeners: 0 });
  });
});

describe('findReloadTarget', () => {
  const other = state(606, [], { configFile: '/srv/other/portpub.yml' });

  it('picks the only portpub up, or the one with the pid', () => {
    expect(findReloadTarget([up, cache])).toBe(up);
    expect(findReloadTarget([up, cache, other], 606)).toBe(other);
  });

  it('refuses none, several, and a pid that is no portpub up', () => {
    expect(codeOf(() => findReloadTarget([cache], undefined, '/d'))).toMatchObject({
      code: ERR_NO_RELOAD_TARGET,
      message: 'no running portpub up found (state dir: /d)',
    });
    expect(codeOf(() => findReloadTarget([up, other])).message).toBe(
      'several portpub up are running: pid 101 (/srv/app/portpub.yaml), ' +
        'pid 606 (/srv/other/portpub.yml); say which by pid',
    );
    expect(codeOf(() => findReloadTarget([up, cache], 202)).message).toBe(
      'portpub pid 202 serves no config file, so there is nothing to reload',
    );
    expect(codeOf(() => findReloadTarget([up], 999)).message).toBe(
      'portpub pid 999 is not running',
    );
  });
});

describe('compose projects: scoped names, container_name, expose (issue 13 defect 10)', () => {
  // Two projects with a db each: shop's only `expose: 5432`, blog's published.
  const shop = state(
    501,
    [bind('0.0.0.0', 8080, 80, 'tcp', { name: 'web', targetHost: '127.0.0.2' })],
    {
      configFile: '/srv/shop/compose.yaml',
      project: 'shop',
      services: [
        { name: 'web', containerName: 'shop-frontend', targetHost: '127.0.0.2', expose: [] },
        { name: 'db', targetHost: '127.0.0.3', expose: [{ port: 5432, protocol: 'tcp' }] },
      ],
    },
  );
  const blog = state(
    602,
    [bind('127.0.0.1', 15432, 5432, 'tcp', { name: 'db', targetHost: '127.0.0.4' })],
    {
      configFile: '/srv/blog/compose.yaml',
      project: 'blog',
      services: [{ name: 'db', targetHost: '127.0.0.4', expose: [] }],
    },
  );

  it('refuses a service name two projects share, naming the projects and a name for each', () => {
    expect(codeOf(() => envCommand([shop, blog], { service: 'db' }))).toMatchObject({
      code: ERR_AMBIGUOUS_SERVICE,
      exitCode: 1,
      message:
        'service db is in several projects: shop (pid 501), blog (pid 602); ' +
        'name one as shop-db-1 or blog-db-1, or give the pid',
    });
    expect(codeOf(() => portCommand([shop, blog], { name: 'db' })).code).toBe(
      ERR_AMBIGUOUS_SERVICE,
    );
  });

  it("answers to compose's container name <project>-<service>-1", () => {
    expect(portCommand([shop, blog], { name: 'blog-db-1' })).toBe('5432/tcp -> 127.0.0.1:15432\n');
  });

  it('gives link variables for expose:-only ports, at the service target', () => {
    expect(envCommand([shop, blog], { service: 'shop-db-1', alias: 'db', format: 'dotenv' })).toBe(
      `DB_PORT=tcp://127.0.0.3:5432
DB_PORT_5432_TCP=tcp://127.0.0.3:5432
DB_PORT_5432_TCP_ADDR=127.0.0.3
DB_PORT_5432_TCP_PORT=5432
DB_PORT_5432_TCP_PROTO=tcp
DB_NAME=/portpub/db
`,
    );
    // Nothing of it is published, so docker port prints nothing.
    expect(portCommand([shop, blog], { name: 'shop-db-1' })).toBe('');
  });

  it('answers to container_name:', () => {
    expect(portCommand([shop, blog], { name: 'shop-frontend' })).toBe('80/tcp -> 0.0.0.0:8080\n');
  });

  it('lists expose-only services among what is running', () => {
    expect(codeOf(() => portCommand([shop], { name: 'nope' })).message).toBe(
      'no such service: nope (running: web, db)',
    );
  });

  it('keeps the state records through a state file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portpub-q-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeState(dir, { ...shop, pid: process.pid, procStart: undefined });
    const [back] = readStates(dir);
    expect(back).toMatchObject({ project: 'shop', services: shop.services });
  });
});
