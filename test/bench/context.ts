// One scenario's run against one subject: it owns every process it starts (targets, the subject)
// and stops them all, by PID, in cleanup(). Targets and clients are this benchmark's own programs
// (clients/*.js), each its own process, or iperf3/sockperf when they are used.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isListening, waitListening, type PortPool, type Proto } from './ports.js';
import {
  lastJson,
  runClient,
  startInteractive,
  startProcess,
  stopProcess,
  treeCpuSeconds,
  treeRssKiB,
  type ClientRun,
  type Interactive,
  type Proc,
} from './proc.js';
import type { Params } from './params.js';
import type { Subject } from './subjects.js';

/** HOST: all traffic stays on loopback. */
export const HOST = '127.0.0.1';

/** CLIENTS_DIR is where the compiled client and target programs live. */
const CLIENTS_DIR = new URL('./clients/', import.meta.url).pathname;

function logTail(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim().slice(-300).replace(/\s+/g, ' ') || '(no output)';
  } catch {
    return '(no log)';
  }
}

/** Served is a started subject: the port clients use, and its process (none for direct). */
export interface Served {
  port: number;
  proc?: Proc;
}

/** Tools are the external clients in use (undefined: absent or turned off by --clients node). */
export interface Tools {
  iperf3?: string;
  sockperf?: string;
}

/** Context is what a scenario uses to start things and measure them. */
export class Context {
  private readonly procs: Proc[] = [];
  private readonly holders: Interactive[] = [];
  private seq = 0;
  readonly notes: string[] = [];

  constructor(
    readonly subject: Subject,
    readonly params: Params,
    readonly tools: Tools,
    private readonly ports: PortPool,
    private readonly dir: string,
  ) {}

  port(): number {
    return this.ports.take();
  }

  note(text: string): void {
    this.notes.push(text);
  }

  private log(name: string): string {
    return join(this.dir, `${this.subject.name}-${name}-${this.seq}.log`);
  }

  /** program starts an external target (iperf3 -s, sockperf server) and waits until it listens. */
  async program(
    name: string,
    cmd: string,
    args: string[],
    proto: Proto,
    port: number,
  ): Promise<void> {
    const p = await startProcess(name, cmd, args, { log: this.log(name) });
    this.procs.push(p);
    if (!(await waitListening(proto, port, p, 10_000))) {
      throw new Error(`${name} target did not listen: ${logTail(p.log)}`);
    }
  }

  /** target starts one of our Node targets (clients/target.js) on a fresh port. */
  async target(mode: 'tcp-echo' | 'tcp-source' | 'udp-echo'): Promise<number> {
    const port = this.port();
    const cfg = JSON.stringify({ mode, host: HOST, port });
    const proto: Proto = mode === 'udp-echo' ? 'udp' : 'tcp';
    await this.program(mode, process.execPath, [join(CLIENTS_DIR, 'target.js'), cfg], proto, port);
    return port;
  }

  /** serve starts the subject fresh on a free port, forwarding to tport, and waits for it. */
  async serve(proto: Proto, tport: number): Promise<Served> {
    if (!this.subject.launch) return { port: tport };
    const lport = this.port();
    const tag = `${proto}-${++this.seq}`;
    const l = this.subject.launch({
      proto,
      lhost: HOST,
      lport,
      thost: HOST,
      tport,
      dir: this.dir,
      tag,
    });
    const p = await startProcess(this.subject.name, l.cmd, l.args, {
      log: this.log('subject'),
      ...(l.fd3 ? { fd3: true } : {}),
    });
    this.procs.push(p);
    // 10 s: a Node subject on a busy 2-core machine can take seconds to start; waiting ends
    // as soon as it listens.
    if (!(await waitListening(proto, lport, p, 10_000))) {
      const why = p.exited
        ? `exited (${p.exited.code ?? p.exited.signal})`
        : 'did not listen in 10 s';
      throw new Error(`start-failed: ${this.subject.name} ${why}: ${logTail(p.log)}`);
    }
    return { port: lport, proc: p };
  }

  /** client runs one of our Node clients to its JSON result. */
  async client(
    name: string,
    cfg: Record<string, unknown>,
    timeoutMs: number,
  ): Promise<Record<string, unknown>> {
    const args = [join(CLIENTS_DIR, `${name}.js`), JSON.stringify({ host: HOST, ...cfg })];
    return lastJson(await runClient(process.execPath, args, timeoutMs), name);
  }

  /** holder starts an interactive Node client (the idle-connection holder); killed in cleanup. */
  holder(name: string, cfg: Record<string, unknown>): Interactive {
    const args = [join(CLIENTS_DIR, `${name}.js`), JSON.stringify({ host: HOST, ...cfg })];
    const h = startInteractive(process.execPath, args);
    this.holders.push(h);
    return h;
  }

  /** tool runs an external client (iperf3, sockperf) to completion. */
  tool(cmd: string, args: string[], timeoutMs: number): Promise<ClientRun> {
    return runClient(cmd, args, timeoutMs);
  }

  cpu(s: Served): number | undefined {
    return s.proc ? treeCpuSeconds(s.proc.pid) : undefined;
  }

  rss(s: Served): number | undefined {
    return s.proc ? treeRssKiB(s.proc.pid) : undefined;
  }

  /** alive says whether the subject still runs (and still listens on its port). */
  alive(s: Served, proto: Proto): boolean {
    return !s.proc || (s.proc.exited === null && isListening(proto, s.port));
  }

  /** cleanup stops everything this context started, the subject first. */
  async cleanup(): Promise<void> {
    for (const h of this.holders.splice(0)) h.kill();
    const procs = this.procs.splice(0).reverse();
    await Promise.all(procs.map((p) => stopProcess(p)));
  }
}
