// `portpub down [-f FILE] [-p PROJECT] [-t SECONDS]`: as docker compose down, every detached
// service of a compose project (`portpub up -d`) is stopped (SIGTERM, drain, SIGKILL after the
// timeout; see stop.ts) and its record removed. The project is -p, else the one the file names.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { loadComposeProject } from '../publish/compose-load.js';
import { listContainers, readRecord, removeContainer } from '../registry/containers.js';
import { stateDir } from '../registry/state.js';
import type { CliContext } from './context.js';
import { stopContainer } from './stop.js';

interface DownOptions {
  file?: string[];
  projectName?: string;
  timeout: number;
}

/** registerDown adds `portpub down`. */
export function registerDown(program: Command, ctx: CliContext): void {
  program
    .command('down')
    .description('stop and remove the services of a compose project started with portpub up -d')
    .option(
      '-f, --file <file>',
      'config file, repeatable, as for portpub up (it names the project)',
      (value: string, prev: string[] | undefined) => [...(prev ?? []), value],
    )
    .option('-p, --project-name <name>', 'the project (default: as portpub up finds it)')
    .option('-t, --timeout <seconds>', 'seconds to wait before killing it', seconds, 10)
    .action(async (opts: DownOptions) => {
      const project =
        opts.projectName ??
        loadComposeProject({ cwd: process.cwd(), ...(opts.file ? { files: opts.file } : {}) }).name;
      const dir = stateDir();
      const records = listContainers(dir).filter((r) => r.kind === 'up' && r.project === project);
      for (const record of records) {
        await stopContainer(record, opts.timeout * 1000, ctx);
        const now = readRecord(record.id, dir);
        if (now) removeContainer(now, dir);
        // docker compose down prints one line per container removed, on stderr.
        const names = record.services && record.services.length > 0 ? record.services : [project];
        ctx.io.stderr.write(names.map((s) => ` Service ${s}  Removed\n`).join(''));
      }
    });
}

function seconds(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('--timeout takes whole seconds');
  return Number(value);
}
