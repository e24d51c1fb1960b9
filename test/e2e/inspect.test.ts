// portpub inspect through the built CLI, on running services: the JSON array docker inspect
// prints, -f templates over it, and its refusals (exit 1 for a missing service, 2 for a format).
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/net.js';
import { reservePorts } from '../helpers/ports.js';
import { record, requireNetns, runEnv, service, type RunEnv } from '../fixtures/netns-run.js';

const cli = (e: RunEnv, ...args: string[]) => runCli(args, 30_000, { env: e.env });

describe('portpub inspect', { timeout: 90_000 }, () => {
  it('prints running services as docker inspect does, and -f templates', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const port = await reservePorts(1);
    const db = await cli(
      e,
      'run',
      '-d',
      '--name',
      'db',
      '--expose',
      '5432',
      '--',
      ...service('tcp=5432'),
    );
    expect(db.code, db.stderr).toBe(0);
    const web = await cli(
      e,
      'run',
      '-d',
      '--name',
      'web',
      '--link',
      'db',
      '-p',
      `127.0.0.1:${port}:80`,
      '--',
      ...service('tcp=80'),
    );
    expect(web.code, web.stderr).toBe(0);
    for (const name of ['db', 'web']) {
      await waitFor(async () => (await cli(e, 'logs', name)).stdout.includes('up\n'), name, 20_000);
    }

    const r = await cli(e, 'inspect', 'db', 'web');
    expect(r.code, r.stderr).toBe(0);
    const docs = JSON.parse(r.stdout) as Record<string, Record<string, unknown>>[];
    expect(docs.map((d) => d.Name)).toEqual(['/db', '/web']);
    const [dbDoc, webDoc] = docs;
    expect(dbDoc!.Id).toBe(db.stdout.trim());
    expect(dbDoc!.NetworkSettings).toMatchObject({
      IPAddress: record(e.dir, 'db').ip,
      Ports: { '5432/tcp': null },
    });
    expect(webDoc!.State).toMatchObject({
      Status: 'running',
      Running: true,
      Pid: record(e.dir, 'web').state.pid,
    });
    expect(webDoc!.HostConfig).toMatchObject({ Links: ['/db:/web/db'], NetworkMode: 'bridge' });
    expect(webDoc!.NetworkSettings).toMatchObject({
      Ports: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: String(port) }] },
    });
    expect(webDoc!.Config).toMatchObject({ Hostname: web.stdout.trim().slice(0, 12) });
    expect((webDoc!.Config!.Env as string[]).some((v) => v.startsWith('DB_PORT_5432_TCP='))).toBe(
      true,
    );

    const ip = await cli(e, 'inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'db');
    expect(ip).toMatchObject({ code: 0, stdout: `${record(e.dir, 'db').ip}\n` });
    const hostPort = await cli(
      e,
      'inspect',
      '--format',
      '{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}',
      'web',
    );
    expect(hostPort).toMatchObject({ code: 0, stdout: `${port}\n` });

    // As docker inspect: what is found is printed, then each name that is not.
    const missing = await cli(e, 'inspect', 'nosuch', 'db', 'gone');
    expect(missing.code).toBe(1);
    const found = JSON.parse(missing.stdout) as { Name: string }[];
    expect(found.map((d) => d.Name)).toEqual(['/db']);
    expect(missing.stderr).toContain(
      'portpub: No such object: nosuch\nportpub: No such object: gone\n',
    );
    const formatted = await cli(e, 'inspect', '-f', '{{.Name}}', 'gone', 'db');
    expect(formatted).toMatchObject({ code: 1, stdout: '/db\n' });
    const none = await cli(e, 'inspect', 'gone');
    expect(none).toMatchObject({ code: 1, stdout: '[]\n' });
    const bad = await cli(e, 'inspect', '-f', '{{range .Args}}{{.}}{{end}}', 'db');
    expect(bad).toMatchObject({ code: 2, stdout: '' });
    expect(bad.stderr).toContain('"range" is not understood');

    for (const name of ['web', 'db']) expect((await cli(e, 'stop', name)).code).toBe(0);
    const stopped = await cli(e, 'inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'web');
    expect(stopped).toMatchObject({ code: 0, stdout: 'exited 0\n' });
  });
});
