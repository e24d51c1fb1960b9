import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  FALLBACK_RANGE,
  PortAllocator,
  readEphemeralRange,
  readReservedPorts,
  type Handle,
} from '../../src/publish/allocate.js';
import { listenTcp } from '../../src/tcp/forwarder.js';

const inUse = () => Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' });

/** fakeBinder records binds; ports in `busy` fail like the OS would. */
function fakeBinder(busy: Set<number> = new Set()) {
  const bound: { ip: string; port: number; closed: boolean }[] = [];
  const bind = (ip: string, port: number): Promise<Handle> => {
    if (busy.has(port)) return Promise.reject(inUse());
    const rec = { ip, port, closed: false };
    bound.push(rec);
    return Promise.resolve({ close: () => void (rec.closed = true) });
  };
  return { bind, bound };
}

function tmpFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'portpub-alloc-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'f');
  writeFileSync(file, text);
  return file;
}

async function listening(port = 0, host = '127.0.0.1'): Promise<Server> {
  const s = createServer();
  onTestFinished(() => void s.close());
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, host, () => resolve());
  });
  return s;
}

describe('kernel ranges', () => {
  it('reads ip_local_port_range and falls back to 49153-65535 like dockerd', () => {
    expect(readEphemeralRange(tmpFile('32768\t60999\n'))).toEqual({ start: 32768, end: 60999 });
    expect(readEphemeralRange('/nonexistent/portpub')).toEqual(FALLBACK_RANGE);
    expect(readEphemeralRange(tmpFile('garbage'))).toEqual({ start: 49153, end: 65535 });
  });

  it('reads ip_local_reserved_ports lists and ranges', () => {
    expect([...readReservedPorts(tmpFile('8080,9000-9002\n'))]).toEqual([8080, 9000, 9001, 9002]);
    expect(readReservedPorts(tmpFile('\n')).size).toBe(0);
    expect(readReservedPorts('/nonexistent/portpub').size).toBe(0);
  });
});

