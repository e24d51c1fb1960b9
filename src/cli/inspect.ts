// `portpub inspect [-f FORMAT] NAME...`, as docker inspect for containers: a JSON array with the
// fields of Docker's ContainerJSON that a portpub service has (Id, Name, State, Config,
// HostConfig, NetworkSettings), or one line per service from a Go-template subset, enough for
// the tutorials' `{{.NetworkSettings.IPAddress}}` and `{{json .NetworkSettings.Ports}}`.
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { EXIT_RUNTIME, PortpubError, UsageError } from '../errors.js';
import { parseLink } from '../docker/links.js';
import type { Binding } from '../docker/report.js';
import {
  ERR_NO_SUCH_CONTAINER,
  findContainer,
  liveness,
  type ContainerRecord,
} from '../registry/containers.js';
import { readStates, stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';

/** ZERO_TIME is Go's zero time.Time, which Docker prints for a time that never was. */
const ZERO_TIME = '0001-01-01T00:00:00Z';

/** registerInspect adds `portpub inspect`. */
export function registerInspect(program: Command, ctx: CliContext): void {
  program
    .command('inspect')
    .description('show services in detail, as docker inspect')
    .argument('<names...>', 'service names or ids')
    .option('-f, --format <format>', 'a Go template: {{.Field.Sub}}, {{json .F}}, {{index .F "k"}}')
    .addHelpText(
      'after',
      "\nExamples:\n  portpub inspect -f '{{.NetworkSettings.IPAddress}}' db\n" +
        "  portpub inspect -f '{{json .NetworkSettings.Ports}}' web\n",
    )
    .action((names: string[], opts: { format?: string }) => {
      // Parsed before anything is read, so a bad template says so whatever the names.
      const template = opts.format === undefined ? undefined : parseTemplate(opts.format);
      const live = new Map(readStates(stateDir()).map((s) => [s.pid, s.bindings]));
      // As docker inspect: the services found are printed, then each name that is not.
      const docs: Json[] = [];
      const missing: string[] = [];
      for (const name of names) {
        try {
          docs.push(inspectDoc(findContainer(name), live));
        } catch (err) {
          if (!(err instanceof PortpubError) || err.code !== ERR_NO_SUCH_CONTAINER) throw err;
          missing.push(name);
        }
      }
      if (template === undefined) ctx.io.stdout.write(`${JSON.stringify(docs, null, 4)}\n`);
      else for (const doc of docs) ctx.io.stdout.write(`${render(template, doc)}\n`);
      if (missing.length > 0) {
        // One line each, as Docker's; the last one is the error main prints.
        for (const name of missing.slice(0, -1)) {
          ctx.io.stderr.write(`portpub: No such object: ${name}\n`);
        }
        throw new PortpubError(
          ERR_NO_SUCH_CONTAINER,
          `No such object: ${missing.at(-1)!}`,
          EXIT_RUNTIME,
        );
      }
    });
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * STRUCTS are the objects that are Go structs in Docker's types (a PortBinding, an exposed port's
 * struct{}): Go's fmt prints them `{0.0.0.0 8080}`, their values in field order, where it prints a
 * map `map[k:v]`.
 */
const STRUCTS = new WeakSet<object>();

function struct<T extends object>(value: T): T {
  STRUCTS.add(value);
  return value;
}

/** portKey is Docker's `80/tcp`. */
function portKey(port: number, protocol: string): string {
  return `${port}/${protocol}`;
}

/**
 * inspectDoc is one service as docker inspect prints a container. Ports are the live bindings
 * (an exposed port without one is null, as Docker's), none once stopped.
 */
export function inspectDoc(
  c: ContainerRecord,
  live: ReadonlyMap<number, Binding[]> = new Map(),
): { [key: string]: Json } {
  const state = liveness(c);
  const running = state === 'running';
  const host = c.network === 'host';
  const bindings =
    (running && c.state.pid !== undefined ? live.get(c.state.pid) : undefined) ??
    (running ? (c.state.bindings ?? []) : []);
  const ports: { [key: string]: Json } = {};
  if (running) {
    for (const p of c.exposed) ports[portKey(p.port, p.protocol)] ??= null;
    for (const b of bindings) {
      const key = portKey(b.targetPort, b.protocol);
      const list = (ports[key] ?? []) as Json[];
      list.push(struct({ HostIp: b.hostIp, HostPort: String(b.hostPort) }));
      ports[key] = list;
    }
  }
  const portBindings: { [key: string]: Json } = {};
  for (const m of c.publish) {
    const key = portKey(m.targetPort, m.protocol);
    const list = (portBindings[key] ?? []) as Json[];
    list.push(struct({ HostIp: m.hostIp, HostPort: m.hostPort }));
    portBindings[key] = list;
  }
  const exposed: { [key: string]: Json } = {};
  for (const p of c.exposed) exposed[portKey(p.port, p.protocol)] = struct({});
  const ip = host ? '' : c.ip;
  // Waiting out its --restart delay: Docker's state then is running and restarting both.
  const restarting = running && c.state.restarting === true;
  return {
    Id: c.id,
    Created: c.created,
    Path: c.command,
    Args: [...c.args],
    State: {
      Status: restarting ? 'restarting' : state === 'dead' ? 'exited' : state,
      Running: running,
      Paused: false,
      Restarting: restarting,
      OOMKilled: false,
      Dead: false,
      // Waiting, as Docker's SetRestarting leaves it: no pid, the last run's end.
      Pid: running && !restarting ? (c.state.pid ?? 0) : 0,
      ExitCode: running && !restarting ? 0 : (c.state.exitCode ?? (state === 'dead' ? 137 : 0)),
      Error: '',
      StartedAt: c.state.startedAt ?? ZERO_TIME,
      FinishedAt: running && !restarting ? ZERO_TIME : (c.state.finishedAt ?? ZERO_TIME),
    },
    Name: `/${c.name}`,
    RestartCount: c.state.restartCount ?? 0,
    HostConfig: {
      RestartPolicy: struct({
        Name: c.restart?.name ?? 'no',
        MaximumRetryCount: c.restart?.maximumRetryCount ?? 0,
      }),
      NetworkMode: host ? 'host' : 'bridge',
      PortBindings: portBindings,
      AutoRemove: c.autoRemove,
      Links: c.links.length === 0 ? null : c.links.map((l) => linkEntry(l, c.name)),
      ExtraHosts: (c.addHosts ?? []).length === 0 ? null : c.addHosts!.map(([h, a]) => `${h}:${a}`),
      // Docker's is omitted unless --init was given.
      ...(c.init === true ? { Init: true } : {}),
    },
    Config: {
      // On the host's network the host's, as Docker gives a host-network container.
      Hostname: host ? hostname() : (c.hostname ?? c.id.slice(0, 12)),
      ExposedPorts: Object.keys(exposed).length === 0 ? null : exposed,
      Tty: c.tty === true,
      OpenStdin: c.interactive,
      Env: (c.state.env ?? c.env).map(([k, v]) => `${k}=${v}`),
      Cmd: [c.command, ...c.args],
      WorkingDir: c.workdir ?? '',
    },
    NetworkSettings: {
      Ports: ports,
      IPAddress: running ? ip : '',
      Networks: host ? { host: { IPAddress: '' } } : { bridge: { IPAddress: running ? ip : '' } },
    },
  };
}

/** linkEntry is HostConfig.Links' `/db:/web/db` for `--link db` (or `db:alias`). */
function linkEntry(link: string, parent: string): string {
  const { name, alias } = parseLink(link);
  // `--link /db` names db, as findContainer reads one leading `/`.
  return `/${name.replace(/^\//, '')}:/${parent}/${alias.replace(/^\//, '')}`;
}

// A Go text/template subset: text and actions; an action is a pipeline of one command: a field
// chain (.A.B), `json X`, or `index X KEY...`, where X may be a parenthesised command with fields
// after it, and KEY a quoted string or a number.
type Node =
  | { t: 'field'; of?: Node; path: string[] }
  | { t: 'call'; fn: 'json' | 'index'; args: Node[] }
  | { t: 'lit'; value: string | number };
type Part = string | Node;

/** parseTemplate reads a -f value; anything outside the subset is a UsageError naming it. */
export function parseTemplate(format: string): Part[] {
  const parts: Part[] = [];
  let rest = format;
  for (;;) {
    const open = rest.indexOf('{{');
    if (open < 0) break;
    if (open > 0) parts.push(rest.slice(0, open));
    const close = rest.indexOf('}}', open + 2);
    if (close < 0) throw bad(format, 'unclosed action');
    parts.push(parseAction(rest.slice(open + 2, close), format));
    rest = rest.slice(close + 2);
  }
  if (rest !== '') parts.push(rest);
  return parts;
}

function bad(format: string, why: string): UsageError {
  return new UsageError(
    `--format ${JSON.stringify(format)}: ${why} (portpub reads {{.Field.Sub}}, {{json .F}}, ` +
      '{{index .F "key"}} and parentheses; not range, if, with or pipes)',
  );
}

function parseAction(text: string, format: string): Node {
  const tokens: string[] = text.match(/"(?:[^"\\]|\\.)*"|\(|\)|[^\s()"]+/g) ?? [];
  if (tokens.includes('|')) throw bad(format, 'pipes (|) are not understood');
  let i = 0;
  const command = (): Node => {
    const head = tokens[i];
    if (head === 'json' || head === 'index') {
      i++;
      const args: Node[] = [];
      while (i < tokens.length && tokens[i] !== ')') args.push(operand());
      if (args.length !== (head === 'json' ? 1 : Math.max(2, args.length))) {
        throw bad(format, `${head} takes ${head === 'json' ? 'one value' : 'a value and keys'}`);
      }
      return { t: 'call', fn: head, args };
    }
    return operand();
  };
  const operand = (): Node => {
    const tok = tokens[i++];
    if (tok === undefined) throw bad(format, 'an empty action');
    if (tok === '(') {
      const inner = command();
      if (tokens[i++] !== ')') throw bad(format, 'unbalanced parentheses');
      const next = tokens[i];
      if (next !== undefined && next.startsWith('.')) {
        i++;
        return { t: 'field', of: inner, path: fields(next) };
      }
      return inner;
    }
    if (tok.startsWith('"')) return { t: 'lit', value: JSON.parse(tok) as string };
    if (/^\d+$/.test(tok)) return { t: 'lit', value: Number(tok) };
    if (tok.startsWith('.')) return { t: 'field', path: fields(tok) };
    throw bad(format, `${JSON.stringify(tok)} is not understood`);
  };
  const fields = (tok: string): string[] => {
    if (tok === '.') return [];
    const path = tok.slice(1).split('.');
    if (path.some((p) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(p))) {
      throw bad(format, `${JSON.stringify(tok)} is not a field chain`);
    }
    return path;
  };
  const node = command();
  if (i !== tokens.length) throw bad(format, `${JSON.stringify(tokens[i])} after the value`);
  return node;
}

