// The host addresses one mapping is published on. The publisher, the plan-time self-loop check
// and the --dry-run plan all ask here, so a plan names exactly the sockets a start would bind.
import { createServer } from 'node:net';
import type { PortMapping } from '../docker/spec.js';

/** DEFAULT_HOST_IP is dockerd's default --ip: every IPv4 address (and `::` when IPv6 works). */
export const DEFAULT_HOST_IP = '0.0.0.0';

/**
 * hostIpsFor is where a mapping listens: its own host IP, else the default host IP, which for
 * 0.0.0.0 means `::` too when `v6` (ipv6Listenable()) says this host can listen on IPv6, as
 * dockerd publishes on both.
 */
export function hostIpsFor(
  mapping: Pick<PortMapping, 'hostIp'>,
  defaultHostIp: string,
  v6: boolean,
): string[] {
  if (mapping.hostIp !== '') return [mapping.hostIp];
  return defaultHostIp === DEFAULT_HOST_IP && v6 ? [DEFAULT_HOST_IP, '::'] : [defaultHostIp];
}

let v6Listenable: Promise<boolean> | undefined;

/** ipv6Listenable is dockerd's IsV6Listenable: can this host listen on [::1]? Cached. */
export function ipv6Listenable(): Promise<boolean> {
  v6Listenable ??= new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host: '::1', port: 0 }, () => s.close(() => resolve(true)));
  });
  return v6Listenable;
}
