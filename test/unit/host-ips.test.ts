// The host IPs of a mapping, one answer for the publisher, the plan-time self-loop check and the
// --dry-run plan: `::` joins 0.0.0.0 only where this host can listen on IPv6 (dockerd's rule).
import { describe, expect, it } from 'vitest';
import { parsePublish, type PortMapping } from '../../src/docker/spec.js';
import { hostIpsFor } from '../../src/publish/host-ips.js';
import { planSelfLoop } from '../../src/publish/self-loop.js';
import { formatPlan } from '../../src/cli/format.js';

function one(spec: string): PortMapping {
  const [m] = parsePublish(spec);
  return m!;
}

describe('hostIpsFor', () => {
  const rows: [string, string, boolean, string[]][] = [
    ['80', '0.0.0.0', true, ['0.0.0.0', '::']],
    ['80', '0.0.0.0', false, ['0.0.0.0']],
    ['80', '10.0.0.1', true, ['10.0.0.1']],
    ['80', '::', true, ['::']],
    ['127.0.0.1:8080:80', '0.0.0.0', true, ['127.0.0.1']],
    ['[::1]:8080:80', '0.0.0.0', false, ['::1']],
  ];
  it.each(rows)('-p %s, default %s, v6 %s -> %j', (spec, defaultHostIp, v6, want) => {
    expect(hostIpsFor(one(spec), defaultHostIp, v6)).toEqual(want);
  });
});

describe('the plans follow the IPv6 answer', () => {
  it('the --dry-run plan names [::] only when IPv6 can listen', () => {
    const mappings = [one('8080:80')];
    expect(formatPlan(mappings, 'db', { defaultHostIp: '0.0.0.0', v6: false })).toBe(
      '80/tcp -> 0.0.0.0:8080 => db:80\n',
    );
    expect(formatPlan(mappings, 'db', { defaultHostIp: '0.0.0.0', v6: true })).toBe(
      '80/tcp -> 0.0.0.0:8080 => db:80\n80/tcp -> [::]:8080 => db:80\n',
    );
  });

  it('the plan-time loop check sees the [::] socket only when it would be bound', () => {
    // 5000:5000 to ::1 loops through the `::` wildcard, which exists only with IPv6.
    const requests = [{ mapping: one('5000:5000'), targetHost: '::1' }];
    expect(planSelfLoop(requests, '0.0.0.0', false)).toBeUndefined();
    expect(planSelfLoop(requests, '0.0.0.0', true)?.code).toBe('ERR_SELF_LOOP');
  });
});
