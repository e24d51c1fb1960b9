// Errors with stable codes: tests assert `code`, users read `message`, the CLI maps `exitCode`.

/** Exit code for bad input: a spec, a flag, a config file (documented in the README). */
export const EXIT_USAGE = 2;
/** Exit code for a runtime failure: a bind refused, a target unusable. */
export const EXIT_RUNTIME = 1;

/** ERR_BAD_NAME: a --name outside Docker's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (exit 2). */
export const ERR_BAD_NAME = 'ERR_BAD_NAME';
/** ERR_NAME_IN_USE: a --name a running portpub already holds, Docker's "Conflict." (exit 1). */
export const ERR_NAME_IN_USE = 'ERR_NAME_IN_USE';

/** ERR_NO_RELOAD_TARGET: no (or no single) `portpub up` to send SIGHUP to (exit 1). */
export const ERR_NO_RELOAD_TARGET = 'ERR_NO_RELOAD_TARGET';
/** ERR_RELOAD_FAILED: `portpub reload`: the reload failed, the running configuration is kept. */
export const ERR_RELOAD_FAILED = 'ERR_RELOAD_FAILED';
/** ERR_RELOAD_TIMEOUT: `portpub reload`: no outcome reported within --timeout. */
export const ERR_RELOAD_TIMEOUT = 'ERR_RELOAD_TIMEOUT';

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
    super('ERR_SPEC', message, EXIT_USAGE);
    this.spec = spec;
  }
}

/** UsageError is a bad flag, option value or config file. */
export class UsageError extends PortpubError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_USAGE', message, EXIT_USAGE, options);
  }
}

/** BindError is a host address/port that could not be bound; the message is Docker's wording. */
export class BindError extends PortpubError {
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_BIND', message, EXIT_RUNTIME, options);
  }
}

/** UnsupportedError is something Docker accepts that portpub cannot serve (SCTP on Node). */
export class UnsupportedError extends PortpubError {
  constructor(message: string) {
    super('ERR_UNSUPPORTED', message, EXIT_RUNTIME);
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
