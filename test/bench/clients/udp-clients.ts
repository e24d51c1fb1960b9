// Many UDP clients: `clients` sockets, each sends `count` datagrams ("client:seq") through the
// subject to a UDP echo, at most `inflight` outstanding in all, each given `replyMs` to come
// back. A reply counts only if it returns to the socket that sent it; one carrying another
// client's id is misrouted. No datagram is sent after `seconds`; those not sent count as lost.
import { createSocket, type Socket } from 'node:dgram';
import { config, deadline, result } from './common.js';

interface UdpClientsConfig {
  host: string;
  port: number;
  clients: number;
  count: number;
  inflight: number;
  replyMs: number;
  seconds: number;
}

const c = config<UdpClientsConfig>();
deadline((c.seconds + 10) * 1000);
const stopAt = Date.now() + c.seconds * 1000;
let sent = 0;
let home = 0;
let misrouted = 0;
let lost = 0;
const waiting = new Map<string, () => void>();

function bindAll(): Promise<Socket[]> {
  return Promise.all(
    Array.from(
      { length: c.clients },
      (_, id) =>
        new Promise<Socket>((resolve) => {
          const s = createSocket('udp4');
          s.on('error', () => {});
          s.on('message', (m: Buffer) => {
            const text = m.toString();
            if (!text.startsWith(`${id}:`)) {
              misrouted++;
              return;
            }
            waiting.get(text)?.();
          });
          s.bind(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
}

function one(s: Socket, id: number, seq: number): Promise<void> {
  const text = `${id}:${seq}`;
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      waiting.delete(text);
      lost++;
      resolve();
    }, c.replyMs);
    waiting.set(text, () => {
      clearTimeout(t);
      waiting.delete(text);
      home++;
      resolve();
    });
    sent++;
    s.send(text, c.port, c.host);
  });
}

async function main(): Promise<void> {
  const sockets = await bindAll();
  // Round robin over the clients: datagram `seq` of every client before `seq + 1` of any.
  const jobs: [number, number][] = [];
  for (let seq = 0; seq < c.count; seq++)
    for (let id = 0; id < c.clients; id++) jobs.push([id, seq]);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length && Date.now() < stopAt) {
      const [id, seq] = jobs[next++]!;
      await one(sockets[id]!, id, seq);
    }
  };
  await Promise.all(Array.from({ length: c.inflight }, worker));
  for (const s of sockets) s.close();
  const expected = c.clients * c.count;
  result({ expected, sent, home, lost, misrouted, homePct: (100 * home) / expected });
}

void main();
