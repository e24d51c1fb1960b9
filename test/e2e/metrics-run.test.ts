// --metrics and `portpub stats` for a `portpub run` service (its own network namespace): the
// bytes of one exchange with the service show up in both, the same.
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/net.js';
import { exchange, requireNetns, runEnv, startServiceOn7000 } from '../fixtures/netns-run.js';
import { jsonLines, loggedUrl } from '../fixtures/observe-env.js';
import { parseExposition, value } from '../fixtures/observe-prom.js';

describe('portpub run --metrics', () => {
  it('counts a service’s traffic, as portpub stats does', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const { run, port } = await startServiceOn7000(e, ['--metrics', '127.0.0.1:0']);
    const url = await loggedUrl(run, 'metrics');
    expect(await exchange(port, 'hello')).toBe('ns:hello');

    const binding = { binding: `127.0.0.1:${port}`, protocol: 'tcp' };
    let text = '';
    await waitFor(
      async () => {
        text = await (await fetch(url, { signal: AbortSignal.timeout(10_000) })).text();
        const m = parseExposition(text);
        return value(m, 'portpub_bytes_total', { ...binding, direction: 'target_to_client' }) === 8;
      },
      'the exchange counted',
      15_000,
    );
    const m = parseExposition(text);
    expect(value(m, 'portpub_bytes_total', { ...binding, direction: 'client_to_target' })).toBe(5);
    expect(value(m, 'portpub_connections_total', binding)).toBe(1);

    const stats = await runCli(['stats', 'svc', '--no-stream', '--format', 'json'], 15_000, {
      env: e.env,
    });
    expect(stats.code).toBe(0);
    expect(jsonLines(stats.stdout)).toMatchObject([
      { service: 'svc', total: 1, bytesClientToTarget: 5, bytesTargetToClient: 8 },
    ]);
    await run.stop('SIGTERM');
  });
});
