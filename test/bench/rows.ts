// The rows of the ratio table, in print order: what each measures, its unit, and which way is
// better. A scenario fills some of them for each subject.

/** Row is one line of the table. `perProcess` rows have no value for direct (no process). */
export interface Row {
  key: string;
  label: string;
  better: 'higher' | 'lower';
  scenario: string;
  perProcess?: boolean;
}

export const ROWS: Row[] = [
  { key: 'tcp_gbps_1', label: 'TCP 1 stream, Gbit/s', better: 'higher', scenario: 'tcp-bulk' },
  { key: 'tcp_gbps_4', label: 'TCP 4 streams, Gbit/s', better: 'higher', scenario: 'tcp-bulk' },
  {
    key: 'cpu_gb_1',
    label: 'CPU s/GB, 1 stream',
    better: 'lower',
    scenario: 'tcp-bulk',
    perProcess: true,
  },
  {
    key: 'cpu_gb_4',
    label: 'CPU s/GB, 4 streams',
    better: 'lower',
    scenario: 'tcp-bulk',
    perProcess: true,
  },
  { key: 'tcp_p50_us', label: 'TCP ping-pong p50, µs', better: 'lower', scenario: 'tcp-rr' },
  { key: 'tcp_p99_us', label: 'TCP ping-pong p99, µs', better: 'lower', scenario: 'tcp-rr' },
  { key: 'conn_per_s', label: 'new TCP connections/s', better: 'higher', scenario: 'tcp-connrate' },
  {
    key: 'idle_kib',
    label: 'idle connection RSS, KiB/conn',
    better: 'lower',
    scenario: 'tcp-idle',
    perProcess: true,
  },
  { key: 'udp_p50_us', label: 'UDP ping-pong p50, µs', better: 'lower', scenario: 'udp-rr' },
  { key: 'udp_p99_us', label: 'UDP ping-pong p99, µs', better: 'lower', scenario: 'udp-rr' },
  {
    key: 'udp_home_pct',
    label: 'UDP clients, replies home, %',
    better: 'higher',
    scenario: 'udp-clients',
  },
];
