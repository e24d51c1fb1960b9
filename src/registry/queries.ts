// The read side of running portpubs: `portpub port`, `env`, `run --link` and `reload` as functions
// of the live states (state.ts `readStates`) that return text or throw; src/cli prints and exits.
import { isIPv4 } from 'node:net';
import { ERR_NO_RELOAD_TARGET, PortpubError, UsageError, EXIT_RUNTIME } from '../errors.js';

export { ERR_NO_RELOAD_TARGET };
import { formatDotenv, formatExport, linkEnv, parseLink, type EnvVar } from '../docker/links.js';
import {
  formatPortLines,
  joinHostPort,
  naturalCompare,
  parsePortArg,
  queryPort,
  toPortMap,
  type Binding,
} from '../docker/report.js';
import { stateDir, type ServiceState, type State } from './state.js';
import {
  ERR_NOT_RUNNING,
  ERR_NO_SUCH_SERVICE,
  ERR_AMBIGUOUS_SERVICE,
  ERR_LINK_TARGET,
} from '../errors.js';

/** Codes raised here; defined in the one catalog, src/errors.ts. */
export { ERR_NOT_RUNNING, ERR_NO_SUCH_SERVICE, ERR_AMBIGUOUS_SERVICE, ERR_LINK_TARGET };

/** DEFAULT_PARENT is the `<parent>` of `<ALIAS>_NAME=/<parent>/<alias>` when none is given. */
export const DEFAULT_PARENT = 'portpub';

/** ALL_LABEL stands for the container name in `docker port`'s error when no NAME is given. */
const ALL_LABEL = 'portpub';

/** Selection is the bindings a NAME stands for, and the name to use in messages. */
export interface Selection {
  label: string;
  bindings: Binding[];
}

/** Found is a Selection and, for a compose service, what its bindings alone do not give. */
interface Found extends Selection {
  service?: ServiceState;
}

/**
 * selectBindings resolves NAME the way `portpub port NAME` does, first match wins:
 * a service name (bindings carrying that `name`), then a run's `--name` (all its bindings), then
 * a pid (digits equal to a live state's pid; all its bindings). Without NAME: every binding of
 * every live portpub, labelled `portpub`. A service or run name found in more than one live
 * portpub is refused (ERR_AMBIGUOUS_SERVICE) rather than merged, since the two may forward to
 * different targets; the pid then picks one. `dir` only appears in the not-running message.
 */
export function selectBindings(
  states: readonly State[],
  name?: string,
  dir: string = stateDir(),
): Selection {
  if (states.length === 0) {
    throw new PortpubError(
      ERR_NOT_RUNNING,
      `no running portpub found (state dir: ${dir})`,
      EXIT_RUNTIME,
    );
  }
  if (name === undefined) return { label: ALL_LABEL, bindings: states.flatMap((s) => s.bindings) };
  const found = findSelection(states, name, dir);
  return { label: found.label, bindings: found.bindings };
}

/** findSelection is selectBindings for one NAME, keeping the service record serviceEnv needs. */
function findSelection(states: readonly State[], name: string, dir: string): Found {
  if (states.length === 0) return selectBindings(states, name, dir); // throws ERR_NOT_RUNNING
  const found = findByName(states, name);
  if (found) return found;
  throw new PortpubError(
    ERR_NO_SUCH_SERVICE,
    `no such service: ${name} (running: ${runningNames(states).join(', ')})`,
    EXIT_RUNTIME,
  );
}

/** PortArgs are `portpub port [NAME] [TARGETPORT[/PROTO]] [--json]`. */
export interface PortArgs {
  name?: string;
  port?: string;
  json?: boolean;
  /** State directory, named in the not-running error; defaults to stateDir(). */
  dir?: string;
}

/**
 * portCommand is `docker port`: without a port, `<port>/<proto> -> <hostIp>:<hostPort>` lines in
 * natural order; with one, its `<hostIp>:<hostPort>` lines, or ERR_NO_PORT
 * `no public port '<arg>' published for <name>`. Lines end with `\n`; no bindings, empty string.
 *
 * A lone argument that names no service, run or pid but reads as a port (`portpub port 80`,
 * `portpub port 53/udp`) is the port, asked of every live portpub.
 *
 * `--json` prints one line of JSON in `docker inspect`'s `.NetworkSettings.Ports` shape (what
 * `docker inspect -f '{{json .NetworkSettings.Ports}}'` prints): `{"80/tcp":[{"HostIp":"0.0.0.0",
 * "HostPort":"8080"}]}`; with a port, just that port's list, `[{"HostIp":...,"HostPort":...}]`.
 * Bindings appear in the same order as the text lines.
 */
