// Pure formatting for `portpub stats` and `portpub top`: snapshots in, rows and aligned text
// out (docker stats' look: upper-case headers, columns three spaces apart, decimal units).
import { joinHostPort } from '../docker/report.js';
import type { LiveBinding, LiveConnection, Snapshot } from './live.js';

/** StatsRow is one binding's line of `portpub stats`, numbers raw (bytes, bytes per second). */
export interface StatsRow {
  pid: number;
  /** The service, else the run's --name, else `pid N`. */
  service: string;
  binding: string;
  target: string;
  protocol: 'tcp' | 'udp';
  /** TCP connections or UDP flows. */
  active: number;
  total: number;
  bytesClientToTarget: number;
  bytesTargetToClient: number;
  /** Bytes per second since the previous snapshot; null for the first. */
  rateClientToTarget: number | null;
  rateTargetToClient: number | null;
  /** TCP: connections refused over --max-connections; UDP: datagrams dropped, every reason. */
  drops: number;
}

/** statsRows turns snapshots (and the previous ones, for rates) into rows. */
export function statsRows(now: readonly Snapshot[], before: readonly Snapshot[] = []): StatsRow[] {
  const prev = new Map<string, { at: number; b: LiveBinding }>();
  for (const s of before)
    for (const b of s.bindings) prev.set(`${s.pid} ${b.key}`, { at: s.at, b });
  return now.flatMap((s) =>
    s.bindings.map((b) => {
      const c = counters(b);
      const p = prev.get(`${s.pid} ${b.key}`);
      const rate = (f: (x: ReturnType<typeof counters>) => number): number | null => {
        if (!p || s.at <= p.at) return null;
        return Math.max(0, ((f(c) - f(counters(p.b))) * 1000) / (s.at - p.at));
      };
      return {
        pid: s.pid,
        service: b.service ?? s.name ?? `pid ${s.pid}`,
        binding: joinHostPort(b.hostIp, b.hostPort),
        target: joinHostPort(b.targetHost, b.targetPort),
        protocol: b.protocol,
        ...c,
        rateClientToTarget: rate((x) => x.bytesClientToTarget),
        rateTargetToClient: rate((x) => x.bytesTargetToClient),
      };
    }),
  );
}

function counters(b: LiveBinding) {
  if (b.tcp) {
    return {
      active: b.tcp.connectionsActive,
      total: b.tcp.connectionsTotal,
      bytesClientToTarget: b.tcp.bytesClientToTarget,
      bytesTargetToClient: b.tcp.bytesTargetToClient,
      drops: b.tcp.connectionsRejected,
    };
  }
  const u = b.udp!;
  return {
    active: u.flowsActive,
    total: u.flowsTotal,
    bytesClientToTarget: u.bytesClientToTarget,
    bytesTargetToClient: u.bytesTargetToClient,
    drops: Object.values(u.drops).reduce((a, n) => a + n, 0),
  };
}

/** formatStats lays rows out as the stats table, header first. */
export function formatStats(rows: readonly StatsRow[]): string {
  const rate = (r: number | null) => (r === null ? '--' : `${humanBytes(r)}/s`);
  return align([
    [
      'SERVICE',
      'BINDING',
      'PROTO',
      'ACTIVE',
      'TOTAL',
      'TO TARGET',
      'TO CLIENT',
      'TO TARGET/S',
      'TO CLIENT/S',
      'DROPS',
    ],
    ...rows.map((r) => [
      r.service,
      `${r.binding} -> ${r.target}`,
      r.protocol,
      String(r.active),
      String(r.total),
      humanBytes(r.bytesClientToTarget),
      humanBytes(r.bytesTargetToClient),
      rate(r.rateClientToTarget),
      rate(r.rateTargetToClient),
      String(r.drops),
    ]),
  ]);
}

/** TopRow is one live connection or flow of `portpub top`. */
export interface TopRow {
  pid: number;
  service: string;
  protocol: 'tcp' | 'udp';
  client: string;
  host: string;
  targetLocal: string;
  target: string;
  ageMs: number;
  idleMs: number;
  bytesClientToTarget: number;
  bytesTargetToClient: number;
  state: LiveConnection['state'];
}

/** topRows lists every connection of the snapshots, oldest first. */
export function topRows(snaps: readonly Snapshot[]): TopRow[] {
  return snaps
    .flatMap((s) =>
      (s.connections ?? []).map((c) => ({
        pid: s.pid,
        service: c.service ?? s.name ?? `pid ${s.pid}`,
        protocol: c.protocol,
        client: c.client,
        host: c.host,
        targetLocal: c.targetLocal,
        target: c.target,
        ageMs: Math.max(0, Math.round(s.at - c.openedAt)),
        idleMs: Math.max(0, Math.round(s.at - c.lastActivityAt)),
        bytesClientToTarget: c.bytesClientToTarget,
        bytesTargetToClient: c.bytesTargetToClient,
        state: c.state,
      })),
    )
    .sort((a, b) => b.ageMs - a.ageMs);
}

/** formatTop lays connections out as the top table, header first. */
export function formatTop(rows: readonly TopRow[]): string {
  return align([
    [
      'SERVICE',
      'PROTO',
      'CLIENT',
      'HOST',
      'TARGET SIDE',
      'AGE',
      'IDLE',
      'TO TARGET',
      'TO CLIENT',
      'STATE',
    ],
    ...rows.map((r) => [
      r.service,
      r.protocol,
      r.client,
      r.host,
      `${r.targetLocal || '-'} -> ${r.target || '-'}`,
      humanDuration(r.ageMs),
      humanDuration(r.idleMs),
      humanBytes(r.bytesClientToTarget),
      humanBytes(r.bytesTargetToClient),
      r.state,
    ]),
  ]);
}

/** humanBytes is docker's decimal size with three significant digits: 0B, 999B, 1.23kB, 45.6MB. */
export function humanBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = n;
  let i = 0;
  while (v >= 999.5 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  if (i === 0) return `${Math.round(v)}B`;
  return `${Number(v.toPrecision(3))}${units[i]}`;
}

/** humanDuration is a short age: 850ms, 12s, 3m4s, 2h5m. */
export function humanDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60}s`;
  return `${Math.floor(m / 60)}h${m % 60}m`;
}

/** align pads every column to its widest cell, columns three spaces apart, lines ending in \n. */
function align(table: readonly string[][]): string {
  const widths: number[] = [];
  for (const row of table) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return table
    .map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('   '))
    .map((l) => `${l}\n`)
    .join('');
}
