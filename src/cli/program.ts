// The commander program: global settings, then every command, each from its own file.
//
// Adding a command (the registration pattern):
//   1. Create src/cli/<name>.ts exporting `register<Name>(program: Command, ctx: CliContext)`.
//      It calls `program.command('<name>')...action(...)`, writes only to ctx.io.stdout/stderr,
//      listens to signals only through ctx.host, and reports a non-zero exit with
//      ctx.setExit(code) (or throws a PortpubError: main() prints it and exits with its
//      exitCode). It never calls process.exit, process.on or console.*.
//   2. Import it here and add it to COMMANDS, one line each. The order is the order in --help.
// Tests run any command in-process with main(argv, io) from ./main.ts.
import { readFileSync } from 'node:fs';
import { Command, Help, type Option } from 'commander';
import type { CliContext } from './context.js';
import { registerDown } from './down.js';
import { registerEnv } from './env.js';
import { registerExec } from './exec.js';
import { registerPort } from './port.js';
import { registerReload } from './reload.js';
import { registerLogs } from './logs.js';
import { registerPs } from './ps.js';
import { registerRm } from './rm.js';
import { registerRun } from './run.js';
import { registerStop } from './stop.js';
import { registerStart } from './start.js';
import { registerInspect } from './inspect.js';
import { registerServe } from './serve.js';
import { registerStats } from './stats.js';
import { registerTop } from './top.js';
import { registerUi } from './ui.js';
import { registerUp } from './up.js';

/** RegisterCommand adds one subcommand to the program. */
export type RegisterCommand = (program: Command, ctx: CliContext) => void;

const COMMANDS: readonly RegisterCommand[] = [
  registerUp,
  registerDown,
  registerPort,
  registerEnv,
  registerRun,
  registerExec,
  registerPs,
  registerInspect,
  registerLogs,
  registerStop,
  registerStart,
  registerRm,
  registerReload,
  registerStats,
  registerTop,
  registerUi,
];

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

/** buildProgram makes a fresh program writing to ctx.io; commander errors throw (exitOverride). */
export function buildProgram(ctx: CliContext): Command {
  const program = new Command('portpub')
    .version(VERSION, '-v, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.io.stdout.write(s),
      writeErr: (s) => ctx.io.stderr.write(s),
    })
    .showHelpAfterError('(run portpub --help for usage)')
    .showSuggestionAfterError()
    .configureHelp(HELP)
    .helpCommand(false);
  registerServe(program, ctx);
  program.enablePositionalOptions();
  for (const register of COMMANDS) register(program, ctx);
  // A subcommand's usage error points at that subcommand's help.
  for (const command of program.commands) {
    command.showHelpAfterError(`(run portpub ${command.name()} --help for usage)`);
  }
  addHelpCommand(program);
  refuseUnknownCommands(program);
  return program;
}

/**
 * addHelpCommand is `portpub help [command]`. Commander's own help command answers an unknown
 * name (`help upp`) with the whole root help on stderr and no word of what was wrong; this one
 * says `unknown command 'upp'` with the suggestion `portpub upp` gets (exit 2).
 */
function addHelpCommand(program: Command): void {
  program
    .command('help')
    .argument('[command]')
    .description('show help for a command')
    .helpOption(false)
    .action((name: string | undefined) => {
      if (name === undefined) program.help();
      const cmd = program.commands.find((c) => c.name() === name || c.aliases().includes(name));
      if (cmd) cmd.help();
      unknownCommand(program, name);
    });
}

/** unknownCommand is commander's error for an unknown command `name`, with its suggestion. */
function unknownCommand(program: Command, name: string): never {
  // commander words the error (and finds the suggestion) from the first operand of the root.
  program.args = [name];
  return (program as unknown as { unknownCommand(): never }).unknownCommand();
}

/**
 * refuseUnknownCommands: the root command serves `-p` and takes no operands, so an operand is a
 * mistyped command (`portpub upp`): say so, with commander's suggestion, instead of commander's
 * "too many arguments" (the root has an action, so commander would not look for a command).
 * Set after the subcommands exist, so they keep refusing excess arguments.
 */
function refuseUnknownCommands(program: Command): void {
  program.allowExcessArguments(true);
  program.hook('preAction', (_root, actionCommand) => {
    if (actionCommand === program && program.args.length > 0) {
      unknownCommand(program, program.args[0]!);
    }
  });
}

/**
 * HELP is the help layout of every command (subcommands inherit it): options in the order they
 * are declared, and no `(default: false)`, `(default: [])` or `(default: {})`, which say nothing,
 * nor `(default: null)` (commander's JSON text of Infinity or NaN): such an option names its
 * default in words (Option.default(value, description)) or shows none.
 */
const HELP: Partial<Help> = {
  sortOptions: false,
  optionDescription(this: Help, option: Option): string {
    const plain = Help.prototype.optionDescription.bind(this);
    if (option.defaultValueDescription || !isNoiseDefault(option.defaultValue)) {
      return plain(option);
    }
    const copy = Object.assign(Object.create(Object.getPrototypeOf(option) as object), option, {
      defaultValue: undefined,
    }) as Option;
    return plain(copy);
  },
};

function isNoiseDefault(value: unknown): boolean {
  if (value === false || value === null) return true;
  if (typeof value === 'number' && !Number.isFinite(value)) return true;
  if (Array.isArray(value)) return value.length === 0;
  return (
    typeof value === 'object' &&
    value !== null &&
    Object.getPrototypeOf(value) === Object.prototype &&
    Object.keys(value).length === 0
  );
}
