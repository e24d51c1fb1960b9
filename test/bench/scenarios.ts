// The scenarios: each starts its own target(s) and a fresh subject on free ports, runs one
// bounded client, and returns the rows it measured. iperf3 and sockperf measure the bulk and
// latency rows when they are installed (stronger clients than Node); our Node clients otherwise.
import type { Context, Served } from './context.js';
import { HOST } from './context.js';
import type { ClientRun } from './proc.js';
import type { Proto } from './ports.js';
import { sleep } from './proc.js';

/** Measured is one row's value for one subject; `flawed` says why it cannot be the best peer. */
export interface Measured {
  value: number;
  client: string;
  flawed?: string;
}

export type Results = Record<string, Measured>;

/** Scenario is one kind of measurement. */
export interface Scenario {
  name: string;
  proto: Proto;
  run(ctx: Context): Promise<Results>;
}

const tail = (s: string): string => s.trim().slice(-200).replace(/\s+/g, ' ');
const num = (v: unknown): number => (typeof v === 'number' ? v : NaN);

function failed(what: string, r: ClientRun): Error {
  return new Error(
    `${what}: ${r.timedOut ? 'timed out' : `exit ${r.code}`}: ${tail(r.stderr + r.stdout)}`,
  );
}

interface BulkRun {
  gbps: number;
  bytes: number;
  client: string;
  flawed?: string;
}

async function iperfBulk(
  ctx: Context,
  iperf3: string,
  s: Served,
  streams: number,
): Promise<BulkRun> {
  const secs = Math.max(1, Math.round(ctx.params.bulkSecs));
  const args = ['-c', HOST, '-p', `${s.port}`, '-t', `${secs}`, '-P', `${streams}`, '-J'];
  let r = await ctx.tool(iperf3, args, (secs + 20) * 1000);
  if (/busy/.test(r.stdout)) {
    await sleep(500); // the server is still resetting from the last test
    r = await ctx.tool(iperf3, args, (secs + 20) * 1000);
  }
  let j: { error?: string; end?: { sum_received?: { bits_per_second: number; bytes: number } } };
  try {
    j = JSON.parse(r.stdout) as typeof j;
  } catch {
    throw failed('iperf3', r);
  }
  const sum = j.end?.sum_received;
  if (!sum) throw new Error(`iperf3: ${j.error ?? tail(r.stderr)}`);
  return { gbps: sum.bits_per_second / 1e9, bytes: sum.bytes, client: 'iperf3' };
}

async function nodeBulk(ctx: Context, s: Served, streams: number): Promise<BulkRun> {
  const secs = ctx.params.bulkSecs;
  const r = await ctx.client(
    'tcp-bulk',
    { port: s.port, streams, seconds: secs },
    (secs + 15) * 1000,
  );
  const errors = num(r.errors);
  return {
    gbps: num(r.gbps),
    bytes: num(r.bytes),
    client: 'node',
    ...(errors > 0 ? { flawed: `${errors} stream errors` } : {}),
  };
}

const tcpBulk: Scenario = {
  name: 'tcp-bulk',
  proto: 'tcp',
  async run(ctx) {
    const { iperf3 } = ctx.tools;
    let tport: number;
    if (iperf3) {
      tport = ctx.port();
      await ctx.program('iperf3', iperf3, ['-s', '-B', HOST, '-p', `${tport}`], 'tcp', tport);
    } else tport = await ctx.target('tcp-source');
    const s = await ctx.serve('tcp', tport);
    const out: Results = {};
    for (const streams of [1, 4]) {
      const cpu0 = ctx.cpu(s);
      const b = iperf3 ? await iperfBulk(ctx, iperf3, s, streams) : await nodeBulk(ctx, s, streams);
      const cpu1 = ctx.cpu(s);
      const flawed = ctx.alive(s, 'tcp') ? b.flawed : 'the subject exited';
      const extra = flawed ? { flawed } : {};
      out[`tcp_gbps_${streams}`] = { value: b.gbps, client: b.client, ...extra };
      if (cpu0 !== undefined && cpu1 !== undefined) {
        out[`cpu_gb_${streams}`] = {
          value: (cpu1 - cpu0) / (b.bytes / 1e9),
          client: b.client,
          ...extra,
        };
      }
      if (iperf3) await sleep(150);
    }
    return out;
  },
};

interface Latency {
  p50: number;
  p99: number;
  client: string;
  flawed?: string;
}

