// The benchmark's command line: plain data out of argv, with a usage text.
import { PARAMS, type Mode, type Params } from './params.js';
import { ALL_SUBJECTS } from './subjects.js';

export const SCENARIO_NAMES = [
  'tcp-bulk',
  'tcp-rr',
  'tcp-connrate',
  'tcp-idle',
  'udp-rr',
  'udp-clients',
];

/** Options are a parsed command line. */
export interface Options {
  mode: Mode;
  params: Params;
  only: string[];
  subjects: string[];
  json?: string;
  /** clients: `auto` uses iperf3/sockperf where installed, `node` only our own clients. */
  clients: 'auto' | 'node';
  /** portpub is the bin/portpub.js to run (default: the one of this checkout). */
  portpub?: string;
  /** ports is the range to take ports from (default: 20000-32000, from a random point). */
  ports?: [number, number];
  keepLogs: boolean;
  /** ignoreLoad: measure at once, without waiting out (or repeating for) other load. */
  ignoreLoad: boolean;
  help: boolean;
}

export const USAGE = `usage: npm run bench -- [options]

  --quick            shorter runs
  --smoke            a very short run (a few hundred operations per row), Node clients only
  --only LIST        scenarios, comma-separated: ${SCENARIO_NAMES.join(', ')}
  --subjects LIST    subjects, comma-separated: ${ALL_SUBJECTS.join(', ')}
  --json FILE        also write every value, ratio and note as JSON
  --clients node     use only the Node clients, even where iperf3/sockperf are installed
  --portpub FILE     the bin/portpub.js to measure (default: this checkout's)
  --ports FIRST-LAST take listening ports from this range only (default 20000-32000)
  --keep-logs        keep the temp dir with the subjects' configs and logs
  --ignore-load      do not wait for other processes to go quiet before each measurement,
                     nor measure again when they were busy during one (--smoke implies it)
`;

function range(v: string | undefined): [number, number] {
  const m = /^(\d+)-(\d+)$/.exec(v ?? '');
  const [first, last] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  if (!(first >= 1024 && last <= 65535 && first < last)) {
    throw new Error(`--ports: want FIRST-LAST within 1024-65535, got ${JSON.stringify(v ?? '')}`);
  }
  return [first, last];
}

function list(v: string | undefined, flag: string, known: string[]): string[] {
  if (!v) throw new Error(`${flag} needs a value`);
  const items = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = items.filter((i) => !known.includes(i));
  if (unknown.length > 0)
    throw new Error(`${flag}: unknown ${unknown.join(', ')} (known: ${known.join(', ')})`);
  return items;
}

/** parseOptions turns argv (without node and the script) into Options, or throws. */
export function parseOptions(argv: string[]): Options {
  let mode: Mode = 'default';
  const o: Omit<Options, 'mode' | 'params'> = {
    only: SCENARIO_NAMES,
    subjects: ALL_SUBJECTS,
    clients: 'auto',
    keepLogs: false,
    ignoreLoad: false,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string | undefined => argv[++i];
    if (a === '--quick') mode = 'quick';
    else if (a === '--smoke') mode = 'smoke';
    else if (a === '--only') o.only = list(value(), a, SCENARIO_NAMES);
    else if (a === '--subjects') o.subjects = list(value(), a, ALL_SUBJECTS);
    else if (a === '--json') o.json = value() ?? '';
    else if (a === '--clients')
      o.clients = list(value(), a, ['auto', 'node'])[0] as 'auto' | 'node';
    else if (a === '--portpub') o.portpub = value() ?? '';
    else if (a === '--ports') o.ports = range(value());
    else if (a === '--keep-logs') o.keepLogs = true;
    else if (a === '--ignore-load') o.ignoreLoad = true;
    else if (a === '--help' || a === '-h') o.help = true;
    else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  if (o.json === '') throw new Error('--json needs a file');
  if (o.portpub === '') throw new Error('--portpub needs a file');
  if (mode === 'smoke') {
    o.clients = 'node';
    o.ignoreLoad = true; // a check that every row comes out, not a measurement
  }
  return { ...o, mode, params: PARAMS[mode] };
}
