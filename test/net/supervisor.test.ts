import { connect, createServer, type Server, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parsePublish } from '../../src/docker/spec.js';
import * as api from '../../src/index.js';
import { Publisher, startPublisher, type PublishRequest } from '../../src/publish/publisher.js';
import { withTimeout } from '../helpers/cli.js';
import { echoServer as echoFixture, freePort, roundTrip } from '../helpers/net.js';

const echoServer = async (): Promise<number> => (await echoFixture()).port;

async function listenOn(port: number): Promise<Server> {
  const s = createServer();
  onTestFinished(() => void s.close());
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, '127.0.0.1', resolve);
  });
  return s;
}

const req = (spec: string, targetHost = '127.0.0.1', name?: string): PublishRequest[] =>
  parsePublish(spec).map((mapping) => ({ mapping, targetHost, ...(name ? { name } : {}) }));

async function start(publish: PublishRequest[]): Promise<Publisher> {
  const f = await startPublisher({ publish });
  onTestFinished(() => f.destroy());
  return f;
}

/** openEcho opens a connection and checks one echo on it. */
async function openEcho(port: number): Promise<Socket & { echo(t: string): Promise<string> }> {
  const s = connect({ host: '127.0.0.1', port });
  onTestFinished(() => void s.destroy());
  s.setEncoding('utf8');
  s.on('error', () => undefined);
  const echo = (text: string) => roundTrip(s, text, 5000);
  await echo('hi');
  return Object.assign(s, { echo });
}

describe('startPublisher', () => {
  it('is what the library exports, also under its former names', () => {
    expect(api.Publisher).toBe(Publisher);
    expect(api.Forwarding).toBe(Publisher);
    expect(api.startForwarding).toBe(api.startPublisher);
  });

  it('reports bindings in order, with the port actually bound', async () => {
    const t = await echoServer();
    const f = await start([
      ...req(`127.0.0.1::${t}`),
      ...req(`127.0.0.1::${t}/udp`, '127.0.0.1', 'dns'),
    ]);
    expect(f.bindings).toEqual([
      {
        hostIp: '127.0.0.1',
        hostPort: expect.any(Number) as number,
        targetHost: '127.0.0.1',
        targetPort: t,
        protocol: 'tcp',
      },
      {
        name: 'dns',
        hostIp: '127.0.0.1',
        hostPort: expect.any(Number) as number,
        targetHost: '127.0.0.1',
        targetPort: t,
        protocol: 'udp',
      },
    ]);
    const c = await openEcho(f.bindings[0]!.hostPort);
    expect(await c.echo('abc')).toBe('abc');
    const stats = f.stats();
    expect(stats[0]).toMatchObject({ protocol: 'tcp', tcp: { connectionsTotal: 1 } });
    expect(stats[1]).toMatchObject({ protocol: 'udp', udp: { flowsActive: 0 } });
  });

  it('is all or nothing: a failing second mapping closes the first', async () => {
    const t = await echoServer();
    const first = await freePort();
    const busy = await listenOn(0);
    const busyPort = (busy.address() as { port: number }).port;
    await expect(
      startPublisher({
        publish: [...req(`127.0.0.1:${first}:${t}`), ...req(`127.0.0.1:${busyPort}:${t}`)],
      }),
    ).rejects.toMatchObject({
      code: 'ERR_BIND',
      message: `failed to bind host port 127.0.0.1:${busyPort}/tcp: address already in use`,
    });
    // nothing is left listening on the first port: we can bind it ourselves
    await listenOn(first);
  });

  it('refuses sctp before binding anything', async () => {
    const first = await freePort();
    await expect(
      startPublisher({ publish: [...req(`127.0.0.1:${first}:80`), ...req('127.0.0.1::80/sctp')] }),
    ).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
    await listenOn(first);
  });

  it('close() drains open connections, then resolves', async () => {
    const t = await echoServer();
    const f = await start(req(`127.0.0.1::${t}`));
    const c = await openEcho(f.bindings[0]!.hostPort);
    let closed = false;
    const closing = f.close(30_000).then(() => (closed = true));
    expect(await c.echo('still here')).toBe('still here');
    expect(closed).toBe(false);
    c.end();
    await withTimeout(closing, 5000, 'close after the client finished');
  });

  it('close() cuts what is left after the drain timeout', async () => {
    const t = await echoServer();
    const f = await start(req(`127.0.0.1::${t}`));
    const c = await openEcho(f.bindings[0]!.hostPort);
    const gone = new Promise((resolve) => c.once('close', resolve));
    await withTimeout(f.close(50), 5000, 'close with a short drain');
    await withTimeout(gone, 5000, 'connection cut');
  });
});

describe('Publisher.update (reload)', () => {
  it('keeps unchanged mappings and their live connections, adds new ones, drains removed ones', async () => {
    const t = await echoServer();
    const keepPort = await freePort();
    const dropPort = await freePort();
    const f = await start([
      ...req(`127.0.0.1:${keepPort}:${t}`),
      ...req(`127.0.0.1:${dropPort}:${t}`),
    ]);
    const kept = await openEcho(keepPort);
    const dropped = await openEcho(dropPort);

    const result = await f.update([
      ...req(`127.0.0.1:${keepPort}:${t}`),
      ...req(`127.0.0.1::${t}`),
    ]);
    expect(result).toEqual({ added: 1, removed: 1, kept: 1 });
    expect(f.bindings.map((b) => b.hostPort)[0]).toBe(keepPort);
    expect(await kept.echo('kept alive')).toBe('kept alive');
    // the removed mapping stops accepting, but its open connection drains normally
    expect(await dropped.echo('draining')).toBe('draining');
    await expect(openEcho(dropPort)).rejects.toThrow();
    const added = await openEcho(f.bindings[1]!.hostPort);
    expect(await added.echo('new')).toBe('new');
  });

  it('lets a host port move to another target in one reload', async () => {
    const t1 = await echoServer();
    const t2 = await echoServer();
    const port = await freePort();
    const f = await start(req(`127.0.0.1:${port}:${t1}`));
    await f.update(req(`127.0.0.1:${port}:${t2}`));
    expect(f.bindings).toMatchObject([{ hostPort: port, targetPort: t2 }]);
    expect(await (await openEcho(port)).echo('moved')).toBe('moved');
  });

  it('a failing reload changes nothing', async () => {
    const t = await echoServer();
    const port = await freePort();
    const busy = await listenOn(0);
    const busyPort = (busy.address() as { port: number }).port;
    const f = await start(req(`127.0.0.1:${port}:${t}`));
    const live = await openEcho(port);
    await expect(f.update(req(`127.0.0.1:${busyPort}:${t}`))).rejects.toMatchObject({
      code: 'ERR_BIND',
    });
    expect(f.bindings).toMatchObject([{ hostPort: port }]);
    expect(await live.echo('unchanged')).toBe('unchanged');
    expect(await (await openEcho(port)).echo('accepting')).toBe('accepting');
  });
});
