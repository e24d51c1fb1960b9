// findPeerLoop: loops that go round through other portpubs, from their state files' bindings.
import { describe, expect, it } from 'vitest';
import { findPeerLoop, peerLoopError, peerLoopGuard } from '../../src/publish/peer-loop.js';
import type { PortpubError } from '../../src/errors.js';
import { waitFor } from '../helpers/net.js';
import type { Binding } from '../../src/docker/report.js';
import { literalAddresses } from '../../src/publish/self-loop.js';

const b = (listen: string, target: string, protocol: 'tcp' | 'udp' = 'tcp'): Binding => {
  const [hostIp, hostPort] = listen.split(/:(?=\d+$)/);
  const [targetHost, targetPort] = target.split(/:(?=\d+$)/);
  return {
    hostIp: hostIp!,
    hostPort: Number(hostPort),
    targetHost: targetHost!,
    targetPort: Number(targetPort),
    protocol,
  };
};
const names = (path: { pid: number; binding: Binding }[] | undefined) =>
  path?.map((h) => `${h.pid}:${h.binding.hostPort}`);
/** Literals and localhost as at run time; one made-up name for a peer's named target. */
const literal = (host: string) =>
  Promise.resolve(host === 'db.test' ? ['127.0.0.1'] : (literalAddresses(host) ?? []));

describe('findPeerLoop', () => {
  it.each([
    [
      'two pointing at each other',
      [b('127.0.0.1:1000', '127.0.0.1:2000')],
      [{ pid: 2, bindings: [b('127.0.0.1:2000', '127.0.0.1:1000')] }],
      ['1:1000', '2:2000', '1:1000'],
    ],
    [
      'a wildcard listener on the way',
      [b('127.0.0.1:1000', '127.0.0.2:2000')],
      [{ pid: 2, bindings: [b('0.0.0.0:2000', '127.0.0.1:1000')] }],
      ['1:1000', '2:2000', '1:1000'],
    ],
    [
      'three round, through a name',
      [b('127.0.0.1:1000', '127.0.0.1:2000')],
      [
        { pid: 2, bindings: [b('127.0.0.1:2000', 'db.test:3000')] },
        { pid: 3, bindings: [b('::1:9', '::1:9'), b('0.0.0.0:3000', 'localhost:1000')] },
      ],
      ['1:1000', '2:2000', '3:3000', '1:1000'],
    ],
    [
      'a chain that ends at a service',
      [b('127.0.0.1:1000', '127.0.0.1:2000')],
      [{ pid: 2, bindings: [b('127.0.0.1:2000', '127.0.0.1:3000')] }],
      undefined,
    ],
    [
      'a chain through this process twice, ending at a service',
      [b('127.0.0.1:1000', '127.0.0.1:2000'), b('127.0.0.1:1001', '127.0.0.1:9999')],
      [{ pid: 2, bindings: [b('127.0.0.1:2000', '127.0.0.1:1001')] }],
      undefined,
    ],
    [
      'a loop among the others only',
      [b('127.0.0.1:1000', '127.0.0.1:2000')],
      [
        { pid: 2, bindings: [b('127.0.0.1:2000', '127.0.0.1:3000')] },
        { pid: 3, bindings: [b('127.0.0.1:3000', '127.0.0.1:2000')] },
      ],
      undefined,
    ],
    [
      'another protocol',
      [b('127.0.0.1:1000', '127.0.0.1:2000')],
      [{ pid: 2, bindings: [b('127.0.0.1:2000', '127.0.0.1:1000', 'udp')] }],
      undefined,
    ],
    [
      'another address',
      [b('127.0.0.1:1000', '127.0.0.1:2000')],
      [{ pid: 2, bindings: [b('127.0.0.3:2000', '127.0.0.1:1000')] }],
      undefined,
    ],
  ])('%s', async (_, mine, peers, want) => {
    expect(names(await findPeerLoop(1, mine, peers, literal))).toEqual(want);
  });

  it('ignores its own state file among the peers', async () => {
    const mine = [b('127.0.0.1:1000', '127.0.0.1:2000')];
    expect(await findPeerLoop(1, mine, [{ pid: 1, bindings: mine }], literal)).toBeUndefined();
  });

  it('words the refusal with the way round and what to do', async () => {
    const path = await findPeerLoop(
      1,
      [b('127.0.0.1:1000', '127.0.0.1:2000')],
      [{ pid: 2, bindings: [b('127.0.0.1:2000', '127.0.0.1:1000')] }],
      literal,
    );
    const err = peerLoopError(path!);
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe(
      "127.0.0.1:1000/tcp: the target 127.0.0.1:2000/tcp is portpub pid 2's listening socket " +
        "127.0.0.1:2000/tcp, which forwards to 127.0.0.1:1000: this portpub's own listening " +
        'socket 127.0.0.1:1000/tcp, so every connection would go round between the portpubs ' +
        'until descriptors run out. Point one of them at the service itself (another host ' +
        'port, or the service on another loopback address such as 127.0.0.2), or start the ' +
        'service with `portpub run`, which gives it its own network namespace',
    );
  });
});

describe('peerLoopGuard', () => {
  it('answers for the address a name reached: unknown first, then what the check found', async () => {
    // This process: 1000 to a name; the peer: 2000 back to 1000.
    const named = b('127.0.0.1:1000', 'db.test:2000');
    const mine = [named, b('127.0.0.1:1001', '127.0.0.9:9')];
    const peers = [{ pid: 2, bindings: [b('127.0.0.1:2000', '127.0.0.1:1000')] }];
    const loops: PortpubError[] = [];
    const guard = peerLoopGuard(
      () => mine,
      () => peers,
      (err) => loops.push(err),
      literal,
    );
    expect(guard(named, '127.0.0.1')).toBeUndefined();
    await waitFor(() => guard(named, '127.0.0.1') === true, 'the loop found');
    expect(loops).toHaveLength(1);
    expect(loops[0]!.message).toContain("portpub pid 2's listening socket 127.0.0.1:2000/tcp");
    // Another address the name may reach leads nowhere: no loop.
    expect(guard(named, '127.0.0.3')).toBeUndefined();
    await waitFor(() => guard(named, '127.0.0.3') === false, 'no loop through 127.0.0.3');
    expect(loops).toHaveLength(1);
  });
});
