// Whether this user may create the namespaces `portpub run` needs, and what to say when not:
// the three switches distributions use to turn unprivileged user namespaces off, by name.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT_RUNTIME, PortpubError } from '../errors.js';
import { ERR_NO_USERNS } from '../errors.js';

/** Codes raised here; defined in the one catalog, src/errors.ts. */
export { ERR_NO_USERNS };

/** SYSCTL_DIR_ENV points the check at another /proc/sys (tests simulate a locked-down host). */
export const SYSCTL_DIR_ENV = 'PORTPUB_SYSCTL_DIR';

/**
 * USERNS_ENV chooses the user namespace: `auto` (the default: one for every user but root, who
 * needs none), `always`, or `never` (run as root without one).
 */
export const USERNS_ENV = 'PORTPUB_USERNS';

const HINT = 'or run the service on the host network with --network host';

/** wantUserNamespace says whether to create a user namespace (see USERNS_ENV). */
export function wantUserNamespace(env: NodeJS.ProcessEnv = process.env): boolean {
  const mode = env[USERNS_ENV] ?? 'auto';
  if (mode === 'always') return true;
  if (mode === 'never') return false;
  return typeof process.getuid !== 'function' || process.getuid() !== 0;
}

/**
 * userNamespaceProblem reads the sysctls that forbid unprivileged user namespaces and returns the
 * error for the first one that does, or undefined. A missing file means the switch does not exist
 * on this kernel (only Debian has kernel.unprivileged_userns_clone, only Ubuntu's AppArmor the
 * other).
 */
export function userNamespaceProblem(
  env: NodeJS.ProcessEnv = process.env,
): PortpubError | undefined {
  const dir = env[SYSCTL_DIR_ENV] || '/proc/sys';
  const read = (path: string): string | undefined => {
    try {
      return readFileSync(join(dir, path), 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  if (read('user/max_user_namespaces') === '0') {
    return noUserns(
      'user.max_user_namespaces is 0 (enable them with: sysctl -w user.max_user_namespaces=15000)',
    );
  }
  if (read('kernel/unprivileged_userns_clone') === '0') {
    return noUserns(
      'kernel.unprivileged_userns_clone is 0 (enable them with: sysctl -w kernel.unprivileged_userns_clone=1)',
    );
  }
  if (read('kernel/apparmor_restrict_unprivileged_userns') === '1') {
    return noUserns(
      'AppArmor restricts them (kernel.apparmor_restrict_unprivileged_userns is 1; allow them with ' +
        'sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile for node ' +
        'granting userns)',
    );
  }
  return undefined;
}

/** unshareFailed is the error when unshare(1) itself failed and no sysctl explains why. */
export function unshareFailed(detail: string): PortpubError {
  return noUserns(
    `unshare failed (${detail}); check user.max_user_namespaces, ` +
      'kernel.unprivileged_userns_clone (Debian) and kernel.apparmor_restrict_unprivileged_userns ' +
      '(Ubuntu, AppArmor)',
  );
}

function noUserns(why: string): PortpubError {
  return new PortpubError(
    ERR_NO_USERNS,
    `cannot give the service a network of its own: unprivileged user namespaces are off: ${why}; ${HINT}`,
    EXIT_RUNTIME,
  );
}
