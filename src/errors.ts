// Errors with stable codes: tests assert `code`, users read `message`, the CLI maps `exitCode`.

/** Exit code for bad input: a spec, a flag, a config file (documented in the README). */
export const EXIT_USAGE = 2;
/** Exit code for a runtime failure: a bind refused, a target unusable. */
export const EXIT_RUNTIME = 1;

/**
 * ERRORS is the catalog: every stable code portpub raises, its exit code in the CLI, and what it
 * means. Tests assert `code`; users read `message`; the README lists this table. A code not
 * here is a defect (test/unit/cli-errors.test.ts walks the sources to check).
 */
export const ERRORS = {
  ERR_USAGE: [EXIT_USAGE, 'a bad flag, option value or config file; library misuse (OptionError)'],
  ERR_SPEC: [EXIT_USAGE, "a -p value Docker rejects (the message is Docker's)"],
  ERR_SELF_LOOP: [
    EXIT_USAGE,
    "a target is portpub's own listening socket, here or via other portpubs",
  ],
  ERR_BAD_NAME: [EXIT_USAGE, "a --name outside Docker's rule [a-zA-Z0-9][a-zA-Z0-9_.-]+"],
  ERR_BIND: [EXIT_RUNTIME, "a host address and port could not be bound (Docker's words)"],
  ERR_UNSUPPORTED: [EXIT_RUNTIME, 'something Docker accepts that portpub cannot serve (sctp)'],
  ERR_NAME_IN_USE: [EXIT_RUNTIME, 'a --name a running portpub or run service holds (Conflict.)'],
  ERR_WORKER: [EXIT_RUNTIME, 'a --tcp-workers process did not start'],
  ERR_NOT_RUNNING: [EXIT_RUNTIME, 'no running portpub to ask (port, env, run --link)'],
  ERR_NO_SUCH_SERVICE: [EXIT_RUNTIME, 'NAME is no service, run name, container or pid that runs'],
  ERR_AMBIGUOUS_SERVICE: [EXIT_RUNTIME, 'NAME is served by more than one running portpub'],
  ERR_NO_PORT: [EXIT_RUNTIME, "docker port's: nothing is published on that port"],
  ERR_LINK: [EXIT_RUNTIME, 'a --link that names no running service'],
  ERR_LINK_TARGET: [EXIT_RUNTIME, 'a linked service forwards to several addresses (no one _ADDR)'],
  ERR_NO_RELOAD_TARGET: [
    EXIT_RUNTIME,
    'reload: no (or no single) portpub up, or a pid that is none',
  ],
  ERR_RELOAD_FAILED: [EXIT_RUNTIME, 'reload: the new file was refused, the running one is kept'],
  ERR_RELOAD_TIMEOUT: [EXIT_RUNTIME, 'reload: no outcome reported within --timeout'],
  ERR_NOT_PORTPUB: [EXIT_RUNTIME, 'a pid from a state file cannot be proven to be that portpub'],
  ERR_STATE_DIR: [EXIT_RUNTIME, 'a state directory portpub will not use (owner, symlink)'],
  ERR_NO_SUCH_CONTAINER: [EXIT_RUNTIME, 'no run service has that id, id prefix or name'],
  ERR_CONTAINER_RUNNING: [EXIT_RUNTIME, 'rm of a run service that still runs (use -f)'],
  ERR_NO_USERNS: [
    EXIT_RUNTIME,
    'unprivileged user namespaces are off: run has no network of its own',
  ],
  ERR_NAMESPACE: [
    EXIT_RUNTIME,
    'run: the namespaces or their agent could not be set up, or it died',
  ],
  ERR_AGENT_GONE: [EXIT_RUNTIME, 'run: a connection asked of a namespace agent that has exited'],
  ERR_TTY: [EXIT_RUNTIME, 'run -t: -it without a terminal on stdin, or no script(1) to open one'],
  ERR_CONTROL: [EXIT_RUNTIME, 'a control socket could not be reached or answered nonsense'],
  ERR_EXEC: [
    EXIT_RUNTIME,
    'exec: the service is not running or runs no command, or its namespaces cannot be entered',
  ],
  ERR_START: [EXIT_RUNTIME, 'start, restart: the service did not start again, or is no run'],
} as const satisfies Record<string, readonly [number, string]>;

/** ErrorCode is every code of the catalog. */
export type ErrorCode = keyof typeof ERRORS;

