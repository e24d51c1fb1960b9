// `portpub up -d` and `portpub down` through the built CLI (issue 14): up -d returns once every
// port of every service is bound, one `Service NAME  Started` line each on stderr (as compose
// prints its containers); ps lists the project; a second up -d is refused; down stops and removes
// it; a bind failure in the background is the foreground's message and exit code.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { echoServer, roundTrip, track } from '../helpers/net.js';
import { alive, record, records, runEnv, type RunEnv } from '../fixtures/netns-run.js';

/** project writes a compose file `name: demo` with these services' ports, in a directory of its own. */
function project(services: Record<string, string>): string {
  const cwd = mkdtempSync(join(tmpdir(), 'portpub-up-d-'));
  onTestFinished(() => rmSync(cwd, { recursive: true, force: true }));
  const body = Object.entries(services)
    .map(([name, port]) => `  ${name}:\n    ports: ["${port}"]\n`)
    .join('');
  writeFileSync(join(cwd, 'portpub.yaml'), `name: demo\nservices:\n${body}`);
  return cwd;
}

const cli = (e: RunEnv, cwd: string, ...args: string[]) =>
  runCli(args, 20_000, { env: e.env, cwd });

async function hostPort(e: RunEnv, cwd: string, service: string): Promise<number> {
  const r = await cli(e, cwd, 'port', service);
  expect(r.code).toBe(0);
  const m = /-> 127\.0\.0\.1:(\d+)\n$/.exec(r.stdout);
  if (!m) throw new Error(`unexpected portpub port output: ${r.stdout}`);
  return Number(m[1]);
}

describe('portpub up -d / down', { timeout: 60_000 }, () => {
  it('serves every service in the background until down', async () => {
    const e = runEnv();
    const web = await echoServer();
    const db = await echoServer();
    const cwd = project({ web: `127.0.0.1::${web.port}`, db: `127.0.0.1::${db.port}` });

    const up = await cli(e, cwd, 'up', '-d');
    expect(up).toMatchObject({
      code: 0,
      stdout: '',
      stderr: ' Service web  Started\n Service db  Started\n',
    });
    const rec = record(e.dir, 'demo');
    const pid = rec.state.pid!;
    expect(alive(pid)).toBe(true);

    const webPort = await hostPort(e, cwd, 'web');
    const dbPort = await hostPort(e, cwd, 'db');
    for (const port of [webPort, dbPort]) {
      const s = track(net.connect(port, '127.0.0.1'));
      expect(await roundTrip(s, `to ${port}`)).toBe(`to ${port}`);
      s.destroy();
    }

    const ps = await cli(e, cwd, 'ps');
    const row = ps.stdout.trimEnd().split('\n')[1]!;
    expect(row).toContain(`127.0.0.1:${webPort}->${web.port}/tcp`);
    expect(row).toContain(`127.0.0.1:${dbPort}->${db.port}/tcp`);
    expect(row).toMatch(/"portpub up -d" .* Up .* demo$/);

    const again = await cli(e, cwd, 'up', '-d');
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(
      `portpub: project demo is already up (portpub pid ${pid}): portpub down -p demo stops it\n`,
    );

    const down = await cli(e, cwd, 'down');
    expect(down).toMatchObject({
      code: 0,
      stdout: '',
      stderr: ' Service web  Removed\n Service db  Removed\n',
    });
    // Gone, so nothing of it holds a port (a refused-connect check would race with whoever
    // binds the released ephemeral port next on a shared machine).
    expect(alive(pid)).toBe(false);
    expect(records(e.dir)).toEqual([]);

    // Nothing left to take down: as compose, a quiet success.
    expect(await cli(e, cwd, 'down', '-p', 'demo')).toMatchObject({ code: 0, stderr: '' });
  });

  it('stop NAME stops a project too, and up -d starts it afresh', async () => {
    const e = runEnv();
    const web = await echoServer();
    const cwd = project({ web: `127.0.0.1::${web.port}` });
    expect((await cli(e, cwd, 'up', '-d')).code).toBe(0);
    const first = record(e.dir, 'demo');
    const stop = await cli(e, cwd, 'stop', 'demo');
    expect(stop).toMatchObject({ code: 0, stdout: 'demo\n' });
    expect(alive(first.state.pid!)).toBe(false);
    expect(record(e.dir, 'demo').state.status).toBe('exited');

    expect((await cli(e, cwd, 'up', '-d')).code).toBe(0);
    const second = record(e.dir, 'demo');
    expect(second.id).not.toBe(first.id);
    expect(records(e.dir)).toHaveLength(1);
    expect((await cli(e, cwd, 'down', '-p', 'demo')).code).toBe(0);
    expect(alive(second.state.pid!)).toBe(false);
  });

  it('a bind failure in the background is the foreground message and exit code', async () => {
    const e = runEnv();
    const holder = track(net.createServer());
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const held = (holder.address() as net.AddressInfo).port;
    const cwd = project({ web: `127.0.0.1:${held}:80` });

    const fg = await cli(e, cwd, 'up');
    expect(fg.code).toBe(1);
    const line = fg.stderr.split('\n').filter((l) => l.startsWith('portpub:'));
    expect(line).toHaveLength(1);
    expect(line[0]).toContain(`127.0.0.1:${held}/tcp: address already in use`);

    const bg = await cli(e, cwd, 'up', '-d');
    expect(bg).toMatchObject({ code: 1, stdout: '', stderr: `${line[0]}\n` });
    expect(records(e.dir)).toEqual([]);
  });

  it('a project without ports exits 2 before anything starts', async () => {
    const e = runEnv();
    const cwd = mkdtempSync(join(tmpdir(), 'portpub-up-d-'));
    onTestFinished(() => rmSync(cwd, { recursive: true, force: true }));
    writeFileSync(join(cwd, 'portpub.yaml'), 'services:\n  web:\n    expose: ["80"]\n');
    const r = await cli(e, cwd, 'up', '-d');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('nothing to publish');
    expect(records(e.dir)).toEqual([]);
  });
});