/** sockperfLatency runs sockperf ping-pong (full round trip) and reads its percentiles. */
async function sockperfLatency(ctx: Context, sockperf: string, proto: Proto): Promise<Latency> {
  const tport = ctx.port();
  const mode = proto === 'tcp' ? ['--tcp'] : [];
  await ctx.program(
    'sockperf',
    sockperf,
    ['server', ...mode, '-i', HOST, '-p', `${tport}`],
    proto,
    tport,
  );
  const s = await ctx.serve(proto, tport);
  // sockperf keeps no samples from runs under 2 s (its warm-up), and adds ~2 s of its own.
  const secs = Math.max(2, Math.round(ctx.params.rrSecs));
  const args = ['ping-pong', ...mode, '-i', HOST, '-p', `${s.port}`, '-t', `${secs}`];
  const r = await ctx.tool(sockperf, [...args, '--full-rtt', '--no-rdtsc'], (secs + 15) * 1000);
  // eslint-disable-next-line no-control-regex
  const out = (r.stdout + r.stderr).replace(/\x1b\[[0-9;]*m/g, '');
  const pick = (re: RegExp): number => Number(re.exec(out)?.[1] ?? NaN);
  const p50 = pick(/percentile 50\.000 =\s*([\d.]+)/);
  const p99 = pick(/percentile 99\.000 =\s*([\d.]+)/);
  if (r.code !== 0 || !Number.isFinite(p50)) throw failed('sockperf', r);
  const dropped = pick(/# dropped messages = (\d+)/);
  return { p50, p99, client: 'sockperf', ...(dropped > 0 ? { flawed: `${dropped} dropped` } : {}) };
}

async function nodeLatency(ctx: Context, proto: Proto): Promise<Latency> {
  const tport = await ctx.target(proto === 'tcp' ? 'tcp-echo' : 'udp-echo');
  const s = await ctx.serve(proto, tport);
  const p = ctx.params;
  const cfg = { proto, port: s.port, count: p.rrCount, seconds: p.rrSecs, warmup: 50 };
  const r = await ctx.client('pingpong', cfg, (p.rrSecs + 15) * 1000);
  const lost = num(r.lost);
  if (!(num(r.samples) > 0)) throw new Error(`ping-pong: no samples (${lost} lost)`);
  return {
    p50: num(r.p50),
    p99: num(r.p99),
    client: 'node',
    ...(lost > 0 ? { flawed: `${lost} lost` } : {}),
  };
}

function pingPong(proto: Proto): Scenario {
  return {
    name: `${proto}-rr`,
    proto,
    async run(ctx) {
      const { sockperf } = ctx.tools;
      const l = sockperf
        ? await sockperfLatency(ctx, sockperf, proto)
        : await nodeLatency(ctx, proto);
      const extra = l.flawed ? { flawed: l.flawed } : {};
      return {
        [`${proto}_p50_us`]: { value: l.p50, client: l.client, ...extra },
        [`${proto}_p99_us`]: { value: l.p99, client: l.client, ...extra },
      };
    },
  };
}

const tcpConnRate: Scenario = {
  name: 'tcp-connrate',
  proto: 'tcp',
  async run(ctx) {
    const s = await ctx.serve('tcp', await ctx.target('tcp-echo'));
    const p = ctx.params;
    const cfg = { port: s.port, clients: p.connClients, count: p.connCount, seconds: p.connSecs };
    const r = await ctx.client('connrate', cfg, (p.connSecs + 15) * 1000);
    const errors = num(r.errors);
    if (errors > 0) ctx.note(`${errors} connection errors (first: ${String(r.firstError)})`);
    const flawed = errors > 0 ? { flawed: `${errors} errors` } : {};
    return { conn_per_s: { value: num(r.perSecond), client: 'node', ...flawed } };
  },
};

const tcpIdle: Scenario = {
  name: 'tcp-idle',
  proto: 'tcp',
  async run(ctx): Promise<Results> {
    if (ctx.subject.kind === 'direct') return {}; // no process to measure
    const s = await ctx.serve('tcp', await ctx.target('tcp-echo'));
    await sleep(300); // let the subject settle after its start
    const before = ctx.rss(s)!;
    const p = ctx.params;
    const maxSeconds = 60;
    const holder = ctx.holder('idle', {
      port: s.port,
      count: p.idleConns,
      batch: p.idleBatch,
      maxSeconds,
    });
    try {
      const opened = await holder.next(maxSeconds * 1000);
      if (!opened) throw new Error(`idle holder: no answer: ${tail(holder.stderr())}`);
      await sleep(300);
      const withConns = ctx.rss(s)!;
      holder.send('check');
      const alive = num((await holder.next(15_000))?.alive);
      const ok = num(opened.opened);
      const problems = [
        num(opened.failed) > 0 ? `${num(opened.failed)} failed to open` : '',
        alive < ok ? `${ok - (alive || 0)} died while held` : '',
        ctx.alive(s, 'tcp') ? '' : 'the subject exited',
      ].filter(Boolean);
      if (problems.length > 0) ctx.note(`idle: ${problems.join(', ')}`);
      if (!(ok > 0)) throw new Error('idle: no connection opened');
      const flawed = problems.length > 0 ? { flawed: problems.join(', ') } : {};
      return { idle_kib: { value: (withConns - before) / ok, client: 'node', ...flawed } };
    } finally {
      holder.kill();
    }
  },
};

const udpClients: Scenario = {
  name: 'udp-clients',
  proto: 'udp',
  async run(ctx) {
    const s = await ctx.serve('udp', await ctx.target('udp-echo'));
    const p = ctx.params;
    const cfg = {
      port: s.port,
      clients: p.udpClients,
      count: p.udpCount,
      inflight: 64,
      replyMs: 500,
      seconds: p.udpSecs,
    };
    const r = await ctx.client('udp-clients', cfg, (p.udpSecs + 15) * 1000);
    const misrouted = num(r.misrouted);
    const lost = num(r.lost) + num(r.expected) - num(r.sent);
    if (lost + misrouted > 0) {
      ctx.note(`${p.udpClients} clients x ${p.udpCount}: ${lost} lost, ${misrouted} misrouted`);
    }
    const flawed = misrouted > 0 ? { flawed: `${misrouted} misrouted` } : {};
    return { udp_home_pct: { value: num(r.homePct), client: 'node', ...flawed } };
  },
};

export const SCENARIOS: Scenario[] = [
  tcpBulk,
  pingPong('tcp'),
  tcpConnRate,
  tcpIdle,
  pingPong('udp'),
  udpClients,
];
