// --metrics: a Prometheus endpoint built with prom-client. Each scrape takes one snapshot (the
// workers' counters summed in) and every portpub metric reads it, so the numbers of one scrape
// agree with each other; prom-client's default process metrics come along.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { joinHostPort } from '../docker/report.js';
import type { BusyPollStats } from '../publish/publisher.js';
import type { LiveBinding, Snapshot } from './live.js';

/** LABELS every portpub metric carries: which service, which bound socket, which target. */
const LABELS = ['service', 'binding', 'protocol', 'target'] as const;

type Labels = Record<(typeof LABELS)[number], string>;

/**
 * metricsHandler answers GET (and HEAD) /metrics from a fresh snapshot per scrape (`snapshot` is
 * called once per request); another method is 405, another path 404.
 */
export function metricsHandler(
  snapshot: () => Promise<Snapshot>,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  let current: Snapshot | undefined;
  let scrapes: Promise<string> = Promise.resolve('');
  const each = (f: (b: LiveBinding, l: Labels) => void) => {
    for (const b of current?.bindings ?? []) f(b, labels(b, current?.name));
  };
  const gauge = (name: string, help: string, read: (b: LiveBinding) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: LABELS,
      registers: [registry],
      collect() {
        this.reset();
        // Summed: a binding still draining and its rebound successor can share labels.
        each((b, l) => {
          const v = read(b);
          if (v !== undefined) this.inc(l, v);
        });
      },
    });
  const counter = (
    name: string,
    help: string,
    extra: string[],
    read: (b: LiveBinding) => [Record<string, string>, number][],
  ) =>
    new Counter<string>({
      name,
      help,
      labelNames: [...LABELS, ...extra],
      registers: [registry],
      collect() {
        this.reset();
        each((b, l) => {
          for (const [more, v] of read(b)) this.inc({ ...l, ...more }, v);
        });
      },
    });
  const one = (v: number | undefined): [Record<never, string>, number][] =>
    v === undefined ? [] : [[{}, v]];

  gauge('portpub_connections_active', 'Open TCP connections.', (b) => b.tcp?.connectionsActive);
  counter('portpub_connections_total', 'TCP connections accepted.', [], (b) =>
    one(b.tcp?.connectionsTotal),
  );
  counter(
    'portpub_connections_rejected_total',
    'TCP connections refused because --max-connections were open.',
    [],
    (b) => one(b.tcp?.connectionsRejected),
  );
  counter(
    'portpub_connect_failures_total',
    'TCP connections whose target could not be reached.',
    [],
    (b) => one(b.tcp?.connectFailures),
  );
  counter(
    'portpub_bytes_total',
    'Bytes relayed, by direction (client_to_target, target_to_client).',
    ['direction'],
    (b) => {
      const s = b.tcp ?? b.udp!;
      return [
        [{ direction: 'client_to_target' }, s.bytesClientToTarget],
        [{ direction: 'target_to_client' }, s.bytesTargetToClient],
      ];
    },
  );
  gauge('portpub_udp_flows_active', 'Open UDP client flows.', (b) => b.udp?.flowsActive);
  counter('portpub_udp_flows_total', 'UDP client flows opened.', [], (b) => one(b.udp?.flowsTotal));
  counter(
    'portpub_udp_datagrams_total',
    'UDP datagrams relayed, by direction.',
    ['direction'],
    (b) =>
      b.udp
        ? [
            [{ direction: 'client_to_target' }, b.udp.datagramsClientToTarget],
            [{ direction: 'target_to_client' }, b.udp.datagramsTargetToClient],
          ]
        : [],
  );
  counter('portpub_udp_drops_total', 'UDP datagrams dropped, by reason.', ['reason'], (b) =>
    Object.entries(b.udp?.drops ?? {}).map(([reason, n]) => [{ reason }, n]),
  );
  counter(
    'portpub_udp_evictions_total',
    'UDP flows ended early because --max-udp-flows was reached.',
    [],
    (b) => one(b.udp?.evictions),
  );
  // The engine thread's, not a binding's: one series per process, 0 without the native engine.
  const engine = (name: string, help: string, read: (p: BusyPollStats) => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        if (current?.busyPoll !== undefined) this.inc(read(current.busyPoll));
      },
    });
  engine(
    'portpub_engine_busy_polls_total',
    'Busy polls the native engine thread began after request/response traffic (PORTPUB_BUSY_POLL).',
    (p) => p.polls,
  );
  engine(
    'portpub_engine_busy_poll_hits_total',
    'Busy polls that found an event before their window ended (the others slept after it).',
    (p) => p.hits,
  );

  return async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('try /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('GET only\n');
      return;
    }
    // One scrape at a time: every metric of a scrape reads the same snapshot.
    const scrape = scrapes.then(async () => {
      current = await snapshot();
      return registry.metrics().finally(() => (current = undefined));
    });
    scrapes = scrape.catch(() => '');
    const text = await scrape;
    res.writeHead(200, { 'content-type': registry.contentType }).end(text);
  };
}

/** labels: `service` is the compose service, else the run's --name, else empty. */
function labels(b: LiveBinding, runName: string | undefined): Labels {
  return {
    service: b.service ?? runName ?? '',
    binding: joinHostPort(b.hostIp, b.hostPort),
    protocol: b.protocol,
    target: joinHostPort(b.targetHost, b.targetPort),
  };
}
