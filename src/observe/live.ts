// The live view of one serving process, as plain data: every binding with its counters and, on
// request, its open connections and UDP flows. The control socket, the metrics endpoint and the
// page all read this one shape; with --tcp-workers the workers' counters are summed in here.
import type { ConnectionInfo } from '../forwarder.js';
import { joinHostPort } from '../docker/report.js';
import type { BindingStats, BusyPollStats } from '../publish/publisher.js';

/** TcpStats and UdpStats are the forwarders' counters, as the supervisor reports them. */
export type TcpStats = Extract<BindingStats, { tcp: unknown }>['tcp'];
export type UdpStats = Extract<BindingStats, { udp: unknown }>['udp'];

/** LiveBinding is one bound host socket with its counters (summed over every serving process). */
export interface LiveBinding {
  service?: string;
  hostIp: string;
  hostPort: number;
  targetHost: string;
  targetPort: number;
  protocol: 'tcp' | 'udp';
  /** key is `hostIp:hostPort/protocol` (IPv6 bracketed): a binding's identity within a process. */
  key: string;
  tcp?: TcpStats;
  udp?: UdpStats;
}

/** LiveConnection is one open TCP connection or UDP flow, with the binding it came through. */
export interface LiveConnection extends ConnectionInfo {
  key: string;
  service?: string;
}

/** Snapshot is what one process reports: who it is, when it looked, and what it serves. */
export interface Snapshot {
  pid: number;
  /** at is Date.now() when the counters were read; rates come from two snapshots' difference. */
  at: number;
  name?: string;
  bindings: LiveBinding[];
  /** The native engine's busy polling, where that engine serves in this process. */
  busyPoll?: BusyPollStats;
  /** Present when asked for. */
  connections?: LiveConnection[];
}

/** WorkerForwarderReport is what a --tcp-workers process reports for one socket it serves. */
export interface WorkerForwarderReport {
  /** The log fields the main process gave it (service, binding `hostIp:hostPort/tcp`, target). */
  logFields: Record<string, string>;
  stats: TcpStats;
  connections?: ConnectionInfo[];
}

/** Served is the part of a running Publisher the live view reads. */
export interface Served {
  stats(): BindingStats[];
  /** connections lists each binding's live connections, in stats() order, where implemented. */
  connections?(): ConnectionInfo[][];
  /** busyPoll: the native engine thread's busy polling, where that engine serves. */
  busyPoll?(): BusyPollStats | undefined;
}

/** LiveSource produces snapshots of one process. */
export interface LiveSource {
  snapshot(withConnections: boolean): Promise<Snapshot>;
}

/** LiveSourceOptions: what is served here, and how to ask the other processes serving it. */
export interface LiveSourceOptions {
  served: Served;
  /** workers asks the --tcp-workers processes for their part (resolves [] without workers). */
  workers?: (withConnections: boolean) => Promise<WorkerForwarderReport[]>;
  name?: string;
  pid?: number;
}

/** bindingKey is a binding's identity within a process: `hostIp:hostPort/protocol`. */
export function bindingKey(b: { hostIp: string; hostPort: number; protocol: string }): string {
  return `${joinHostPort(b.hostIp, b.hostPort)}/${b.protocol}`;
}

/** liveSource reads the process's forwarders and, with --tcp-workers, adds the workers' part. */
export function liveSource(options: LiveSourceOptions): LiveSource {
  const pid = options.pid ?? process.pid;
  return {
    async snapshot(withConnections) {
      const reports = options.workers ? await options.workers(withConnections) : [];
      const stats = options.served.stats();
      const conns = withConnections ? options.served.connections?.() : undefined;
      const bindings: LiveBinding[] = [];
      const connections: LiveConnection[] = [];
      stats.forEach((s, i) => {
        const key = bindingKey(s);
        const service = s.name;
        const named = service !== undefined ? { service } : {};
        const b: LiveBinding = {
          ...named,
          hostIp: s.hostIp,
          hostPort: s.hostPort,
          targetHost: s.targetHost,
          targetPort: s.targetPort,
          protocol: s.protocol as 'tcp' | 'udp',
          key,
        };
        if ('tcp' in s) {
          const mine = reports.filter(
            (r) => r.logFields.binding === key && (r.logFields.service ?? undefined) === service,
          );
          b.tcp = mine.reduce((sum, r) => addTcp(sum, r.stats), { ...s.tcp });
          for (const r of mine) {
            for (const c of r.connections ?? []) connections.push({ ...c, key, ...named });
          }
        } else {
          b.udp = s.udp;
        }
        bindings.push(b);
        for (const c of conns?.[i] ?? []) connections.push({ ...c, key, ...named });
      });
      const busyPoll = options.served.busyPoll?.();
      return {
        pid,
        at: Date.now(),
        ...(options.name !== undefined ? { name: options.name } : {}),
        bindings,
        ...(busyPoll !== undefined ? { busyPoll } : {}),
        ...(withConnections ? { connections } : {}),
      };
    },
  };
}

/** addTcp sums two TCP counter sets field by field. */
function addTcp(a: TcpStats, b: TcpStats): TcpStats {
  const out = { ...a };
  for (const k of Object.keys(out) as (keyof TcpStats)[]) out[k] += b[k] ?? 0;
  return out;
}
