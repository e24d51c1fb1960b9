// Bad forwarder options fail as OptionError (ERR_USAGE, exit 2), naming the option, with the
// same text as before: the library caller can tell which option, the CLI's exit code is unchanged.
import { describe, expect, it } from 'vitest';
import { ERR_USAGE, EXIT_USAGE, OptionError } from '../../src/errors.js';
import { validateTcpOptions, type TcpForwarderOptions } from '../../src/tcp/options.js';
import { validateUdpOptions, type UdpForwarderOptions } from '../../src/udp/options.js';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

const tcp = { targetHost: '127.0.0.1', targetPort: 80 };
const udp = { targetHost: '127.0.0.1', targetPort: 53 };

describe('TCP forwarder options', () => {
  const rows: [Partial<TcpForwarderOptions>, string, string][] = [
    [{ targetHost: '' }, 'targetHost', 'targetHost must be a non-empty IP address or hostname'],
    [{ targetPort: 0 }, 'targetPort', 'targetPort must be a whole number 1-65535, got 0'],
    [
      { idleTimeoutMs: -1 },
      'idleTimeoutMs',
      'idleTimeoutMs must be a whole number 0-2147483647, got -1',
    ],
    [
      { readPath: 'x' as 'data' },
      'readPath',
      `readPath must be 'shared', 'targets' or 'data', got "x"`,
    ],
  ];
  it.each(rows)('%j -> OptionError(%s)', (bad, option, message) => {
    const err = thrown(() => validateTcpOptions({ ...tcp, ...bad }));
    expect(err).toBeInstanceOf(OptionError);
    expect(err).toMatchObject({ option, message, code: ERR_USAGE, exitCode: EXIT_USAGE });
  });
});

describe('UDP forwarder options', () => {
  const rows: [Partial<UdpForwarderOptions>, string, string][] = [
    [{ targetPort: 70000 }, 'targetPort', 'targetPort: expected an integer 1-65535, got 70000'],
    [{ maxFlows: 0 }, 'maxFlows', 'maxFlows: expected an integer >= 1, got 0'],
    [{ flowTimeoutMs: 0 }, 'flowTimeoutMs', 'flowTimeoutMs: expected milliseconds > 0, got 0'],
    [{ logger: {} as never }, 'logger', 'logger: expected a pino Logger'],
  ];
  it.each(rows)('%j -> OptionError(%s)', (bad, option, message) => {
    const err = thrown(() => validateUdpOptions({ ...udp, ...bad }));
    expect(err).toBeInstanceOf(OptionError);
    expect(err).toMatchObject({ option, message, code: ERR_USAGE, exitCode: EXIT_USAGE });
  });
});
