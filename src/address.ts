// Address text shared by every layer: how an IP and a port are written together.

/** joinHostPort is Go's net.JoinHostPort: a host containing ':' is bracketed. */
export function joinHostPort(host: string, port: number | string): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
