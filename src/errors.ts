// Errors with stable codes: tests assert `code`, users read `message`, the CLI maps `exitCode`.

/** Exit code for bad input: a spec, a flag, a config file (documented in the README). */
export const EXIT_USAGE = 2;
/** Exit code for a runtime failure: a bind refused, a target unusable. */
export const EXIT_RUNTIME = 1;

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
