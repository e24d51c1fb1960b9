// `portpub ps [-a] [--format json]`: the detached services (`run`, `portpub -d`, `up -d`) and
// the `run` ones in the foreground, as `docker ps` lists containers,
// with Docker's PORTS column (docker/cli DisplayablePorts) and its human durations (go-units).
import type { Command } from 'commander';
import { Option } from 'commander';
import { joinHostPort } from '../address.js';
import { UsageError } from '../errors.js';
import type { Binding } from '../docker/report.js';
import { liveness, listContainers, type ContainerRecord } from '../registry/containers.js';
import { readStates, stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';

/** registerPs adds `portpub ps`. */
export function registerPs(program: Command, ctx: CliContext): void {
  program
    .command('ps')
    .description(
      'list portpub run services and detached ones (-d), as docker ps does (running ones; -a for all)',
    )
    .option('-a, --all', 'show all services, not only running ones', false)
    .addOption(new Option('--format <format>', "'table' (default) or 'json' (one line each)"))
    .option('-q, --quiet', 'only print the ids', false)
    .action((opts: { all: boolean; format?: string; quiet: boolean }) => {
      const now = Date.now();
      // A running portpub's state file has its bindings as of now (`up` reloads change them).
      const live = new Map(readStates(stateDir()).map((s) => [s.pid, s.bindings]));
      const rows = listContainers()
        .filter((c) => opts.all || liveness(c) === 'running')
        .reverse() // newest first, as docker ps
        .map((c) => row(c, now, live));
      if (opts.quiet) {
        ctx.io.stdout.write(rows.map((r) => `${r.ID}\n`).join(''));
      } else if (opts.format === 'json') {
        ctx.io.stdout.write(rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
      } else if (opts.format === undefined || opts.format === 'table') {
        ctx.io.stdout.write(table(rows));
      } else {
        throw new UsageError(
          `--format: ps prints 'table' or 'json', not ${JSON.stringify(opts.format)}`,
        );
      }
    });
}

interface Row {
  ID: string;
  Names: string;
  Command: string;
  CreatedAt: string;
  RunningFor: string;
  State: string;
  Status: string;
  Ports: string;
  Networks: string;
}

function row(c: ContainerRecord, now: number, live: ReadonlyMap<number, Binding[]>): Row {
  const state = liveness(c);
  const bindings =
    (c.state.pid !== undefined ? live.get(c.state.pid) : undefined) ?? c.state.bindings;
  return {
    ID: c.id.slice(0, 12),
    Names: c.name,
    Command: goQuote(ellipsis([c.command, ...c.args].join(' '), 20)),
    CreatedAt: goTimeString(new Date(c.created)),
    RunningFor: `${humanDuration(now - Date.parse(c.created))} ago`,
    State: state === 'running' && c.state.restarting === true ? 'restarting' : state,
    Status: status(c, state, now),
    Ports: state === 'running' ? displayablePorts(bindings ?? [], c.exposed) : '',
    // A network of its own, published with -p and linked: what `docker run` gives without
    // --network, the default `bridge` (run takes `--network bridge` for it too).
    Networks: c.network === 'host' ? 'host' : 'bridge',
  };
}

/**
 * goTimeString is Go's time.Time.String() to the second in local time, as docker ps prints
 * CreatedAt: `2006-01-02 15:04:05 -0700 MST`. The zone's abbreviation is Intl's (en-US), where
 * it has one; else the offset (`+01`, `+0530`), as Go prints a zone tzdata names no letters for.
 * Intl knows fewer than tzdata: Europe/Berlin is `GMT+1` to it (so `+01` here), `CET` to Go.
 */
export function goTimeString(d: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  const day = `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
  const time = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  const east = -d.getTimezoneOffset();
  const sign = east < 0 ? '-' : '+';
  const hh = two(Math.floor(Math.abs(east) / 60));
  const mm = two(Math.abs(east) % 60);
  const named =
    new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' })
      .formatToParts(d)
      .find((p) => p.type === 'timeZoneName')?.value ?? '';
  const abbr = /^[A-Z]{2,5}$/.test(named) ? named : `${sign}${hh}${mm === '00' ? '' : mm}`;
  return `${day} ${time} ${sign}${hh}${mm} ${abbr}`;
}

function status(c: ContainerRecord, state: string, now: number): string {
  const s = c.state;
  if (state === 'running' && s.restarting === true) {
    // Waiting out its --restart delay, as Docker shows it.
    const at = Date.parse(s.finishedAt ?? c.created);
    return `Restarting (${s.exitCode ?? -1}) ${humanDuration(now - at)} ago`;
  }
  if (state === 'running') return `Up ${humanDuration(now - Date.parse(s.startedAt ?? c.created))}`;
  if (state === 'created') return 'Created';
  if (state === 'dead') return 'Dead';
  const at = Date.parse(s.finishedAt ?? c.created);
  return `Exited (${s.exitCode ?? -1}) ${humanDuration(now - at)} ago`;
}

const HEADERS: readonly (keyof Row)[] = ['ID', 'Command', 'RunningFor', 'Status', 'Ports', 'Names'];
const TITLES: Record<string, string> = {
  ID: 'CONTAINER ID',
  Command: 'COMMAND',
  RunningFor: 'CREATED',
  Status: 'STATUS',
  Ports: 'PORTS',
  Names: 'NAMES',
};

/** table lays rows out as Go's tabwriter does for docker ps: columns padded by 3 spaces. */
function table(rows: readonly Row[]): string {
  const cells = [HEADERS.map((h) => TITLES[h]!), ...rows.map((r) => HEADERS.map((h) => r[h]))];
  const widths = HEADERS.map((_, i) => Math.max(...cells.map((c) => [...c[i]!].length)));
  return cells
    .map((c) =>
      c
        .map((v, i) => (i === c.length - 1 ? v : v + ' '.repeat(widths[i]! - [...v].length + 3)))
        .join('')
        .trimEnd(),
    )
    .map((l) => `${l}\n`)
    .join('');
}

const GO_ESCAPES: Record<string, string> = {
  '\x07': '\\a',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\v': '\\v',
  '"': '\\"',
  '\\': '\\\\',
};

/** goQuote is Go's strconv.Quote for the text docker ps shows (control characters escaped). */
function goQuote(s: string): string {
  let body = '';
  for (const c of s) {
    const code = c.charCodeAt(0);
    const escaped = GO_ESCAPES[c];
    if (escaped !== undefined) body += escaped;
    else if (code < 0x20 || code === 0x7f) body += `\\x${code.toString(16).padStart(2, '0')}`;
    else body += c;
  }
  return `"${body}"`;
}

/** ellipsis is docker/cli's formatter.Ellipsis for ASCII-width text. */
function ellipsis(s: string, max: number): string {
  const chars = [...s];
  if (chars.length <= max) return s;
  return `${chars.slice(0, max - 1).join('')}…`;
}

/**
 * humanDuration is go-units HumanDuration: "Less than a second", "1 second", "N seconds",
 * "About a minute", "N minutes", "About an hour", "N hours", then days, weeks, months, years.
 */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const minutes = Math.floor(ms / 60_000);
  const hours = Math.round(ms / 3_600_000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(hours / 24 / 365)} years`;
}

interface Port {
  ip: string;
  privatePort: number;
  publicPort: number;
  type: string;
}

/**
 * displayablePorts is docker/cli's DisplayablePorts: published ports as
 * `ip:public->private/proto` (runs of consecutive ports grouped as `ip:a-b->a-b/proto` when
 * public equals private), exposed-only ones as `private/proto` (grouped too), sorted by private
 * port, then IP, public port and protocol.
 */
export function displayablePorts(
  bindings: readonly Binding[],
  exposed: readonly { port: number; protocol: string }[],
): string {
  const ports: Port[] = bindings.map((b) => ({
    ip: b.hostIp,
    privatePort: b.targetPort,
    publicPort: b.hostPort,
    type: b.protocol,
  }));
  for (const e of exposed) {
    if (!bindings.some((b) => b.targetPort === e.port && b.protocol === e.protocol)) {
      ports.push({ ip: '', privatePort: e.port, publicPort: 0, type: e.protocol });
    }
  }
  ports.sort(
    (a, b) =>
      a.privatePort - b.privatePort ||
      (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0) ||
      a.publicPort - b.publicPort ||
      (a.type < b.type ? -1 : a.type > b.type ? 1 : 0),
  );
  const groups = new Map<string, { first: number; last: number }>();
  const order: string[] = [];
  const result: string[] = [];
  const hostMappings: string[] = [];
  for (const p of ports) {
    let key = p.type;
    if (p.ip !== '') {
      if (p.publicPort !== p.privatePort) {
        hostMappings.push(`${joinHostPort(p.ip, p.publicPort)}->${p.privatePort}/${p.type}`);
        continue;
      }
      key = `${p.ip}/${p.type}`;
    }
    const g = groups.get(key);
    if (!g) {
      groups.set(key, { first: p.privatePort, last: p.privatePort });
      order.push(key);
      continue;
    }
    if (p.privatePort === g.last + 1) {
      g.last = p.privatePort;
      continue;
    }
    result.push(formGroup(key, g.first, g.last));
    groups.set(key, { first: p.privatePort, last: p.privatePort });
  }
  for (const key of order) {
    const g = groups.get(key)!;
    result.push(formGroup(key, g.first, g.last));
  }
  return [...result, ...hostMappings].join(', ');
}

function formGroup(key: string, first: number, last: number): string {
  const slash = key.lastIndexOf('/');
  const ip = slash < 0 ? '' : key.slice(0, slash);
  const type = slash < 0 ? key : key.slice(slash + 1);
  const group = first === last ? String(first) : `${first}-${last}`;
  return `${ip !== '' ? `${joinHostPort(ip, group)}->${group}` : group}/${type}`;
}