export function portCommand(states: readonly State[], args: PortArgs): string {
  let { name, port } = args;
  if (name !== undefined && port === undefined && states.length > 0) {
    if (!findByName(states, name) && readsAsPort(name)) {
      port = name;
      name = undefined;
    }
  }
  const { label, bindings } = selectBindings(states, name, args.dir);
  const sorted = [...bindings].sort((a, b) => naturalCompare(portLine(a), portLine(b)));

  if (port === undefined) {
    if (args.json) return `${JSON.stringify(toPortMap(sorted))}\n`;
    return lines(formatPortLines(sorted));
  }
  const text = queryPort(sorted, port, label); // validates `port`, throws ERR_NO_PORT
  if (!args.json) return lines(text);
  const { port: number, protocol } = parsePortArg(port);
  const list = sorted
    .filter((b) => b.targetPort === number && b.protocol === protocol)
    .map((b) => ({ HostIp: b.hostIp, HostPort: String(b.hostPort) }));
  return `${JSON.stringify(list)}\n`;
}

/** LinkOptions are what every link shares: the receiving program's name and the address mode. */
export interface LinkOptions {
  /** `<parent>` in `<ALIAS>_NAME=/<parent>/<alias>`; default `portpub`. */
  parent?: string;
  /** Point the values at the published host sockets instead of the target (see envCommand). */
  published?: boolean;
  /** State directory, named in the not-running error; defaults to stateDir(). */
  dir?: string;
}

/** EnvArgs are `portpub env SERVICE [--alias ALIAS] [--parent NAME] [--published] [--format F]`. */
export interface EnvArgs extends LinkOptions {
  service: string;
  /** Link alias; default the service name as given. */
  alias?: string;
  /** `export KEY='value'` lines for `eval` (default) or `KEY=value` lines for `--env-file`. */
  format?: 'export' | 'dotenv';
}

/**
 * envCommand prints the variables `docker run --link SERVICE:ALIAS` sets (links.ts `linkEnv`, in
 * its order): the ports are the distinct target (port, protocol) pairs of SERVICE's bindings and
 * the address is their target host, which must be the same for all of them (ERR_LINK_TARGET).
 * SERVICE is resolved as selectBindings resolves NAME.
 *
 * A compose service's `expose:` ports (recorded by `portpub up`) count too, at the service's
 * target; the service's own environment (`<ALIAS>_ENV_*`) is never produced.
 *
 * `--published` has no Docker equivalent; it is for a program on the host that was written for the
 * link. The NAMES stay keyed by the target port (`DB_PORT_5432_TCP` for `-p 49153:5432`), so the
 * program finds the variables it expects, while the VALUES say where to connect from the host:
 * `_ADDR` is the published host address (`0.0.0.0` becomes `127.0.0.1`, `::` becomes `::1`; an
 * IPv4 binding is preferred where a port has both families), `_PORT` the published host port, and
 * the URLs `<proto>://<addr>:<hostPort>` (an IPv6 address bracketed, unlike Docker's IPv4-only
 * format). The `_START`/`_END` run variables keep the target run's shape: their values are the
 * published endpoints of the run's first and last port, which are only a contiguous range when the
 * host ports are too.
 */
export function envCommand(states: readonly State[], args: EnvArgs): string {
  if (args.alias === '') throw new UsageError('--alias must not be empty');
  const vars = serviceEnv(states, args.service, args.alias ?? args.service, args);
  return args.format === 'dotenv' ? formatDotenv(vars) : formatExport(vars);
}

/**
 * linkedEnv is the environment for `portpub run --link SERVICE[:ALIAS] ...`: each link parsed as
 * docker/cli's ParseLink does and expanded as envCommand does; a later link's variable wins.
 */
export function linkedEnv(
  states: readonly State[],
  links: readonly string[],
  opts: LinkOptions = {},
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const link of links) {
    const { name, alias } = parseLink(link);
    for (const [key, value] of serviceEnv(states, name, alias, opts)) env[key] = value;
  }
  return env;
}

/**
 * findReloadTarget picks the `portpub up` (a state with `configFile`) that `portpub reload`
 * signals: the one with `pid` if given, else the only one; none, or several without a pid, is
 * ERR_NO_RELOAD_TARGET naming them as `pid 123 (/path/portpub.yaml)`.
 */
