// The --ui page in a real headless browser (Debian's chromium driven by playwright-core): it
// draws each binding, shows connections arriving and leaving and UDP flows expiring, with the
// byte counts a test client pushed, while that client opens and closes connections.
// A screenshot is kept under test-results/ (and written to docs/ with PORTPUB_DOCS_SCREENSHOT=1).
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type net from 'node:net';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { describe, expect, it, onTestFinished, type TestContext } from 'vitest';
import { parsePortLine } from '../helpers/cli.js';
import { connectTcp, echoServer, pushEcho, waitFor } from '../helpers/net.js';
import { echoServer as udpEcho, needs, request, udpSocket } from '../helpers/udp.js';
import { loadNative } from '../../src/engine/load.js';
import { loggedUrl, observeEnv } from '../fixtures/observe-env.js';

const CHROMIUM = '/usr/bin/chromium';
const RESULTS = new URL('../../test-results/', import.meta.url).pathname;
const DOCS = new URL('../../docs/', import.meta.url).pathname;
/** The page reads both TCP engines through the same live view; native where it built. */
const ENGINES = ['js', 'native'];
const native = loadNative().binding !== undefined;

/** browser starts chromium with a fresh profile, closed (and the profile removed) at the end. */
async function browser(t: TestContext): Promise<BrowserContext> {
  needs(t, [!existsSync(CHROMIUM) && `chromium (${CHROMIUM})`]);
  const profile = mkdtempSync(join(tmpdir(), 'portpub-chromium-'));
  onTestFinished(() => rmSync(profile, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    viewport: { width: 1100, height: 400 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  onTestFinished(() => context.close());
  return context;
}

/** attr polls the page until `selector`'s attribute `name` satisfies ok, and returns it. */
async function attr(
  page: Page,
  selector: string,
  name: string,
  ok: (v: string | null) => boolean,
  what: string,
): Promise<string | null> {
  let v: string | null = null;
  await waitFor(
    async () => {
      const el = await page.$(selector);
      v = el ? await el.getAttribute(name) : null;
      return ok(v);
    },
    what,
    20_000,
  );
  return v;
}

describe('--ui page', () => {
  it.for(ENGINES)(
    'draws connections arriving, ticking, leaving, and UDP flows expiring (%s engine)',
    async (engine, t) => {
      if (engine === 'native' && !native) t.skip('the native engine did not build');
      const context = await browser(t);
      const o = observeEnv();
      const tcpTarget = await echoServer();
      const udpTarget = await udpEcho('udp4', '127.0.0.1');
      const pp = await o.start(
        [
          '-p',
          `127.0.0.1::${tcpTarget.port}`,
          '-p',
          `127.0.0.1::${udpTarget.port}/udp`,
          '--name',
          'demo',
          '--udp-timeout',
          '2s',
          '--ui',
          '127.0.0.1:0',
          '--engine',
          engine,
        ],
        2,
      );
      const url = await loggedUrl(pp, 'ui');
      const tcpPort = parsePortLine(pp.lines.find((l) => l.includes('/tcp'))!).port;
      const udpPort = parsePortLine(pp.lines.find((l) => l.includes('/udp'))!).port;
      const tcpCard = `section.card[data-binding="127.0.0.1:${tcpPort}/tcp"]`;
      const udpCard = `section.card[data-binding="127.0.0.1:${udpPort}/udp"]`;

      const page = await context.newPage();
      const external: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith(url)) external.push(r.url());
      });
      await page.goto(url, { timeout: 30_000 });
      await page.waitForSelector(tcpCard, { timeout: 20_000 });
      await page.waitForSelector('#status.live', { timeout: 20_000 });

      const clients = [
        await connectTcp(tcpPort),
        await connectTcp(tcpPort),
        await connectTcp(tcpPort),
      ];
      for (const [i, c] of clients.entries()) await pushEcho(c, 10_000 * (i + 1));
      const udp = await udpSocket('udp4', '127.0.0.1');
      await request(udp, 'hello, flow', udpPort, '127.0.0.1', { tries: 5 });

      const field = (card: string, f: string, want: number) =>
        attr(
          page,
          `${card} [data-field="${f}"]`,
          'data-value',
          (v) => v === String(want),
          `${f} = ${want}`,
        );
      await field(tcpCard, 'active', 3);
      await field(tcpCard, 'c2t', 60_000);
      await field(tcpCard, 't2c', 60_000);
      await field(udpCard, 'active', 1);
      await field(udpCard, 'c2t', 11);

      // Each connection is drawn on the left, by its client address, with its own bytes.
      const node = (c: net.Socket) => `${tcpCard} .conn[data-client="127.0.0.1:${c.localPort}"]`;
      for (const [i, c] of clients.entries()) {
        await attr(
          page,
          node(c),
          'data-c2t',
          (v) => v === String(10_000 * (i + 1)),
          `client ${i} bytes`,
        );
      }
      const flow = `${udpCard} .conn[data-client="127.0.0.1:${udp.address().port}"]`;
      await attr(page, flow, 'data-state', (v) => v === 'open', 'the UDP flow drawn');

      // Bytes tick on a live connection.
      await pushEcho(clients[2]!, 5_000);
      await attr(page, node(clients[2]!), 'data-c2t', (v) => v === '35000', 'bytes to tick');
      mkdirSync(RESULTS, { recursive: true });
      await page.screenshot({ path: join(RESULTS, `ui-page-${engine}.png`), fullPage: true });
      if (process.env.PORTPUB_DOCS_SCREENSHOT === '1' && engine === 'native') {
        mkdirSync(DOCS, { recursive: true });
        await page.screenshot({ path: join(DOCS, 'ui.png'), fullPage: true });
      }

      // Every state a node is given from here on, recorded in the page (a node marked closed or
      // expired stays a moment, then goes: the record cannot miss it however slow the test is).
      // (A string: the test's TypeScript has no DOM types.)
      await page.evaluate(`
        window.seen = [];
        new MutationObserver((records) => {
          for (const r of records) {
            window.seen.push(r.target.getAttribute('data-client') + ' ' + r.target.getAttribute('data-state'));
          }
        }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-state'] });
      `);
      const seen = () => page.evaluate<string[]>('window.seen');
      const marked = async (client: string, state: string) => {
        await waitFor(
          async () => (await seen()).includes(`${client} ${state}`),
          `${client} marked ${state}`,
          20_000,
        ).catch(async (err: Error) => {
          throw new Error(`${err.message}; states seen: ${JSON.stringify(await seen())}`);
        });
      };

      // A connection closed leaves (marked closed, then gone); the others stay.
      const gone = clients[0]!;
      gone.end();
      await marked(`127.0.0.1:${gone.localPort}`, 'closed');
      await field(tcpCard, 'active', 2);
      await waitFor(
        async () => (await page.$(node(gone))) === null,
        'the closed one to go',
        20_000,
      );
      expect(await page.$(node(clients[1]!))).not.toBeNull();
      // The UDP flow expires after --udp-timeout without traffic.
      await field(udpCard, 'active', 0);
      await marked(`127.0.0.1:${udp.address().port}`, 'expired');
      await waitFor(async () => (await page.$(flow)) === null, 'the expired flow to go', 20_000);
      await page.screenshot({ path: join(RESULTS, `ui-page-${engine}-after.png`), fullPage: true });
      expect(external).toEqual([]);
    },
  );

  it('sums --tcp-workers processes on the page', async (t) => {
    const context = await browser(t);
    const o = observeEnv();
    const target = await echoServer();
    const pp = await o.start([
      '-p',
      `127.0.0.1::${target.port}`,
      '--tcp-workers',
      '2',
      '--ui',
      '127.0.0.1:0',
    ]);
    const port = parsePortLine(pp.lines[0]!).port;
    const page = await context.newPage();
    await page.goto(await loggedUrl(pp, 'ui'), { timeout: 30_000 });
    const card = `section.card[data-binding="127.0.0.1:${port}/tcp"]`;
    await page.waitForSelector(card, { timeout: 20_000 });
    for (let i = 0; i < 6; i++) await pushEcho(await connectTcp(port), 1_000);
    await attr(page, `${card} [data-field="total"]`, 'data-value', (v) => v === '6', 'total = 6');
    await attr(page, `${card} [data-field="c2t"]`, 'data-value', (v) => v === '6000', 'bytes');
    // Every process's connections are drawn, whichever accepted them.
    await waitFor(async () => (await page.$$(`${card} .conn`)).length === 6, 'six rows', 20_000);
  });

  it('portpub ui serves the page for portpubs already running, 40 rows at most', async (t) => {
    const context = await browser(t);
    const o = observeEnv();
    const target = await echoServer();
    const pp = await o.start(['-p', `127.0.0.1::${target.port}`, '--name', 'many']);
    const port = parsePortLine(pp.lines[0]!).port;
    for (let i = 0; i < 42; i++) await connectTcp(port);
    const ui = await o.start(['ui', '--listen', '127.0.0.1:0']);
    const url = ui.lines[0]!;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await context.newPage();
    await page.goto(url, { timeout: 30_000 });
    const card = `section.card[data-binding="127.0.0.1:${port}/tcp"]`;
    await attr(page, `${card} [data-field="active"]`, 'data-value', (v) => v === '42', '42 open');
    await waitFor(
      async () => (await page.$$(`${card} .conn`)).length === 40,
      '40 rows drawn',
      20_000,
    );
    expect(await page.textContent(`${card} .more`)).toBe('+ 2 more');
    expect(await page.textContent(`${card} h2 span`)).toBe('many');
    const stopped = await ui.stop('SIGINT');
    expect(stopped.code).toBe(0);
  });
});
