// The /etc/hosts of a service's private mount namespace, in the format of Docker's libnetwork
// (etchosts): the default entries, the --add-host entries (`<ip>\t<host>`), one line per link
// (`<ip>\t<alias> <hostname> [<name>]`, the name only when it differs from the alias), then the
// service's own address and hostname.
import { isIP } from 'node:net';

/** HostsLink is one linked service as its recipient's /etc/hosts names it. */
export interface HostsLink {
  alias: string;
  /**
   * The linked service's hostname (its short id), and its name. A service with no id (one a
   * foreground `portpub` or `up` serves: no record) has its name alone on the line.
   */
  hostname?: string;
  name: string;
  ip: string;
}

const DEFAULTS: readonly [string, string][] = [
  ['127.0.0.1', 'localhost'],
  ['::1', 'localhost ip6-localhost ip6-loopback'],
  ['fe00::', 'ip6-localnet'],
  ['ff00::', 'ip6-mcastprefix'],
  ['ff02::1', 'ip6-allnodes'],
  ['ff02::2', 'ip6-allrouters'],
];

/** hostsLine is the line Docker writes for a link (daemon/container_operations.go). */
export function hostsLine(link: HostsLink): string {
  const names = [link.alias];
  if (link.hostname !== undefined) names.push(link.hostname);
  if (link.name !== link.alias) names.push(link.name);
  return `${link.ip}\t${names.join(' ')}\n`;
}

/** hostsFile is the whole file for a service at `ip` named `hostname`, with its links. */
export function hostsFile(
  own: { ip: string; hostname: string },
  links: readonly HostsLink[],
  extra: readonly [string, string][] = [],
): string {
  return (
    DEFAULTS.map(([ip, names]) => `${ip}\t${names}\n`).join('') +
    extra.map(([host, ip]) => `${ip}\t${host}\n`).join('') +
    links.map(hostsLine).join('') +
    `${own.ip}\t${own.hostname}\n`
  );
}

/**
 * parseAddHost reads an --add-host value as docker/cli's ValidateExtraHost does: HOST=IP, or
 * HOST:IP split at the first colon (so HOST:IPv6 works), the address optionally in brackets.
 * Returns [host, ip] with the brackets taken off, or throws Docker's message. `host-gateway`
 * names nothing here: a service's network of its own has no way to the host but its links.
 */
export function parseAddHost(value: string): [string, string] {
  let cut = value.indexOf('=');
  if (cut < 0) cut = value.indexOf(':');
  const host = cut < 0 ? '' : value.slice(0, cut);
  if (cut < 0 || host === '' || host.includes(':')) {
    throw new Error(`bad format for add-host: ${JSON.stringify(value)}`);
  }
  let ip = value.slice(cut + 1);
  if (ip === 'host-gateway') {
    throw new Error(
      'host-gateway: a service in a network of its own reaches the host only through --link',
    );
  }
  if (ip.length > 2 && ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  if (isIP(ip) === 0) throw new Error(`invalid IP address in add-host: ${JSON.stringify(ip)}`);
  return [host, ip];
}

/** HOSTNAME_RE is RFC 1123: dot-separated labels of letters, digits and inner hyphens. */
const HOSTNAME_RE =
  /^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*$/;

/**
 * checkHostname accepts a --hostname as moby did (RFC 1123 labels, 63 characters at most; Linux
 * takes 64) and throws its message otherwise.
 */
export function checkHostname(value: string): string {
  if (value.length > 63 || !HOSTNAME_RE.test(value)) {
    throw new Error(
      `invalid hostname format: ${value} (letters, digits, inner hyphens and dots, at most 63 characters)`,
    );
  }
  return value;
}
