// `portpub run --hostname`, `--add-host` and `-w`, through the built CLI: the name and /etc/hosts
// a service sees, as docker run gives them (and its linked peers see the hostname too), its working
// directory on both networks, and every refusal before anything starts.
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/net.js';
import { record, records, requireNetns, runEnv } from '../fixtures/netns-run.js';

/** SHOW prints what the service sees of its identity, a line each. */
const SHOW = `hostname; echo "$HOSTNAME"; cat /etc/hostname 2>/dev/null || echo -; pwd; cat /etc/hosts; getent hosts foo v6`;

describe('portpub run: --hostname, --add-host, -w', { timeout: 90_000 }, () => {
  it('the service has the hostname and /etc/hosts entries given, and runs in -w', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const args = [
      '--hostname',
      'web.local',
      '--add-host',
      'foo:10.1.2.3',
      '--add-host',
      'v6=[::5]',
    ];
    const r = await runCli(
      [
        'run',
        '--log-level',
        'warn',
        '--name',
        'ident',
        ...args,
        '-w',
        '/tmp',
        '--',
        'sh',
        '-c',
        SHOW,
      ],
      30_000,
      { env: e.env },
    );
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    // hostname(1), $HOSTNAME, /etc/hostname where the host has one, the working directory.
    expect(lines.slice(0, 2)).toEqual(['web.local', 'web.local']);
    expect(['web.local', '-']).toContain(lines[2]);
    expect(lines[3]).toBe('/tmp');
    // Docker's order: the defaults, the extra hosts, then the service itself.
    const ip = record(e.dir, 'ident').ip;
    expect(lines.slice(10, 13)).toEqual(['10.1.2.3\tfoo', '::5\tv6', `${ip}\tweb.local`]);
    expect(lines.slice(13, 15).map((l) => l.split(/\s+/))).toEqual([
      ['10.1.2.3', 'foo'],
      ['::5', 'v6'],
    ]);
  });

  it("without them: the short id, no extra entry, portpub's own directory", async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const r = await runCli(
      ['run', '--log-level', 'warn', '--name', 'plain', '--', 'sh', '-c', SHOW],
      30_000,
      {
        env: e.env,
        cwd: '/',
      },
    );
    const lines = r.stdout.split('\n');
    const short = record(e.dir, 'plain').id.slice(0, 12);
    expect(lines.slice(0, 2)).toEqual([short, short]);
    expect(lines[3]).toBe('/');
    expect(lines[10]).toBe(`${record(e.dir, 'plain').ip}\t${short}`);
    expect(r.stdout).not.toContain('foo');
  });

  it("a linked peer's /etc/hosts names the service by its --hostname", async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const d = await runCli(
      [
        'run',
        '-d',
        '--name',
        'named',
        '--hostname',
        'db-host',
        '--expose',
        '80',
        '--',
        'sleep',
        '60',
      ],
      30_000,
      { env: e.env },
    );
    expect(d.code, d.stderr).toBe(0);
    const r = await runCli(
      [
        'run',
        '--log-level',
        'warn',
        '--link',
        'named:db',
        '--',
        'sh',
        '-c',
        'grep db-host /etc/hosts',
      ],
      30_000,
      { env: e.env },
    );
    expect(r.stdout).toBe(`${record(e.dir, 'named').ip}\tdb db-host named\n`);
    expect((await runCli(['stop', '-t', '0', 'named'], 30_000, { env: e.env })).code).toBe(0);
  });

  it('-w on the host network too, foreground and -d', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const fg = await runCli(['run', '--network', 'host', '-w', '/tmp', '--', 'pwd'], 30_000, {
      env: e.env,
      cwd: '/',
    });
    expect(fg.stdout).toBe('/tmp\n');
    const d = await runCli(
      ['run', '-d', '--network', 'host', '--name', 'bgw', '-w', '/tmp', '--', 'pwd'],
      30_000,
      { env: e.env, cwd: '/' },
    );
    expect(d.code, d.stderr).toBe(0);
    await waitFor(() => record(e.dir, 'bgw').state.status === 'exited', 'pwd to end', 20_000);
    const logs = await runCli(['logs', 'bgw'], 15_000, { env: e.env });
    expect(logs.stdout).toBe('/tmp\n');
  });

  it.for([
    { args: ['--add-host', 'nohost'], says: 'bad format for add-host: "nohost"' },
    { args: ['--add-host', 'a:1.2.3'], says: 'invalid IP address in add-host: "1.2.3"' },
    { args: ['--add-host', 'a:host-gateway'], says: 'reaches the host only through --link' },
    { args: ['--hostname', 'bad_name'], says: 'invalid hostname format: bad_name' },
    {
      args: ['-w', 'tmp'],
      says: "the working directory 'tmp' is invalid, it needs to be an absolute path",
    },
    { args: ['-w', '/no/such/dir'], says: '-w /no/such/dir: no such directory' },
    {
      args: ['--network', 'host', '--hostname', 'x'],
      says: '--hostname needs a network of its own',
    },
    {
      args: ['--network', 'host', '--add-host', 'a:10.0.0.1'],
      says: '--add-host needs a network of its own',
    },
  ])('refuses $args before anything starts, exit 2', async ({ args, says }, ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const r = await runCli(['run', ...args, '--name', 'refused', '--', 'true'], 30_000, {
      env: e.env,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(says);
    expect(records(e.dir)).toEqual([]);
  });
});
