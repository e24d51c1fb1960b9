// The plumbing of links: a TCP relay between two sockets with half-close, and the Unix socket a
// running service offers its linked peers (`<ALIAS>` inside them reaches the service's port
// inside its own namespace through it), with the one-line header that names the port.
import type dgram from 'node:dgram';
import { rmSync } from 'node:fs';
import net from 'node:net';
import { framed, type OpenPeer } from './udp-link.js';

/**
 * relay copies a to b and b to a until both directions have ended: a FIN one way is end() on the
 * other (half-close), an error on either destroys both. Both must have allowHalfOpen.
 */
export function relay(a: net.Socket, b: net.Socket): void {
  const destroy = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', destroy);
  b.on('error', destroy);
  a.pipe(b);
  b.pipe(a);
  let ended = 0;
  const onEnd = () => {
    if (++ended === 2) destroy();
  };
  a.once('end', onEnd);
  b.once('end', onEnd);
  a.once('close', destroy);
  b.once('close', destroy);
}

/** MAX_HEADER bounds the header a peer sends before its bytes: `tcp 65535\n` and some slack. */
const MAX_HEADER = 32;

/** LinkServer is a service's Unix socket for its linked peers. */
export interface LinkServer {
  close(): void;
}

/**
 * serveLinks listens on `path` (in the state directory, 0700: only this user's portpubs can
 * connect). Each connection starts with `tcp <port>\n`; a port outside `ports` or a failed dial
 * closes it at once, which the peer's client sees as a reset connection, as Docker's would.
 */
export function serveLinks(
  path: string,
  ports: { tcp: ReadonlySet<number>; udp: ReadonlySet<number> },
  dial: {
    tcp: (port: number) => Promise<net.Socket>;
    udp: (port: number) => Promise<dgram.Socket>;
  },
): Promise<LinkServer> {
  rmSync(path, { force: true });
  const server = net.createServer({ allowHalfOpen: true }, (c) => {
    c.on('error', () => undefined);
    let head = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const nl = head.indexOf(10);
      if (nl < 0) {
        if (head.length > MAX_HEADER) c.destroy();
        return;
      }
      c.off('data', onData);
      c.pause();
      const m = /^(tcp|udp) (\d{1,5})$/.exec(head.subarray(0, nl).toString('latin1'));
      const protocol = m?.[1] === 'udp' ? 'udp' : 'tcp';
      const port = m ? Number(m[2]) : 0;
      if (!m || !ports[protocol].has(port)) {
        c.destroy();
        return;
      }
      const rest = head.subarray(nl + 1);
      if (protocol === 'udp') {
        serveUdp(c, rest, () => dial.udp(port));
        return;
      }
      dial.tcp(port).then(
        (s) => {
          if (c.destroyed) {
            s.destroy();
            return;
          }
          if (rest.length > 0) s.write(rest);
          relay(c, s);
          c.resume();
        },
        () => c.destroy(),
      );
    };
    c.on('data', onData);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      server.on('error', () => undefined);
      resolve({
        close: () => {
          server.close();
          rmSync(path, { force: true });
        },
      });
    });
  });
}

/** serveUdp relays one framed UDP flow of a peer to a socket dialled inside the namespace. */
function serveUdp(c: net.Socket, rest: Buffer, dial: () => Promise<dgram.Socket>): void {
  dial().then(
    (u) => {
      if (c.destroyed) {
        u.close();
        return;
      }
      u.on('error', () => undefined);
      const peer = framed(c, (msg) => u.send(msg));
      u.on('message', (m) => peer.send(m));
      c.once('close', () => {
        try {
          u.close();
        } catch {
          // already closed
        }
      });
      if (rest.length > 0) c.unshift(rest);
      c.resume();
    },
    () => c.destroy(),
  );
}

/** dialLinkUdp opens UDP flows to a linked service's port through its Unix socket. */
export function dialLinkUdp(path: string, port: number): OpenPeer {
  return (onReply) =>
    new Promise((resolve, reject) => {
      const s = net.connect({ path });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        s.write(`udp ${port}\n`);
        resolve(framed(s, onReply));
      });
    });
}

/** dialLink connects to a linked service's Unix socket for its TCP port. */
export function dialLink(path: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path, allowHalfOpen: true });
    s.once('error', reject);
    s.once('connect', () => {
      s.off('error', reject);
      s.write(`tcp ${port}\n`);
      resolve(s);
    });
  });
}
