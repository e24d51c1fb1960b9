// --ui on `portpub up` and `portpub run` (its own network namespace): the page's data
// (/snapshot.json, what /events streams) carries the service's bindings, labelled by service, with
// the bytes of one exchange, and its live connection. The page itself is drawn by
// test/browser/ui-page.test.ts for a plain run.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parsePortLine } from '../helpers/cli.js';
import { connectTcp, echoServer, pushEcho, waitFor } from '../helpers/net.js';
import { exchange, requireNetns, runEnv, startServiceOn7000 } from '../fixtures/netns-run.js';
import { loggedUrl, observeEnv } from '../fixtures/observe-env.js';
import type { Snapshot } from '../../src/observe/live.js';

interface UiEvent {
  at: number;
  snapshots: Snapshot[];
  error?: string;
}

async function snapshot(url: string): Promise<UiEvent> {
  const res = await fetch(new URL('/snapshot.json', url), { signal: AbortSignal.timeout(10_000) });
  expect(res.status).toBe(200);
  return (await res.json()) as UiEvent;
}

/** events reads the first event of the page's server-sent stream. */
async function firstEvent(url: string): Promise<UiEvent> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 15_000);
  try {
    const res = await fetch(new URL('/events', url), { signal: ac.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    for (;;) {
      const { value, done } = (await reader.read()) as { value?: Uint8Array; done: boolean };
      if (done) throw new Error('the event stream ended');
      text += Buffer.from(value!).toString();
      const m = /^data: (.*)$/m.exec(text);
      if (m && text.includes('\n\n')) return JSON.parse(m[1]!) as UiEvent;
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

describe('--ui', () => {
  it('serves the page data for portpub up, labelled by service', async () => {
    const o = observeEnv();
    const target = await echoServer();
    const dir = mkdtempSync(join(tmpdir(), 'portpub-ui-up-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'portpub.yaml');
    writeFileSync(file, `services:\n  web:\n    ports:\n      - "127.0.0.1::${target.port}"\n`);
    const pp = await o.start(['up', '-f', file, '--ui', '127.0.0.1:0']);
    const url = await loggedUrl(pp, 'ui');
    const port = parsePortLine(pp.lines[0]!.replace(/^web: /, '')).port;
    const page = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/^<!doctype html>/i);

    const s = await connectTcp(port);
    await pushEcho(s, 4_321, 9);
    let ev: UiEvent | undefined;
    await waitFor(
      async () => {
        ev = await snapshot(url);
        return ev.snapshots[0]?.bindings[0]?.tcp?.bytesTargetToClient === 4_321;
      },
      'the bytes on the page data',
      20_000,
    );
    expect(ev!.snapshots).toHaveLength(1);
    expect(ev!.snapshots[0]!.bindings[0]).toMatchObject({
      service: 'web',
      hostIp: '127.0.0.1',
      hostPort: port,
      protocol: 'tcp',
      tcp: { connectionsActive: 1, bytesClientToTarget: 4_321 },
    });
    expect(ev!.snapshots[0]!.connections).toMatchObject([
      { service: 'web', client: `127.0.0.1:${s.localPort}` },
    ]);
    const streamed = await firstEvent(url);
    expect(streamed.snapshots[0]!.bindings[0]!.service).toBe('web');
  });

  it('serves the page data for a portpub run service in its own network', async (ctx) => {
    requireNetns(ctx);
    const e = runEnv();
    const { run, port } = await startServiceOn7000(e, ['--ui', '127.0.0.1:0']);
    const url = await loggedUrl(run, 'ui');
    expect(await exchange(port, 'hello')).toBe('ns:hello');
    let ev: UiEvent | undefined;
    await waitFor(
      async () => {
        ev = await snapshot(url);
        return ev.snapshots[0]?.bindings[0]?.tcp?.bytesTargetToClient === 8;
      },
      'the exchange on the page data',
      20_000,
    );
    expect(ev!.snapshots[0]).toMatchObject({ name: 'svc' });
    expect(ev!.snapshots[0]!.bindings[0]).toMatchObject({
      hostPort: port,
      protocol: 'tcp',
      tcp: { connectionsTotal: 1, bytesClientToTarget: 5 },
    });
    await run.stop('SIGTERM');
  });
});
