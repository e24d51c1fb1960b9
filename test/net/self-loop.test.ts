// A target that is portpub's own listening socket is refused at start and on reload (issue 13
// defect 1, start-time part): `-p 127.0.0.1:5555:5555` to 127.0.0.1 forwarded into itself until
// descriptors ran out. Also the hint when the service itself holds the port being published.
import { BlockList, createServer, type Server } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parsePublish } from '../../src/docker/spec.js';
import { findSelfLoop, targetAddresses, type LoopCandidate } from '../../src/publish/self-loop.js';
import { startPublisher, type PublishRequest } from '../../src/publish/publisher.js';
import { reservePorts } from '../helpers/ports.js';

const req = (spec: string, targetHost = '127.0.0.1', name?: string): PublishRequest[] =>
  parsePublish(spec).map((mapping) => ({ mapping, targetHost, ...(name ? { name } : {}) }));

async function start(publish: PublishRequest[]) {
  const f = await startPublisher({ publish });
  onTestFinished(() => f.destroy());
  return f;
}

async function listen(port: number, host = '127.0.0.1'): Promise<Server> {
  const s = createServer();
  onTestFinished(() => void s.close());
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen({ port, host, exclusive: true }, resolve);
  });
  return s;
}

const selfLoop = (message: string): unknown =>
  expect.objectContaining({
    code: 'ERR_SELF_LOOP',
    exitCode: 2,
    message: expect.stringContaining(message) as string,
  });