describe('PortAllocator bookkeeping (fake binds)', () => {
  const req = (hostPort: string, hostIps = ['0.0.0.0'], protocol: 'tcp' | 'udp' = 'tcp') => ({
    hostIps,
    hostPort,
    protocol,
  });

  it('hands out ephemeral ports sequentially from the start of the range, wrapping around', async () => {
    const a = new PortAllocator({ range: { start: 40000, end: 40002 }, reserved: new Set() });
    const { bind } = fakeBinder();
    const ports = [];
    for (let i = 0; i < 3; i++) ports.push((await a.allocate(req(''), bind)).port);
    expect(ports).toEqual([40000, 40001, 40002]);
    await expect(a.allocate(req('0'), bind)).rejects.toThrow(/all ports are allocated/);
  });

  it('continues after the last port handed out, and reuses released ports on wrap-around', async () => {
    const a = new PortAllocator({ range: { start: 40000, end: 40003 }, reserved: new Set() });
    const { bind } = fakeBinder();
    const first = await a.allocate(req(''), bind);
    await a.allocate(req(''), bind);
    first.release();
    expect((await a.allocate(req(''), bind)).port).toBe(40002);
    expect((await a.allocate(req(''), bind)).port).toBe(40003);
    expect((await a.allocate(req(''), bind)).port).toBe(40000);
  });

  it('keeps separate cursors and maps per protocol', async () => {
    const a = new PortAllocator({ range: { start: 40000, end: 40009 }, reserved: new Set() });
    const { bind } = fakeBinder();
    expect((await a.allocate(req('', ['0.0.0.0'], 'tcp'), bind)).port).toBe(40000);
    expect((await a.allocate(req('', ['0.0.0.0'], 'udp'), bind)).port).toBe(40000);
    expect((await a.allocate(req('8080', ['0.0.0.0'], 'tcp'), bind)).port).toBe(8080);
    expect((await a.allocate(req('8080', ['0.0.0.0'], 'udp'), bind)).port).toBe(8080);
  });

  it('skips reserved ports for automatic picks but not for explicit pools', async () => {
    const a = new PortAllocator({
      range: { start: 40000, end: 40009 },
      reserved: new Set([40000, 40001]),
    });
    const { bind } = fakeBinder();
    expect((await a.allocate(req(''), bind)).port).toBe(40002);
    expect((await a.allocate(req('40000-40001'), bind)).port).toBe(40000);
  });

  it('moves past ports the OS refuses, for ephemeral ports and pools', async () => {
    const a = new PortAllocator({ range: { start: 40000, end: 40009 }, reserved: new Set() });
    const { bind, bound } = fakeBinder(new Set([40000, 8082]));
    expect((await a.allocate(req(''), bind)).port).toBe(40001);
    // moby bridge test "host port range with busy port": 8080, 8081, then 8083 past busy 8082
    const pool = [];
    for (let i = 0; i < 3; i++) pool.push((await a.allocate(req('8080-8085'), bind)).port);
    expect(pool).toEqual([8080, 8081, 8083]);
    expect(bound.every((b) => !b.closed)).toBe(true);
  });

  it('a pool hands out each port once, then fails like the fourth `-p 9090-9092:80`', async () => {
    const a = new PortAllocator({ range: { start: 40000, end: 40009 }, reserved: new Set() });
    const { bind } = fakeBinder();
    const got = [];
    for (let i = 0; i < 3; i++) got.push((await a.allocate(req('9090-9092'), bind)).port);
    expect(got).toEqual([9090, 9091, 9092]);
    await expect(a.allocate(req('9090-9092'), bind)).rejects.toMatchObject({
      code: 'ERR_BIND',
      message: expect.stringContaining('all ports are allocated') as string,
    });
  });

  it("reports a port it already holds in Docker's words", async () => {
    const a = new PortAllocator({ range: { start: 40000, end: 40009 }, reserved: new Set() });
    const { bind } = fakeBinder();
    await a.allocate(req('8080'), bind);
    await expect(a.allocate(req('8080'), bind)).rejects.toThrow(
      'Bind for 0.0.0.0:8080 failed: port is already allocated',
    );
    // a specific address under a held wildcard, and the wildcard over a held specific address
    await expect(a.allocate(req('8080', ['127.0.0.1']), bind)).rejects.toThrow(
      'Bind for 127.0.0.1:8080 failed: port is already allocated',
    );
    await a.allocate(req('9000', ['127.0.0.1']), bind);
    await expect(a.allocate(req('9000', ['0.0.0.0']), bind)).rejects.toThrow(
      'Bind for 0.0.0.0:9000 failed: port is already allocated',
    );
    // IPv6 renders without brackets, as dockerd does
    await a.allocate(req('10000', ['::']), bind);
    await expect(a.allocate(req('10000', ['::']), bind)).rejects.toThrow(
      'Bind for :::10000 failed: port is already allocated',
    );
    // the other family is independent
    expect((await a.allocate(req('10000', ['0.0.0.0']), bind)).port).toBe(10000);
  });

  it('binds every address on the same port, all or nothing', async () => {
    const a = new PortAllocator({ range: { start: 40000, end: 40009 }, reserved: new Set() });
    const bound: { ip: string; closed: boolean }[] = [];
    const bind = (ip: string, port: number): Promise<Handle> => {
      if (ip === '::' && port === 40000) return Promise.reject(inUse());
      const rec = { ip, closed: false };
      bound.push(rec);
      return Promise.resolve({ close: () => void (rec.closed = true) });
    };
    const got = await a.allocate(req('', ['0.0.0.0', '::']), bind);
    expect(got.port).toBe(40001);
    expect(got.handles).toHaveLength(2);
    // the 0.0.0.0:40000 socket bound before [::]:40000 failed was closed again
    expect(bound.map((b) => [b.ip, b.closed])).toEqual([
      ['0.0.0.0', true],
      ['0.0.0.0', false],
      ['::', false],
    ]);
    await expect(a.allocate(req('8080', ['0.0.0.0', '::']), bind)).resolves.toBeDefined();
  });

  it('rejects an impossible range', () => {
    expect(() => new PortAllocator({ range: { start: 5, end: 4 } })).toThrow(RangeError);
  });
});

describe('PortAllocator with real sockets', () => {
  const tcp = (ip: string, port: number) => listenTcp(ip, port, { ipv6Only: ip === '::' });

  it('gives an ephemeral port inside ip_local_port_range', async () => {
    const a = new PortAllocator();
    const got = await a.allocate({ hostIps: ['127.0.0.1'], hostPort: '', protocol: 'tcp' }, tcp);
    onTestFinished(() => got.handles.forEach((h) => h.close()));
    const range = readEphemeralRange();
    expect(got.port).toBeGreaterThanOrEqual(range.start);
    expect(got.port).toBeLessThanOrEqual(range.end);
    expect((got.handles[0] as Server).address()).toMatchObject({
      address: '127.0.0.1',
      port: got.port,
    });
  });

  it('words an OS refusal as dockerd: failed to bind host port ...: address already in use', async () => {
    const other = await listening();
    const port = (other.address() as { port: number }).port;
    const a = new PortAllocator();
    await expect(
      a.allocate({ hostIps: ['127.0.0.1'], hostPort: String(port), protocol: 'tcp' }, tcp),
    ).rejects.toMatchObject({
      code: 'ERR_BIND',
      message: `failed to bind host port 127.0.0.1:${port}/tcp: address already in use`,
    });
  });

  it('explains an address that is not on this host', async () => {
    const a = new PortAllocator();
    await expect(
      a.allocate({ hostIps: ['192.0.2.1'], hostPort: '8080', protocol: 'tcp' }, tcp),
    ).rejects.toThrow(
      'failed to bind host port 192.0.2.1:8080/tcp: cannot assign requested address',
    );
  });
});