// One constant per code, for `err.code === ERR_...` checks without typos.
export const ERR_USAGE = 'ERR_USAGE';
export const ERR_SPEC = 'ERR_SPEC';
export const ERR_SELF_LOOP = 'ERR_SELF_LOOP';
export const ERR_BAD_NAME = 'ERR_BAD_NAME';
export const ERR_BIND = 'ERR_BIND';
export const ERR_UNSUPPORTED = 'ERR_UNSUPPORTED';
export const ERR_NAME_IN_USE = 'ERR_NAME_IN_USE';
export const ERR_WORKER = 'ERR_WORKER';
export const ERR_NOT_RUNNING = 'ERR_NOT_RUNNING';
export const ERR_NO_SUCH_SERVICE = 'ERR_NO_SUCH_SERVICE';
export const ERR_AMBIGUOUS_SERVICE = 'ERR_AMBIGUOUS_SERVICE';
export const ERR_NO_PORT = 'ERR_NO_PORT';
export const ERR_LINK = 'ERR_LINK';
export const ERR_LINK_TARGET = 'ERR_LINK_TARGET';
export const ERR_NO_RELOAD_TARGET = 'ERR_NO_RELOAD_TARGET';
export const ERR_RELOAD_FAILED = 'ERR_RELOAD_FAILED';
export const ERR_RELOAD_TIMEOUT = 'ERR_RELOAD_TIMEOUT';
export const ERR_NOT_PORTPUB = 'ERR_NOT_PORTPUB';
export const ERR_STATE_DIR = 'ERR_STATE_DIR';
export const ERR_NO_SUCH_CONTAINER = 'ERR_NO_SUCH_CONTAINER';
export const ERR_CONTAINER_RUNNING = 'ERR_CONTAINER_RUNNING';
export const ERR_NO_USERNS = 'ERR_NO_USERNS';
export const ERR_NAMESPACE = 'ERR_NAMESPACE';
export const ERR_AGENT_GONE = 'ERR_AGENT_GONE';
export const ERR_TTY = 'ERR_TTY';
export const ERR_CONTROL = 'ERR_CONTROL';
export const ERR_EXEC = 'ERR_EXEC';
export const ERR_START = 'ERR_START';

/** PortpubError is the base of every error portpub raises on purpose. */
export class PortpubError extends Error {
  readonly code: string;
  readonly exitCode: number;

  constructor(
    code: string,
    message: string,
    exitCode: number = EXIT_RUNTIME,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** SpecError is a `-p` value Docker would reject; the message contains Docker's own text. */
export class SpecError extends PortpubError {
  /** The raw value as the user typed it. */
  readonly spec: string;

  constructor(spec: string, message: string) {
    super(ERR_SPEC, message, EXIT_USAGE);
    this.spec = spec;
  }
}

/** UsageError is a bad flag, option value or config file. */
export class UsageError extends PortpubError {
  constructor(message: string, options?: ErrorOptions) {
    super(ERR_USAGE, message, EXIT_USAGE, options);
  }
}

/** BindError is a host address/port that could not be bound; the message is Docker's wording. */
export class BindError extends PortpubError {
  constructor(message: string, options?: ErrorOptions) {
    super(ERR_BIND, message, EXIT_RUNTIME, options);
  }
}

/** UnsupportedError is something Docker accepts that portpub cannot serve (SCTP on Node). */
export class UnsupportedError extends PortpubError {
  constructor(message: string) {
    super(ERR_UNSUPPORTED, message, EXIT_RUNTIME);
  }
}

/**
 * OptionError is library misuse: an option of the wrong type or out of range. It is a
 * UsageError (code ERR_USAGE) that also says which option, as `ws` does: `option` is the name
 * as the caller spells it, and the message starts with it.
 */
export class OptionError extends UsageError {
  /** The option, as the caller spells it (`idleTimeoutMs`). */
  readonly option: string;

  constructor(option: string, message: string) {
    super(message.startsWith(option) ? message : `${option}: ${message}`);
    this.option = option;
  }
}

/**
 * inService puts the service an error is about in front of its message (`web: Bind for ...`), so
 * a failure of `portpub up` says which service it is about. Other values pass through.
 */
export function inService(err: unknown, service: string | undefined): unknown {
  if (service !== undefined && err instanceof PortpubError) {
    err.message = `${service}: ${err.message}`;
  }
  return err;
}
