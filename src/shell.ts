// Quoting for POSIX sh, shared by `portpub env`'s export lines and `run -t`'s command line. A leaf
// module: the namespace agent loads it through netns/tty.ts.

/** shellQuote single-quotes a word for sh, each `'` written as `'\''`: nothing in it is expanded. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
