// Two portpubs that would forward to each other (issue 13 defect 1): the second to start sees the
// first's state file and refuses, exit 2, before serving; a chain that ends at a service is fine;
// a reload that would close such a loop goes back to the configuration that ran.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { runCli, startCli } from '../helpers/cli.js';
import { echoServer, roundTrip, connectTcp } from '../helpers/net.js';
import { reservePorts } from '../helpers/ports.js';

function stateEnv(): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'portpub-peer-loop-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return { PORTPUB_STATE_DIR: join(dir, 'state'), TMP_DIR: dir };
}

/** free says whether nothing listens on 127.0.0.1:port (TCP) any more. */
function free(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

describe('a loop through another portpub', () => {
  it.for(['tcp', 'udp'])('is refused by the second to start (%s)', async (proto) => {
    const env = stateEnv();
    const p = await reservePorts(2);
    const [one, two] = [p, p + 1];
    const a = await startCli(['-p', `127.0.0.1:${one}:${two}/${proto}`], 1, 15_000, { env });
    const b = await runCli(['-p', `127.0.0.1:${two}:${one}/${proto}`], 15_000, { env });
    expect(b.code).toBe(2);
    expect(b.stdout).toBe('');
    // After the start-up log lines, the refusal, once.
    expect(b.stderr.split('\n').filter((l) => l.startsWith('portpub:'))).toHaveLength(1);
    expect(b.stderr).toContain(
      `portpub: 127.0.0.1:${two}/${proto}: the target 127.0.0.1:${one}/${proto} is portpub pid ` +
        `${a.child.pid}'s listening socket 127.0.0.1:${one}/${proto}, which forwards to ` +
        `127.0.0.1:${two}: this portpub's own listening socket 127.0.0.1:${two}/${proto}, so ` +
        'every connection would go round between the portpubs until descriptors run out. ' +
        'Point one of them at the service itself (another host port, or the service on ' +
        'another loopback address such as 127.0.0.2), or start the service with `portpub ' +
        'run`, which gives it its own network namespace\n',
    );
    // The first one runs on, alone; the refused one holds nothing.
    expect(a.child.exitCode).toBeNull();
    if (proto === 'tcp') expect(await free(two)).toBe(true);
    const port = await runCli(['port'], 15_000, { env });
    expect(port.stdout).toBe(`${two}/${proto} -> 127.0.0.1:${one}\n`);
    expect((await a.stop()).code).toBe(0);
  });

  it('lets a chain that ends at a service run', async () => {
    const env = stateEnv();
    const service = await echoServer();
    const p = await reservePorts(1);
    const a = await startCli(['-p', `127.0.0.1:${p}:${service.port}`], 1, 15_000, { env });
    const b = await startCli(['-p', `127.0.0.1::${p}`], 1, 15_000, { env });
    const bPort = Number(/:(\d+)$/.exec(b.lines[0]!)![1]);
    const client = await connectTcp(bPort);
    expect(await roundTrip(client, 'through two')).toBe('through two');
    client.destroy();
    expect((await b.stop()).code).toBe(0);
    expect((await a.stop()).code).toBe(0);
  });

  it('sends a reload that would close one back to what ran', async () => {
    const env = stateEnv();
    const p = await reservePorts(3);
    const [one, two, three] = [p, p + 1, p + 2];
    const a = await startCli(['-p', `127.0.0.1:${one}:${two}`], 1, 15_000, { env });
    const file = join(env.TMP_DIR!, 'compose.yaml');
    const ports = (line: string) => `services:\n  web:\n    ports:\n      - "${line}"\n`;
    writeFileSync(file, ports(`127.0.0.1:${three}:${one}`));
    const up = await startCli(['up', '-f', file], 1, 15_000, { env });
    writeFileSync(file, ports(`127.0.0.1:${two}:${one}`));
    const r = await runCli(['reload', '--pid', String(up.child.pid)], 15_000, { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `portpub: reload of portpub pid ${up.child.pid} failed, the running configuration is kept: ` +
        `service web: 127.0.0.1:${two}/tcp: the target 127.0.0.1:${one}/tcp is portpub pid ` +
        `${a.child.pid}'s listening socket`,
    );
    const port = await runCli(['port', 'web'], 15_000, { env });
    expect(port.stdout).toBe(`${one}/tcp -> 127.0.0.1:${three}\n`);
    expect(await free(two)).toBe(true);
    expect((await up.stop()).code).toBe(0);
    expect((await a.stop()).code).toBe(0);
  });
});