export function findReloadTarget(
  states: readonly State[],
  pid?: number,
  dir: string = stateDir(),
): State {
  const ups = states.filter((s) => s.configFile !== undefined);
  const describe = (s: State) => `pid ${s.pid} (${s.configFile})`;
  if (pid !== undefined) {
    const state = states.find((s) => s.pid === pid);
    if (state?.configFile !== undefined) return state;
    const why = state ? 'serves no config file, so there is nothing to reload' : 'is not running';
    throw new PortpubError(ERR_NO_RELOAD_TARGET, `portpub pid ${pid} ${why}`, EXIT_RUNTIME);
  }
  if (ups.length === 1) return ups[0]!;
  if (ups.length === 0) {
    throw new PortpubError(
      ERR_NO_RELOAD_TARGET,
      `no running portpub up found (state dir: ${dir})`,
      EXIT_RUNTIME,
    );
  }
  throw new PortpubError(
    ERR_NO_RELOAD_TARGET,
    `several portpub up are running: ${ups.map(describe).join(', ')}; say which by pid`,
    EXIT_RUNTIME,
  );
}

/**
 * findByName is selectBindings' matching, undefined when nothing matches. A compose service
 * answers to its service name, its `container_name:`, and compose's default container name
 * `<project>-<service>-1`; a name that fits services of more than one live portpub (two projects
 * with a `db`, say) is refused, naming the projects and an unambiguous name for each.
 */
function findByName(states: readonly State[], name: string): Found | undefined {
  const matches: { state: State; service: ServiceState }[] = [];
  for (const state of states) {
    for (const service of servicesOf(state)) {
      if (
        service.name === name ||
        service.containerName === name ||
        (state.project !== undefined && `${state.project}-${service.name}-1` === name)
      ) {
        matches.push({ state, service });
      }
    }
  }
  if (matches.length > 0) {
    if (matches.length > 1) ambiguousService(name, matches);
    const { state, service } = matches[0]!;
    return {
      label: name,
      bindings: state.bindings.filter((b) => b.name === service.name),
      service,
    };
  }
  const byRun = states.filter((s) => s.name === name);
  if (byRun.length > 0) {
    onlyOne(byRun, 'name', name);
    return { label: name, bindings: byRun[0]!.bindings };
  }
  if (/^[0-9]+$/.test(name)) {
    const byPid = states.find((s) => s.pid === Number(name));
    if (byPid) return { label: name, bindings: byPid.bindings };
  }
  return undefined;
}

/**
 * servicesOf lists a state's services: those its `services` record (with expose: and
 * container_name:), then any named only by a binding (a state written before those records).
 */
function servicesOf(state: State): ServiceState[] {
  const out = new Map<string, ServiceState>();
  for (const s of state.services ?? []) out.set(s.name, s);
  for (const b of state.bindings) {
    if (b.name !== undefined && !out.has(b.name)) {
      out.set(b.name, { name: b.name, targetHost: b.targetHost, expose: [] });
    }
  }
  return [...out.values()];
}

function ambiguousService(
  name: string,
  matches: readonly { state: State; service: ServiceState }[],
): never {
  const projects = matches.map((m) => m.state.project);
  const distinct = new Set(projects);
  if (projects.every((p) => p !== undefined) && distinct.size === matches.length) {
    const where = matches.map((m) => `${m.state.project} (pid ${m.state.pid})`).join(', ');
    const names = matches.map((m) => `${m.state.project}-${m.service.name}-1`).join(' or ');
    throw new PortpubError(
      ERR_AMBIGUOUS_SERVICE,
      `service ${name} is in several projects: ${where}; name one as ${names}, or give the pid`,
      EXIT_RUNTIME,
    );
  }
  onlyOne(
    matches.map((m) => m.state),
    'service',
    name,
  );
  throw new Error('unreachable: onlyOne refuses several matches');
}

function onlyOne(matches: readonly State[], what: string, name: string): void {
  if (matches.length === 1) return;
  throw new PortpubError(
    ERR_AMBIGUOUS_SERVICE,
    `${what} ${name} is served by several portpubs (${matches.map((s) => `pid ${s.pid}`).join(', ')}): give the pid instead`,
    EXIT_RUNTIME,
  );
}

/**
 * runningNames lists, for the unknown-name error, what could have been named: services (published
 * or expose-only), run names, else pids. `port`, `env` and `stats` all list these.
 */
export function runningNames(states: readonly State[]): string[] {
  const names = new Set<string>();
  for (const s of states) {
    const own = servicesOf(s).map((svc) => svc.name);
    if (s.name !== undefined) own.push(s.name);
    if (own.length === 0) own.push(`pid ${s.pid}`);
    for (const n of own) names.add(n);
  }
  return [...names];
}

