// The /etc/hosts of a service's private mount namespace, in the format of Docker's libnetwork
// (etchosts): the default entries, one line per link (`<ip>\t<alias> <id> [<name>]`, the name
// only when it differs from the alias), then the service's own address and hostname.

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
): string {
  return (
    DEFAULTS.map(([ip, names]) => `${ip}\t${names}\n`).join('') +
    links.map(hostsLine).join('') +
    `${own.ip}\t${own.hostname}\n`
  );
}
