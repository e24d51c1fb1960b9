// `portpub stats [NAME...]`, like docker stats: each binding's live counters read from the
// running portpubs' control sockets, as a table redrawn in place each second on a terminal,
// plain tables (or JSON lines) one after another otherwise; `--no-stream` prints one and exits.
import { Option, type Command } from 'commander';
import { Collector } from '../observe/collect.js';
import type { Snapshot } from '../observe/live.js';
import { formatStats, formatTop, statsRows, topRows } from '../observe/table.js';
import { ERR_NOT_RUNNING } from '../registry/queries.js';
import { stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';
import { durationOption } from './options.js';
import { EXIT_PIPE, watchReader } from './reader-gone.js';

/** WatchOptions are the options stats and top share. */
export interface WatchOptions {
  stream: boolean;
  format: 'table' | 'json';
  interval: number;
}

interface StatsOptions extends WatchOptions {
  connections: boolean;
}

/** Clear the screen and go home: each frame replaces the last one on a terminal. */
const CLEAR = '\x1b[H\x1b[2J';

/** addWatchOptions adds --no-stream, --format and --interval. */
export function addWatchOptions(cmd: Command): Command {
  return cmd
    .option('--no-stream', 'print one table and exit')
    .addOption(
      new Option('--format <format>', 'table, or json: one JSON object per line')
        .choices(['table', 'json'])
        .default('table'),
    )
    .addOption(
      durationOption(
        '--interval <duration>',
        'time between two refreshes (and the window of the rates)',
        1_000,
        1,
      ),
    );
}

export function registerStats(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('stats')
    .description(
      "live counters of running portpubs, like docker stats: per binding, connections or flows, bytes each way and per second, drops (NAME: a service, a run's --name or a pid)",
    )
    .argument('[names...]', 'services, run names or pids; default: every running portpub')
    .option('--connections', 'list live connections and flows instead (as portpub top)', false);
  addWatchOptions(cmd).action(async (names: string[], opts: StatsOptions) => {
    await watch(ctx, new Collector(stateDir(), names), opts, opts.connections ? 'top' : 'stats');
  });
}

/**
 * watch prints frames until a stop signal or its reader goes away (or once, with --no-stream).
 * Stats frames need two snapshots for the rates, so the first comes one interval after the start.
 */
export async function watch(
  ctx: CliContext,
  collector: Collector,
  opts: WatchOptions,
  view: 'stats' | 'top',
): Promise<void> {
  const { io } = ctx;
  const tty = (io.stdout as { isTTY?: boolean }).isTTY === true && opts.format === 'table';
  let stopped = false;
  let wake: (() => void) | undefined;
  const off = ctx.host.onStop(() => {
    stopped = true;
    wake?.();
  });
  // A reader gone (`portpub stats | head -3`) ends it too, as a stop does, with SIGPIPE's status.
  const reader = watchReader(io.stdout);
  reader.signal.addEventListener('abort', () => {
    stopped = true;
    ctx.setExit(EXIT_PIPE);
    wake?.();
  });
  const pause = () =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, opts.interval);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  try {
    let before: Snapshot[] = [];
    if (view === 'stats') {
      before = await collector.collect(false);
      await pause();
    }
    while (!stopped) {
      // Once the table is up, portpubs may all stop and start again: show them gone, keep going.
      const now = await collector.collect(view === 'top').catch((err: unknown) => {
        if (before.length > 0 && (err as { code?: string }).code === ERR_NOT_RUNNING) return [];
        throw err;
      });
      io.stdout.write(frame(now, before, opts, view, tty));
      before = now;
      if (!opts.stream) break;
      await pause();
    }
  } finally {
    off();
    reader.off();
    collector.close();
  }
}

function frame(
  now: Snapshot[],
  before: Snapshot[],
  opts: WatchOptions,
  view: 'stats' | 'top',
  tty: boolean,
): string {
  const json = (rows: readonly object[]) => rows.map((r) => `${JSON.stringify(r)}\n`).join('');
  if (opts.format === 'json') {
    return view === 'stats' ? json(statsRows(now, before)) : json(topRows(now));
  }
  const table = view === 'stats' ? formatStats(statsRows(now, before)) : formatTop(topRows(now));
  if (tty) return CLEAR + table;
  return opts.stream ? `${table}\n` : table;
}
