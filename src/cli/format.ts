// Output formatting of the serving commands: the bound mappings (docker port lines or one JSON
// document) and the --dry-run plan. Pure functions: text in, text out.
import { formatPortLines, joinHostPort } from '../docker/report.js';
import type { PortMapping } from '../docker/spec.js';
import { hostIpsFor } from '../publish/host-ips.js';
import type { Binding, PublishRequest } from '../publish/publisher.js';

/** formatBindings prints what was bound: docker port lines (prefixed by service) or JSON. */
export function formatBindings(
  bindings: readonly Binding[],
  json: boolean | undefined,
  byService: boolean,
): string {
  if (json) {
    const mappings = bindings.map((b) => ({
      ...(b.name !== undefined ? { name: b.name } : {}),
      hostIp: b.hostIp,
      hostPort: b.hostPort,
      targetHost: b.targetHost,
      targetPort: b.targetPort,
      protocol: b.protocol,
    }));
    return JSON.stringify({ mappings }) + '\n';
  }
  if (!byService)
    return formatPortLines(bindings)
      .map((l) => l + '\n')
      .join('');
  const names = [...new Set(bindings.map((b) => b.name ?? ''))];
  return names
    .flatMap((n) =>
      formatPortLines(bindings.filter((b) => (b.name ?? '') === n)).map((l) => `${n}: ${l}\n`),
    )
    .join('');
}

/**
 * PlanOptions: `v6` is ipv6Listenable()'s answer, so the plan names `::` exactly when serving
 * would bind it.
 */
export interface PlanOptions {
  json?: boolean;
  defaultHostIp: string;
  v6: boolean;
}

/** formatPlan describes what would be bound: Docker's stored fields, before any port is picked. */
export function formatPlan(
  mappings: readonly PortMapping[],
  target: string,
  opts: PlanOptions,
): string {
  if (opts.json) {
    return (
      JSON.stringify({
        mappings: mappings.map((m) => ({
          hostIp: m.hostIp,
          hostPort: m.hostPort,
          targetPort: m.targetPort,
          protocol: m.protocol,
        })),
      }) + '\n'
    );
  }
  return mappings.map((m) => planLines(m, target, opts)).join('');
}

function planLines(m: PortMapping, target: string, opts: PlanOptions): string {
  const hosts = hostIpsFor(m, opts.defaultHostIp, opts.v6);
  const port =
    m.hostPort === '' || m.hostPort === '0' ? '(ephemeral)' : m.hostPort.replace('-', '..');
  return hosts
    .map(
      (h) =>
        `${m.targetPort}/${m.protocol} -> ${joinHostPort(h, port)} => ` +
        `${joinHostPort(target, m.targetPort)}\n`,
    )
    .join('');
}

/** formatServicePlan is `up --dry-run`: the plan of each service, as lines or one JSON document. */
export function formatServicePlan(publish: readonly PublishRequest[], opts: PlanOptions): string {
  if (opts.json) {
    const mappings = publish.map((r) => ({
      name: r.name,
      hostIp: r.mapping.hostIp,
      hostPort: r.mapping.hostPort,
      targetHost: r.targetHost,
      targetPort: r.mapping.targetPort,
      protocol: r.mapping.protocol,
    }));
    return JSON.stringify({ mappings }) + '\n';
  }
  const byService = new Map<string, PublishRequest[]>();
  for (const r of publish) {
    const reqs = byService.get(r.name!);
    if (reqs) reqs.push(r);
    else byService.set(r.name!, [r]);
  }
  let out = '';
  for (const [name, reqs] of byService) {
    const plan = formatPlan(
      reqs.map((r) => r.mapping),
      reqs[0]!.targetHost,
      opts,
    );
    out += prefixLines(`${name}: `, plan);
  }
  return out;
}

/** prefixLines puts prefix before every non-empty line of text. */
export function prefixLines(prefix: string, text: string): string {
  return text
    .split('\n')
    .map((l) => (l === '' ? l : prefix + l))
    .join('\n');
}