/** render fills the template from one document, as docker inspect -f prints each object. */
export function render(parts: readonly Part[], doc: Json): string {
  return parts.map((p) => (typeof p === 'string' ? p : show(evaluate(p, doc)))).join('');
}

function evaluate(node: Node, doc: Json): Json | undefined {
  if (node.t === 'lit') return node.value;
  if (node.t === 'field') {
    let v: Json | undefined = node.of === undefined ? doc : evaluate(node.of, doc);
    for (const key of node.path) {
      v = v !== null && typeof v === 'object' && !Array.isArray(v) ? v[key] : undefined;
    }
    return v;
  }
  if (node.fn === 'json') return JSON.stringify(evaluate(node.args[0]!, doc) ?? null);
  let v = evaluate(node.args[0]!, doc);
  for (const k of node.args.slice(1)) {
    const key = evaluate(k, doc);
    if (Array.isArray(v) && typeof key === 'number') v = v[key];
    else if (v !== null && typeof v === 'object' && !Array.isArray(v) && typeof key === 'string') {
      v = v[key];
    } else v = undefined;
  }
  return v;
}

/** show prints a value as Go's fmt prints it: maps sorted as map[k:v], lists as [a b]. */
function show(v: Json | undefined): string {
  if (v === undefined) return '<no value>';
  if (v === null) return '<nil>';
  if (Array.isArray(v)) return `[${v.map(show).join(' ')}]`;
  if (typeof v === 'object' && STRUCTS.has(v)) return `{${Object.values(v).map(show).join(' ')}}`;
  if (typeof v === 'object') {
    const keys = Object.keys(v).sort();
    return `map[${keys.map((k) => `${k}:${show(v[k])}`).join(' ')}]`;
  }
  return String(v);
}
