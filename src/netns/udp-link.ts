// UDP over a link: a recipient's conduit socket (bound inside its namespace on the link's
// address) keeps one flow per client, as the UDP forwarder does, and relays each flow's datagrams
// to the linked service: over its Unix link socket (a stream, so each datagram framed by a 2-byte
// length) or, for a service on the host, through a UDP socket connected to its target.
import dgram from 'node:dgram';
import net from 'node:net';

/** FLOW_IDLE_MS is Docker's UDP rule: a flow ends 90 s after its last datagram. */
export const FLOW_IDLE_MS = 90_000;

/** UdpPeer is the far side of one flow: send datagrams, get replies, close. */
export interface UdpPeer {
  send(msg: Buffer): void;
  close(): void;
}

/** OpenPeer opens the far side of a new flow; replies go to onReply. */
export type OpenPeer = (onReply: (msg: Buffer) => void) => Promise<UdpPeer>;

/**
 * framed turns a stream into datagrams: writes are `len(2, big-endian) + payload`, and what it
 * reads is split the same way (onMessage per datagram). A datagram over 65535 bytes cannot exist.
 */
export function framed(stream: net.Socket, onMessage: (msg: Buffer) => void): UdpPeer {
  let pending: Buffer = Buffer.alloc(0);
  stream.on('data', (d: Buffer) => {
    pending = pending.length === 0 ? d : Buffer.concat([pending, d]);
    while (pending.length >= 2) {
      const n = pending.readUInt16BE(0);
      if (pending.length < 2 + n) break;
      onMessage(pending.subarray(2, 2 + n));
      pending = pending.subarray(2 + n);
    }
  });
  stream.on('error', () => undefined);
  return {
    send: (msg) => {
      const head = Buffer.allocUnsafe(2);
      head.writeUInt16BE(msg.length, 0);
      stream.write(Buffer.concat([head, msg]));
    },
    close: () => stream.destroy(),
  };
}

/** hostPeer is a flow to host:port on this host's network. */
export function hostPeer(host: string, port: number): OpenPeer {
  return (onReply) =>
    new Promise((resolve, reject) => {
      const s = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
      s.once('error', reject);
      s.connect(port, host, () => {
        s.off('error', reject);
        s.on('error', () => undefined);
        s.on('message', (m) => onReply(m));
        resolve({
          send: (msg) => s.send(msg),
          close: () => {
            try {
              s.close();
            } catch {
              // already closed
            }
          },
        });
      });
    });
}

/**
 * udpConduit serves `listener` (a UDP socket of the recipient's namespace): each client address
 * gets its own flow to a peer from `open`, ended after FLOW_IDLE_MS without a datagram either way;
 * datagrams that arrive while a flow opens wait for it (at most 64). Returns the stop function.
 */
export function udpConduit(listener: dgram.Socket, open: OpenPeer, idleMs = FLOW_IDLE_MS) {
  interface Flow {
    peer?: UdpPeer;
    queue: Buffer[];
    timer: NodeJS.Timeout;
    closed: boolean;
  }
  const flows = new Map<string, Flow>();
  const end = (key: string, f: Flow) => {
    f.closed = true;
    clearTimeout(f.timer);
    f.peer?.close();
    flows.delete(key);
  };
  const touch = (key: string, f: Flow) => {
    clearTimeout(f.timer);
    f.timer = setTimeout(() => end(key, f), idleMs).unref();
  };
  listener.on('error', () => undefined);
  listener.on('message', (msg, rinfo) => {
    const key = `${rinfo.address}|${rinfo.port}`;
    let f = flows.get(key);
    if (!f) {
      const flow: Flow = { queue: [], timer: setTimeout(() => undefined, 0), closed: false };
      f = flow;
      flows.set(key, flow);
      open((reply) => {
        if (flow.closed) return;
        touch(key, flow);
        listener.send(reply, rinfo.port, rinfo.address);
      }).then(
        (peer) => {
          if (flow.closed) return peer.close();
          flow.peer = peer;
          for (const m of flow.queue.splice(0)) peer.send(m);
        },
        () => end(key, flow),
      );
    }
    touch(key, f);
    if (f.peer) f.peer.send(msg);
    else if (f.queue.length < 64) f.queue.push(msg);
  });
  return () => {
    for (const [key, f] of flows) end(key, f);
    try {
      listener.close();
    } catch {
      // already closed
    }
  };
}
