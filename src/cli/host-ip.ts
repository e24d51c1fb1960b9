// `host_ip=` in -p long syntax: docker run ignores the key (the port is published on every
// interface), and so does portpub, with a warning. One text for every command that takes -p.
import type { Logger } from '../logger.js';

/** mentionsHostIp says whether a -p value uses the long syntax's host_ip= key. */
export function mentionsHostIp(value: string): boolean {
  return /(^|,)\s*host_ip=/.test(value);
}

/** warnHostIpIgnored logs, for each such -p value, that its host_ip= was ignored. */
export function warnHostIpIgnored(specs: readonly string[], logger: Logger): void {
  for (const spec of specs) {
    logger.warn(
      { publish: spec },
      'host_ip= is ignored in -p long syntax (as docker run ignores it): this port is published ' +
        'on every interface; write HOSTIP:HOSTPORT:PORT to bind one address',
    );
  }
}
