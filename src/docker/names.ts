// Names as Docker checks them, pure: a --name (Docker's container-name rule and its "already in
// use" conflict) and a target host (an IP literal or a DNS host name). Shared by `portpub -p
// --name`, `portpub run --name` and the compose reader.
import {
  ERR_BAD_NAME,
  ERR_NAME_IN_USE,
  EXIT_RUNTIME,
  EXIT_USAGE,
  PortpubError,
} from '../errors.js';
import { isIpLiteral } from './spec.js';

/** NAME_PATTERN is moby's `restrictedNamePattern` (daemon/names/names.go). */
export const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/**
 * checkName returns `name` if Docker would take it, else throws ERR_BAD_NAME with the daemon's
 * text: `Invalid container name (a b), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed` ("container"
 * kept, so the message can be searched for). As the daemon (moby daemon/names.go, reserveName),
 * one leading `/` is trimmed first: `/web` is the name `web`, which Docker stores as `/web`.
 */
export function checkName(name: string): string {
  const bare = name.startsWith('/') ? name.slice(1) : name;
  if (!NAME_PATTERN.test(bare)) {
    throw new PortpubError(
      ERR_BAD_NAME,
      `Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
      EXIT_USAGE,
    );
  }
  return bare;
}

/** NameHolder is something running that holds a name; `by` says what, for the message. */
export interface NameHolder {
  name?: string | undefined;
  /** e.g. `portpub pid 4242` or `container "0123abcd..."`. */
  by: string;
}

/**
 * checkNameFree throws Docker's conflict error (nameConflict) when a holder already has `name`.
 */
export function checkNameFree(name: string, holders: Iterable<NameHolder>): void {
  for (const h of holders) {
    if (h.name === name) throw nameConflict(name, h.by);
  }
}

/**
 * nameConflict is Docker's conflict error (ERR_NAME_IN_USE, exit 1): `Conflict. The container
 * name "/web" is already in use by portpub pid 4242. You have to remove (or rename) that
 * container to be able to reuse that name.`
 */
export function nameConflict(name: string, by: string): PortpubError {
  return new PortpubError(
    ERR_NAME_IN_USE,
    `Conflict. The container name "/${name}" is already in use by ${by}. ` +
      'You have to remove (or rename) that container to be able to reuse that name.',
    EXIT_RUNTIME,
  );
}

const HOST_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/**
 * parseTargetHost reads a target address: an IP literal (IPv6 bracketed or not, returned bare)
 * or a DNS host name (labels of letters, digits, `-` and `_`, at most 253 characters, one
 * trailing dot allowed). Anything else, `host:port` included, is undefined.
 */
export function parseTargetHost(value: string): string | undefined {
  const bare = /^\[.*\]$/.test(value) ? value.slice(1, -1) : value;
  if (isIpLiteral(bare)) return bare;
  const name = value.endsWith('.') ? value.slice(0, -1) : value;
  if (name.length > 0 && name.length <= 253 && name.split('.').every((l) => HOST_LABEL.test(l))) {
    return value;
  }
  return undefined;
}
