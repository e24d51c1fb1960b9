// `docker run --restart`: the grammar (docker/cli opts.ParseRestartPolicy, with the daemon's
// ValidateRestartPolicy words) and the daemon's restart manager's rule (moby
// restartmanager/restartmanager.go): whether a service that ended starts again, and when.
import { UsageError } from '../errors.js';

export type RestartPolicyName = 'no' | 'always' | 'unless-stopped' | 'on-failure';

/** RestartPolicy is Docker's HostConfig.RestartPolicy. */
export interface RestartPolicy {
  name: RestartPolicyName;
  /** on-failure's retries; 0 is no bound. */
  maximumRetryCount: number;
}

const NAMES: readonly RestartPolicyName[] = ['no', 'always', 'on-failure', 'unless-stopped'];

/** parseRestartPolicy reads `no`, `always`, `unless-stopped` or `on-failure[:N]`, as Docker. */
export function parseRestartPolicy(value: string): RestartPolicy {
  const colon = value.indexOf(':');
  const name = colon < 0 ? value : value.slice(0, colon);
  const count = colon < 0 ? '' : value.slice(colon + 1);
  if (colon >= 0 && name === '') {
    throw new UsageError('invalid restart policy format: no policy provided before colon');
  }
  let maximumRetryCount = 0;
  if (count !== '') {
    if (!/^[+-]?\d+$/.test(count) || !Number.isSafeInteger(Number(count))) {
      throw new UsageError('invalid restart policy format: maximum retry count must be an integer');
    }
    maximumRetryCount = Number(count);
  }
  if (!(NAMES as readonly string[]).includes(name)) {
    throw new UsageError(
      `invalid restart policy: unknown policy '${name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'`,
    );
  }
  if (name !== 'on-failure' && maximumRetryCount !== 0) {
    throw new UsageError(
      "invalid restart policy: maximum retry count can only be used with 'on-failure'" +
        (maximumRetryCount < 0 ? ' and cannot be negative' : ''),
    );
  }
  if (maximumRetryCount < 0) {
    throw new UsageError('invalid restart policy: maximum retry count cannot be negative');
  }
  return { name: name as RestartPolicyName, maximumRetryCount };
}

/** Docker's restart delays: 100 ms, doubled on each restart, at most a minute. */
const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 60_000;
/** A run this long resets the delay, whatever its end. */
const RESET_AFTER_MS = 10_000;

/**
 * Restarts applies a policy to one service's successive ends. `next` is called once per end (not
 * for an end a stop asked for) and says how long to wait before the next start, or undefined
 * when the service stays down; `count` is Docker's RestartCount.
 */
export class Restarts {
  count = 0;
  private delayMs = 0;

  constructor(private readonly policy: RestartPolicy | undefined) {}

  next(exitCode: number, ranMs: number): number | undefined {
    const policy = this.policy;
    if (policy === undefined || policy.name === 'no') return undefined;
    if (ranMs >= RESET_AFTER_MS) this.delayMs = 0;
    this.delayMs = this.delayMs === 0 ? FIRST_DELAY_MS : Math.min(this.delayMs * 2, MAX_DELAY_MS);
    const again =
      policy.name === 'on-failure'
        ? exitCode !== 0 &&
          (policy.maximumRetryCount === 0 || this.count < policy.maximumRetryCount)
        : true; // always, unless-stopped: a stop is the only end that keeps it down
    if (!again) return undefined;
    this.count++;
    return this.delayMs;
  }
}