describe('start refuses a target that is its own listening socket', () => {
  it('127.0.0.1:P:P to 127.0.0.1, saying why and what to do, and binds nothing', async () => {
    const p = await reservePorts(1);
    const err = await startPublisher({ publish: req(`127.0.0.1:${p}:${p}`) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toEqual(
      selfLoop(
        `-p 127.0.0.1:${p}:${p}/tcp: the target 127.0.0.1:${p}/tcp is portpub's own listening ` +
          `socket 127.0.0.1:${p}/tcp, so every connection would be forwarded back into portpub`,
      ),
    );
    const message = (err as Error).message;
    expect(message).toContain('Publish on another host port');
    expect(message).toContain('127.0.0.2');
    expect(message).toContain('--target 127.0.0.2');
    expect(message).toContain('portpub run');
    // Published on one address, the service can take another: no word about wildcards.
    expect(message).not.toContain('publish on one address only');
    await listen(p); // nothing was left bound
  });

  it('asks for one address to publish on when the loop is through a wildcard socket', async () => {
    const p = await reservePorts(1);
    const err = await startPublisher({ publish: req(`${p}:${p}`) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    // 127.0.0.2 alone would loop too: 0.0.0.0 takes it.
    expect((err as Error).message).toContain(
      `(--target 127.0.0.2) and publish on one address only, such as -p 127.0.0.1:${p}:${p} ` +
        '(0.0.0.0 takes every local address, 127.0.0.2 too)',
    );
  });

  it('the wildcard form P:P to 127.0.0.1 (TCP) and to localhost (UDP)', async () => {
    const p = await reservePorts(1);
    await expect(startPublisher({ publish: req(`${p}:${p}`) })).rejects.toThrow(
      selfLoop(`socket 0.0.0.0:${p}/tcp`),
    );
    await expect(startPublisher({ publish: req(`${p}:${p}/udp`, 'localhost') })).rejects.toThrow(
      selfLoop(`the target localhost:${p}/udp (127.0.0.1)`),
    );
  });

  it("one mapping's target that is another mapping's socket, named by service", async () => {
    const p = await reservePorts(2);
    const publish = [
      ...req(`127.0.0.1:${p}:${p + 1}`, '127.0.0.1', 'web'),
      ...req(`127.0.0.1:${p + 1}:80`, '10.255.255.1', 'api'),
    ];
    await expect(startPublisher({ publish })).rejects.toThrow(
      selfLoop(`service web: 127.0.0.1:${p}:${p + 1}/tcp: the target 127.0.0.1:${p + 1}/tcp`),
    );
    await expect(startPublisher({ publish })).rejects.toThrow(
      selfLoop('--target-for web=127.0.0.2'),
    );
  });

  it('a pool whose picked port is the target port, caught once bound', async () => {
    const p = await reservePorts(2);
    await expect(startPublisher({ publish: req(`127.0.0.1:${p}-${p + 1}:${p}`) })).rejects.toThrow(
      selfLoop(`socket 127.0.0.1:${p}/tcp`),
    );
    await listen(p);
    await listen(p + 1);
  });

  it('accepts the same port on another loopback address', async () => {
    const p = await reservePorts(1);
    const f = await start(req(`127.0.0.1:${p}:${p}`, '127.0.0.2'));
    expect(f.bindings).toHaveLength(1);
  });

  it('refuses a reload that would loop, keeping what runs', async () => {
    const p = await reservePorts(2);
    const f = await start(req(`127.0.0.1:${p}:80`, '127.0.0.2'));
    await expect(
      f.update([...req(`127.0.0.1:${p}:80`, '127.0.0.2'), ...req(`127.0.0.1:${p + 1}:${p}`)]),
    ).rejects.toThrow(selfLoop(`the target 127.0.0.1:${p}/tcp is portpub's own`));
    expect(f.bindings.map((b) => b.hostPort)).toEqual([p]);
    await listen(p + 1);
  });
});

describe('a bind refused because the service holds the port', () => {
  it('says so in a hint', async () => {
    const p = await reservePorts(1);
    await listen(p); // the service, on the port it would be published on
    await expect(
      startPublisher({ publish: req(`127.0.0.1:${p}:${p}`, '127.0.0.3') }),
    ).rejects.toThrow(
      expect.objectContaining({
        code: 'ERR_BIND',
        message: expect.stringMatching(
          new RegExp(
            `^failed to bind host port 127\\.0\\.0\\.1:${p}/tcp: address already in use \\(hint: ` +
              `the service at 127\\.0\\.0\\.3:${p} is probably holding this port itself`,
          ),
        ) as string,
      }),
    );
  });
});

describe('findSelfLoop', () => {
  const local = new BlockList();
  local.addSubnet('127.0.0.0', 8, 'ipv4');
  local.addAddress('::1', 'ipv6');
  local.addAddress('192.0.2.7', 'ipv4');
  const cand = (spec: string, ...addresses: string[]): LoopCandidate => ({
    mapping: parsePublish(spec)[0]!,
    targetHost: addresses[0]!,
    addresses,
  });
  const sock = (hostIp: string, hostPort: number, protocol = 'tcp') => ({
    hostIp,
    hostPort,
    protocol,
  });

  it.each([
    { what: 'same address', c: cand('80', '127.0.0.1'), l: sock('127.0.0.1', 80), loops: true },
    { what: 'other port', c: cand('80', '127.0.0.1'), l: sock('127.0.0.1', 81), loops: false },
    {
      what: 'other protocol',
      c: cand('80', '127.0.0.1'),
      l: sock('127.0.0.1', 80, 'udp'),
      loops: false,
    },
    {
      what: 'v4 wildcard, local target',
      c: cand('80', '192.0.2.7'),
      l: sock('0.0.0.0', 80),
      loops: true,
    },
    {
      what: 'v4 wildcard, remote target',
      c: cand('80', '192.0.2.8'),
      l: sock('0.0.0.0', 80),
      loops: false,
    },
    {
      what: 'v6 wildcard (v6 only), v4 target',
      c: cand('80', '127.0.0.1'),
      l: sock('::', 80),
      loops: false,
    },
    { what: 'v6 wildcard, ::1', c: cand('80', '::1'), l: sock('::', 80), loops: true },
    { what: 'v6 text forms', c: cand('80', '0:0:0:0:0:0:0:1'), l: sock('::1', 80), loops: true },
    {
      what: 'IPv4-mapped target',
      c: cand('80', '::ffff:127.0.0.1'),
      l: sock('127.0.0.1', 80),
      loops: true,
    },
    { what: 'unspecified target', c: cand('80', '0.0.0.0'), l: sock('127.0.0.1', 80), loops: true },
    {
      what: 'any resolved address',
      c: cand('80', '10.0.0.9', '127.0.0.1'),
      l: sock('0.0.0.0', 80),
      loops: true,
    },
  ])('$what: $loops', ({ c, l, loops }) => {
    expect(findSelfLoop([c], [l], local) !== undefined).toBe(loops);
  });
});

describe('targetAddresses', () => {
  it('takes literals and localhost as they are, and gives up on a name it cannot resolve', async () => {
    expect(await targetAddresses('127.0.0.9')).toEqual(['127.0.0.9']);
    expect(await targetAddresses('::1')).toEqual(['::1']);
    expect(await targetAddresses('LocalHost')).toEqual(['127.0.0.1', '::1']);
    // Unresolvable, or the resolver too slow: no addresses (within the lookup bound either way).
    expect(await targetAddresses('no-such-host.invalid')).toEqual([]);
  });
});
