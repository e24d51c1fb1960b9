// The connections of this process's target-side TCP sockets (local and remote address), kept
// exact as they open and close, so that a connection portpub makes to itself (a target that is one of its own listeners,
// two portpubs pointing at each other through one process, a hostname that changed) is recognised
// when it arrives and dropped instead of relayed (issue 13: forwarding into itself).

const own = new Set<string>();

/** endpoint is the text of one end: `ip port`, the IPv4-mapped prefix dropped. */
function endpoint(address: string, port: number): string {
  return `${address.startsWith('::ffff:') ? address.slice(7) : address} ${port}`;
}

/**
 * ownKey is the text of one connection, `local > remote`. The whole connection counts, not the
 * local port alone: Linux reuses an ephemeral port for connections to different destinations,
 * so an ordinary client may well have the local port of one of our target sockets.
 */
export function ownKey(
  local: string,
  localPort: number,
  remote: string,
  remotePort: number,
): string {
  return `${endpoint(local, localPort)} > ${endpoint(remote, remotePort)}`;
}

/** addOwn records a target-side connection; returns its key for removeOwn. */
export function addOwn(
  local: string,
  localPort: number,
  remote: string,
  remotePort: number,
): string {
  const key = ownKey(local, localPort, remote, remotePort);
  own.add(key);
  return key;
}

export function removeOwn(key: string): void {
  own.delete(key);
}

/**
 * isOwn says whether an accepted connection (its peer, then the local address it reached) is the
 * far end of one of this process's target connections.
 */
export function isOwn(
  peer: string | undefined,
  peerPort: number | undefined,
  local: () => { address?: string; port?: number },
): boolean {
  if (own.size === 0 || peer === undefined || peerPort === undefined) return false;
  const { address, port } = local();
  if (address === undefined || port === undefined) return false;
  return own.has(ownKey(peer, peerPort, address, port));
}

/** ownCount is how many target-side connections are recorded now (tests). */
export function ownCount(): number {
  return own.size;
}
