// --ui and `portpub ui`: serves the one self-contained page (page.ts) and a server-sent event
// stream with a snapshot of every mapping and its live connections once per interval.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Snapshot } from './live.js';
import { PAGE } from './page.js';

/** UiOptions: where the snapshots come from and how often the page gets one. */
export interface UiOptions {
  snapshots: () => Promise<Snapshot[]>;
  /** intervalMs between two events; 1000 by default. */
  intervalMs?: number;
}

/** UiEvent is the data of one server-sent event. */
export interface UiEvent {
  at: number;
  snapshots: Snapshot[];
  /** error says why no snapshot could be read this time (the page shows it). */
  error?: string;
}

/**
 * uiHandler answers `/` with the page, `/events` with the event stream and `/snapshot.json`
 * with one event's data; each open stream has its own timer, cleared when it closes.
 */
export function uiHandler(
  options: UiOptions,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const intervalMs = options.intervalMs ?? 1000;
  const event = async (): Promise<UiEvent> => {
    try {
      return { at: Date.now(), snapshots: await options.snapshots() };
    } catch (err) {
      return { at: Date.now(), snapshots: [], error: (err as Error).message };
    }
  };
  return async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && !(req.method === 'HEAD' && path !== '/events')) {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET' }).end('GET only\n');
    } else if (path === '/') {
      res
        .writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          // Everything the page needs is inline; it may talk to this server only.
          'content-security-policy':
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
          'cache-control': 'no-store',
        })
        .end(PAGE);
    } else if (path === '/snapshot.json') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(await event()));
    } else if (path === '/events') {
      stream(req, res, event, intervalMs);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  };
}

/** stream sends an event now and then every intervalMs until the client goes away. */
function stream(
  req: IncomingMessage,
  res: ServerResponse,
  event: () => Promise<UiEvent>,
  intervalMs: number,
): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-store',
    connection: 'keep-alive',
  });
  res.write(`retry: ${Math.max(intervalMs, 500)}\n\n`);
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  const tick = async () => {
    const e = await event();
    if (done) return;
    res.write(`data: ${JSON.stringify(e)}\n\n`);
    timer = setTimeout(() => void tick(), intervalMs);
  };
  req.on('close', () => {
    done = true;
    clearTimeout(timer);
  });
  res.on('error', () => {
    done = true;
    clearTimeout(timer);
  });
  void tick();
}
