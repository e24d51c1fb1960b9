// The local addresses of this process's target-side TCP sockets, kept exact as they open and
// close, so that a connection portpub makes to itself (a target that is one of its own listeners,
// two portpubs pointing at each other through one process, a hostname that changed) is recognised
// when it arrives and dropped instead of relayed (issue 13: forwarding into itself).

const own = new Set<string>();

/** ownKey is the text of a local address: `ip port`, the IPv4-mapped prefix dropped. */
export function ownKey(address: string, port: number): string {
  return `${address.startsWith('::ffff:') ? address.slice(7) : address} ${port}`;
}

/** addOwn records a target-side socket's local address; returns its key for removeOwn. */
export function addOwn(address: string, port: number): string {
  const key = ownKey(address, port);
  own.add(key);
  return key;
}

export function removeOwn(key: string): void {
  own.delete(key);
}

/** isOwn says whether address:port is the local end of one of this process's target sockets. */
export function isOwn(address: string | undefined, port: number | undefined): boolean {
  if (own.size === 0 || address === undefined || port === undefined) return false;
  return own.has(ownKey(address, port));
}

/** ownCount is how many target-side sockets are recorded now (tests). */
export function ownCount(): number {
  return own.size;
}