function readsAsPort(arg: string): boolean {
  try {
    parsePortArg(arg);
    return true;
  } catch {
    return false;
  }
}

function portLine(b: Binding): string {
  return `${b.targetPort}/${b.protocol} -> ${joinHostPort(b.hostIp, b.hostPort)}`;
}

function lines(text: readonly string[]): string {
  return text.map((l) => `${l}\n`).join('');
}

/** serviceEnv is the `--link` variables of one service, as envCommand describes. */
function serviceEnv(
  states: readonly State[],
  service: string,
  alias: string,
  opts: LinkOptions,
): EnvVar[] {
  const { bindings, service: known } = findSelection(states, service, opts.dir ?? stateDir());
  const parent = opts.parent ?? DEFAULT_PARENT;
  // The published target ports and the `expose:` ones, as docker run --link describes them.
  const ports = [
    ...bindings.map((b) => ({ port: b.targetPort, protocol: b.protocol })),
    ...(known?.expose ?? []),
  ];
  if (!opts.published) {
    const targets = [
      ...new Set([
        ...bindings.map((b) => b.targetHost),
        ...(known && known.expose.length > 0 ? [known.targetHost] : []),
      ]),
    ];
    if (targets.length > 1) {
      throw new PortpubError(
        ERR_LINK_TARGET,
        `service ${service} forwards to several targets (${targets.join(', ')}): --link variables have one address`,
        EXIT_RUNTIME,
      );
    }
    return linkEnv({ parent, alias, ip: targets[0] ?? '', ports });
  }
  // Names from the targets (ip is a placeholder), values then swapped for the published endpoints.
  const ip = bindings[0]?.targetHost ?? known?.targetHost ?? '';
  return publishedValues(linkEnv({ parent, alias, ip, ports }), ip, bindings);
}

interface Endpoint {
  addr: string;
  hostPort: number;
}

/**
 * publishedValues rewrites linkEnv output made with target address `ip` so each value names the
 * published endpoint of its target port. URL values are recognised whole; `_ADDR` and the
 * port-number variables (`_PORT`, `_PORT_START`, `_PORT_END`) by their exact names.
 */
function publishedValues(vars: EnvVar[], ip: string, bindings: readonly Binding[]): EnvVar[] {
  const endpoints = new Map<string, Endpoint>(); // `${port}/${proto}`
  const preferred = [...bindings].sort((a, b) => familyRank(a.hostIp) - familyRank(b.hostIp));
  for (const b of preferred) {
    const key = `${b.targetPort}/${b.protocol}`;
    if (!endpoints.has(key))
      endpoints.set(key, { addr: reachable(b.hostIp), hostPort: b.hostPort });
  }
  // linkEnv ends with `<ALIAS>_NAME` when given no env: the alias prefix as linkEnv spelled it.
  const alias = vars.at(-1)![0].slice(0, -'_NAME'.length);

  const urls = new Map<string, string>();
  const addrs = new Map<string, string>();
  const numbers = new Map<string, string>(); // variable name -> protocol of its port number
  for (const [key, e] of endpoints) {
    const [port, protocol] = key.split('/') as [string, string];
    const prefix = `${alias}_PORT_${port}_${protocol.toUpperCase()}`;
    urls.set(`${protocol}://${ip}:${port}`, `${protocol}://${joinHostPort(e.addr, e.hostPort)}`);
    addrs.set(`${prefix}_ADDR`, e.addr);
    for (const suffix of ['_PORT', '_PORT_START', '_PORT_END']) {
      numbers.set(`${prefix}${suffix}`, protocol);
    }
  }
  return vars.map(([name, value]): EnvVar => {
    const url = urls.get(value);
    if (url !== undefined) return [name, url];
    const addr = addrs.get(name);
    if (addr !== undefined) return [name, addr];
    const protocol = numbers.get(name);
    const e = protocol === undefined ? undefined : endpoints.get(`${value}/${protocol}`);
    return e ? [name, String(e.hostPort)] : [name, value];
  });
}

/** reachable is where a client on this host connects to reach a socket bound to `hostIp`. */
function reachable(hostIp: string): string {
  if (hostIp === '0.0.0.0') return '127.0.0.1';
  if (hostIp === '::') return '::1';
  return hostIp;
}

function familyRank(hostIp: string): number {
  return isIPv4(hostIp) ? 0 : 1;
}
