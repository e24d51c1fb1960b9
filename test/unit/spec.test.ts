// Tables for the -p parser: every form and error in the reference (sections 1.1-1.4 and 7), plus
// the rows of go-connections' nat_test.go/parse_test.go that apply to v0.7.0. Messages are Docker's.
import { describe, expect, it } from 'vitest';
import { SpecError } from '../../src/errors.js';
import {
  convertToStandardNotation,
  canonicalIp,
  formatSpec,
  goToLower,
  hostPortRange,
  parsePortSpec,
  parsePublish,
  validateMapping,
  type PortMapping,
  type Protocol,
} from '../../src/docker/spec.js';

/** pm builds the mapping Docker stores: target port, host port ("" = ephemeral), host IP, protocol. */
const pm = (
  targetPort: number,
  hostPort = '',
  hostIp = '',
  protocol: Protocol = 'tcp',
): PortMapping => ({ hostIp, hostPort, targetPort, protocol });

/** paired expands a target range paired one-to-one with a host range starting at hostStart. */
const paired = (
  from: number,
  to: number,
  hostStart: number | undefined,
  hostIp = '',
  protocol: Protocol = 'tcp',
): PortMapping[] => {
  const out: PortMapping[] = [];
  for (let p = from; p <= to; p++) {
    const hostPort = hostStart === undefined ? '' : String(hostStart + p - from);
    out.push(pm(p, hostPort, hostIp, protocol));
  }
  return out;
};

interface Ok {
  input: string;
  expected: PortMapping[];
}
interface Bad {
  input: string;
  error: string;
}

/** expectSpecError asserts fn throws a SpecError with code ERR_SPEC and exactly Docker's message. */
function expectSpecError(fn: () => unknown, message: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(SpecError);
  expect(thrown).toMatchObject({ code: 'ERR_SPEC', exitCode: 2, name: 'SpecError', message });
}

const accepts = (rows: Ok[]) =>
  it.each(rows)('accepts $input', ({ input, expected }) => {
    expect(parsePublish(input)).toEqual(expected);
  });

const rejects = (rows: Bad[]) =>
  it.each(rows)('rejects $input', ({ input, error }) => {
    expectSpecError(() => parsePublish(input), error);
  });

describe('parsePublish: field splitting (1, 2, 3 and 4+ fields)', () => {
  accepts([
    { input: '80', expected: [pm(80)] },
    { input: '8080:80', expected: [pm(80, '8080')] },
    { input: '127.0.0.1:8080:80', expected: [pm(80, '8080', '127.0.0.1')] },
    { input: '127.0.0.1::80', expected: [pm(80, '', '127.0.0.1')] },
    { input: ':80', expected: [pm(80)] },
    // 3 fields, both leading ones empty (nat_test.go TestStringer "no mapping, port, or proto").
    { input: '::6000', expected: [pm(6000)] },
    // nat_test.go TestStringer "no host mapping".
    { input: ':8080:6000/tcp', expected: [pm(6000, '8080')] },
    // 4+ fields: the last two are always hostPort and containerPort.
    { input: '::1:8080:80', expected: [pm(80, '8080', '::1')] },
    { input: '2001:db8::1::80', expected: [pm(80, '', '2001:db8::1')] },
    { input: '::::80', expected: [pm(80, '', '::')] },
    { input: ':::80:80', expected: [pm(80, '80', '::')] },
    // nat_test.go TestParseNetworkOptsPrivateOnly / Public / Udp / Sctp.
    { input: '192.168.1.100::80', expected: [pm(80, '', '192.168.1.100')] },
    { input: '192.168.1.100:8080:80', expected: [pm(80, '8080', '192.168.1.100')] },
    { input: '192.168.1.100::6000/udp', expected: [pm(6000, '', '192.168.1.100', 'udp')] },
    { input: '192.168.1.100::6000/sctp', expected: [pm(6000, '', '192.168.1.100', 'sctp')] },
    // nat_test.go TestParsePortSpecs.
    { input: '1234/tcp', expected: [pm(1234)] },
    { input: '2345/udp', expected: [pm(2345, '', '', 'udp')] },
    { input: '3456/sctp', expected: [pm(3456, '', '', 'sctp')] },
    { input: '1234:1234/tcp', expected: [pm(1234, '1234')] },
    { input: '2345:2345/udp', expected: [pm(2345, '2345', '', 'udp')] },
    { input: '3456:3456/sctp', expected: [pm(3456, '3456', '', 'sctp')] },
    { input: '0.0.0.0:1234:1234/tcp', expected: [pm(1234, '1234', '0.0.0.0')] },
    { input: '0.0.0.0:2345:2345/udp', expected: [pm(2345, '2345', '0.0.0.0', 'udp')] },
    { input: '0.0.0.0:3456:3456/sctp', expected: [pm(3456, '3456', '0.0.0.0', 'sctp')] },
    // nat_test.go TestParsePortSpecsWithRange.
    { input: '1234-1236/tcp', expected: paired(1234, 1236, undefined) },
    { input: '2345-2347/udp', expected: paired(2345, 2347, undefined, '', 'udp') },
    { input: '3456-3458/sctp', expected: paired(3456, 3458, undefined, '', 'sctp') },
    { input: '1234-1236:1234-1236/tcp', expected: paired(1234, 1236, 1234) },
    { input: '2345-2347:2345-2347/udp', expected: paired(2345, 2347, 2345, '', 'udp') },
    { input: '3456-3458:3456-3458/sctp', expected: paired(3456, 3458, 3456, '', 'sctp') },
    { input: '0.0.0.0:1234-1236:1234-1236/tcp', expected: paired(1234, 1236, 1234, '0.0.0.0') },
    // nat_test.go TestParsePortSpecFull.
    { input: '0.0.0.0:1234-1235:3333-3334/tcp', expected: paired(3333, 3334, 1234, '0.0.0.0') },
  ]);
  rejects([
    // nat_test.go TestParseNetworkOptsPublicNoPort / NegativePorts / TestParsePortSpecs hostname.
    { input: '192.168.1.100', error: 'invalid containerPort: 192.168.1.100' },
    { input: '192.168.1.100:-1:-1', error: 'invalid containerPort: -1' },
    { input: 'localhost:1234:1234/tcp', error: 'invalid IP address: localhost' },
    { input: 'localhost:1234-1236:1234-1236/tcp', error: 'invalid IP address: localhost' },
  ]);
});

describe('parsePublish: IPv6 host addresses', () => {
  accepts([
    // nat_test.go TestPartPortSpecIPV6.
    { input: '[2001:4860:0:2001::68]::333', expected: [pm(333, '', '2001:4860:0:2001::68')] },
    { input: '[::1]:80:80', expected: [pm(80, '80', '::1')] },
    { input: '2001:4860:0:2001::68::333', expected: [pm(333, '', '2001:4860:0:2001::68')] },
    { input: '::1:80:80', expected: [pm(80, '80', '::1')] },
    { input: '::::80', expected: [pm(80, '', '::')] },
    // nat_test.go TestStringer, bracketed and legacy un-bracketed forms.
    { input: '[::1]:8080:6000/udp', expected: [pm(6000, '8080', '::1', 'udp')] },
    { input: '[::1]::6000/udp', expected: [pm(6000, '', '::1', 'udp')] },
    { input: '::1:8080:6000/udp', expected: [pm(6000, '8080', '::1', 'udp')] },
    { input: '::::6000/udp', expected: [pm(6000, '', '::', 'udp')] },
    { input: '[::1]:8080:80', expected: [pm(80, '8080', '::1')] },
    { input: '[::]::80', expected: [pm(80, '', '::')] },
    // Quirks Docker accepts: brackets around IPv4, empty brackets (= no host IP).
    { input: '[1.2.3.4]:80:80', expected: [pm(80, '80', '1.2.3.4')] },
    { input: '[]:80:80', expected: [pm(80, '80')] },
    // The address is stored as Docker CLI 29 stores it, Go's netip.Addr text (issue 13
    // defect 15): lower case, zero runs compressed, embedded IPv4 in hex unless IPv4-mapped.
    { input: 'FE80::1:80:80', expected: [pm(80, '80', 'fe80::1')] },
    { input: '::ffff:1.2.3.4:80:80', expected: [pm(80, '80', '::ffff:1.2.3.4')] },
    { input: '1:2:3:4:5:6:7:8:80:80', expected: [pm(80, '80', '1:2:3:4:5:6:7:8')] },
    { input: '1:2:3:4:5:6:7::::80', expected: [pm(80, '', '1:2:3:4:5:6:7:0')] },
    { input: '[2001:0DB8:0:0:0:0:0:1]:80:80', expected: [pm(80, '80', '2001:db8::1')] },
    { input: '[64:ff9b::1.2.3.4]::80', expected: [pm(80, '', '64:ff9b::102:304')] },
    { input: '[::1]:8000-8002:80-82', expected: paired(80, 82, 8000, '::1') },
  ]);
  rejects([
    // Un-bracketed IPv6 needs both port fields; otherwise the IP field is ':'.
    { input: '::1:80', error: 'invalid IP address: :' },
    { input: ':::80', error: 'invalid IP address: :' },
    { input: '::80:80', error: 'invalid IP address: :' },
    // Malformed brackets: net.SplitHostPort's error, wrapped.
    { input: '[::1]:80', error: "invalid IP address [:: address [::: missing ']' in address" },
    {
      input: '[::1:80:80',
      error: "invalid IP address [::1: address [::1:: missing ']' in address",
    },
    {
      input: '[[::1]:80:80',
      error: "invalid IP address [[::1]: address [[::1]:: unexpected '[' in address",
    },
    {
      input: '[::1]x:80:80',
      error: 'invalid IP address [::1]x: address [::1]x:: missing port in address',
    },
    {
      input: '[::1]]:80:80',
      error: 'invalid IP address [::1]]: address [::1]]:: missing port in address',
    },
    {
      input: '[::1]:x:80:80',
      error: 'invalid IP address [::1]:x: address [::1]:x:: too many colons in address',
    },
    // Brackets stripped, then net.ParseIP: no names, no zones.
    { input: '[localhost]:80:80', error: 'invalid IP address: localhost' },
    { input: '[a]:80:80', error: 'invalid IP address: a' },
    { input: '[::1%eth0]:80:80', error: 'invalid IP address: ::1%eth0' },
    { input: 'fe80::1%eth0:80:80', error: 'invalid IP address: fe80::1%eth0' },
    { input: 'fe80::1%eth0::80', error: 'invalid IP address: fe80::1%eth0' },
    { input: '[fe80::1%eth0]::80', error: 'invalid IP address: fe80::1%eth0' },
    { input: '1:2:3:4:5:6:7:8:9:80:80', error: 'invalid IP address: 1:2:3:4:5:6:7:8:9' },
    { input: '1::2::3:80:80', error: 'invalid IP address: 1::2::3' },
    // Go >= 1.22 netip: at most 4 hex digits per group; embedded IPv4 without leading zeros.
    { input: '00001:::80:80', error: 'invalid IP address: 00001::' },
    { input: '::ffff:01.2.3.4:80:80', error: 'invalid IP address: ::ffff:01.2.3.4' },
  ]);
});

describe('parsePublish: IPv4 host addresses', () => {
  accepts([
    { input: '0.0.0.0:80:80', expected: [pm(80, '80', '0.0.0.0')] },
    { input: '255.255.255.255::80', expected: [pm(80, '', '255.255.255.255')] },
  ]);
  rejects([
    { input: 'localhost:80:80', error: 'invalid IP address: localhost' },
    { input: '01.2.3.4:80:80', error: 'invalid IP address: 01.2.3.4' },
    { input: '1.2.3.04:80:80', error: 'invalid IP address: 1.2.3.04' },
    { input: '256.1.1.1:80:80', error: 'invalid IP address: 256.1.1.1' },
    { input: '1.2.3:80:80', error: 'invalid IP address: 1.2.3' },
    { input: '1.2.3.4.:80:80', error: 'invalid IP address: 1.2.3.4.' },
    { input: ' 1.2.3.4:80:80', error: 'invalid IP address:  1.2.3.4' },
    { input: '1.2.3.4%eth0:80:80', error: 'invalid IP address: 1.2.3.4%eth0' },
  ]);
});

describe('parsePublish: port numbers', () => {
  accepts([
    // Leading zeros are decimal and normalised (nat_test.go TestParsePort "octal value").
    { input: '0080', expected: [pm(80)] },
    { input: '0123', expected: [pm(123)] },
    { input: '0080:0080', expected: [pm(80, '80')] },
    // strconv.ParseInt accepts a sign (v0.7.0+).
    { input: '+80', expected: [pm(80)] },
    { input: '+8080:+80', expected: [pm(80, '8080')] },
    { input: '65535:65535', expected: [pm(65535, '65535')] },
    { input: '1:1', expected: [pm(1, '1')] },
    // Host port: empty, 0 and 0-0 all mean ephemeral; Docker keeps "" vs "0" apart.
    { input: ':80', expected: [pm(80)] },
    { input: '0:80', expected: [pm(80, '0')] },
    { input: '00:80', expected: [pm(80, '0')] },
    { input: '0-0:80', expected: [pm(80, '0')] },
    { input: '1.2.3.4:0:80', expected: [pm(80, '0', '1.2.3.4')] },
    // "-0" ends a range as 0 (the first '-' is the separator).
    { input: '0--0:80', expected: [pm(80, '0')] },
  ]);
  rejects([
    // The first '-' is the range separator, so a leading '-' leaves an empty start.
    { input: '-1', error: 'invalid containerPort: -1' },
    { input: '-0', error: 'invalid containerPort: -0' },
    { input: '-', error: 'invalid containerPort: -' },
    { input: '65536', error: 'invalid containerPort: 65536' },
    { input: '99999999999999999999', error: 'invalid containerPort: 99999999999999999999' },
    // No trimming, hex, exponent, decimal point, underscores or non-ASCII digits.
    { input: ' 80', error: 'invalid containerPort:  80' },
    { input: '80 ', error: 'invalid containerPort: 80 ' },
    { input: '8 0', error: 'invalid containerPort: 8 0' },
    { input: '\t80', error: 'invalid containerPort: \t80' },
    { input: '0x50', error: 'invalid containerPort: 0x50' },
    { input: '1e3', error: 'invalid containerPort: 1e3' },
    { input: '80.0', error: 'invalid containerPort: 80.0' },
    { input: '8_0', error: 'invalid containerPort: 8_0' },
    { input: '\uff18\uff10', error: 'invalid containerPort: \uff18\uff10' },
    { input: 'http', error: 'invalid containerPort: http' },
    { input: '++80', error: 'invalid containerPort: ++80' },
    // Host field errors name the host field.
    { input: '-1:80', error: 'invalid hostPort: -1' },
    { input: '65536:80', error: 'invalid hostPort: 65536' },
    { input: ' 80:80', error: 'invalid hostPort:  80' },
    { input: '80 :80', error: 'invalid hostPort: 80 ' },
    { input: '0x1F90:80', error: 'invalid hostPort: 0x1F90' },
    { input: 'http:80', error: 'invalid hostPort: http' },
  ]);
});

describe('parsePublish: ranges', () => {
  accepts([
    { input: '80-82', expected: paired(80, 82, undefined) },
    { input: '80-80', expected: [pm(80)] },
    { input: '080-80', expected: [pm(80)] },
    { input: '80-080', expected: [pm(80)] },
    { input: '8080-8080:80-80', expected: [pm(80, '8080')] },
    { input: '65535-65535:65535', expected: [pm(65535, '65535')] },
    // Equal-length ranges pair one-to-one.
    { input: '8000-8002:80-82', expected: paired(80, 82, 8000) },
    { input: '8000-8002:80-82/udp', expected: paired(80, 82, 8000, '', 'udp') },
    { input: '1.2.3.4:8000-8002:80-82', expected: paired(80, 82, 8000, '1.2.3.4') },
    { input: '08000-08002:080-082', expected: paired(80, 82, 8000) },
    // A host range paired with 0-2 gives host "0" to the first target: ephemeral for that one.
    { input: '0-2:80-82', expected: paired(80, 82, 0) },
    // A host range with a single target port is a pool, kept verbatim (normalised numbers).
    { input: '8000-8010:80', expected: [pm(80, '8000-8010')] },
    { input: '8000-8010:80/udp', expected: [pm(80, '8000-8010', '', 'udp')] },
    { input: '1.2.3.4:8000-8010:80', expected: [pm(80, '8000-8010', '1.2.3.4')] },
    { input: '[::1]:8000-8010:80', expected: [pm(80, '8000-8010', '::1')] },
    { input: '08000-08010:80', expected: [pm(80, '8000-8010')] },
    { input: '1-65535:80', expected: [pm(80, '1-65535')] },
    { input: '8000-8010:80-80', expected: [pm(80, '8000-8010')] },
  ]);
  rejects([
    // v0.7.0 cuts at the first '-' and parses the rest as one number (older versions split).
    { input: '1-2-3', error: 'invalid containerPort: 1-2-3' },
    { input: '80-81-', error: 'invalid containerPort: 80-81-' },
    { input: '80-', error: 'invalid containerPort: 80-' },
    { input: '-80', error: 'invalid containerPort: -80' },
    { input: '81-80', error: 'invalid containerPort: 81-80' },
    { input: '80-65536', error: 'invalid containerPort: 80-65536' },
    { input: '80--1', error: 'invalid containerPort: 80--1' },
    { input: '80-x', error: 'invalid containerPort: 80-x' },
    { input: '8010-8000:80', error: 'invalid hostPort: 8010-8000' },
    { input: '80-:80', error: 'invalid hostPort: 80-' },
    { input: '5--0:80', error: 'invalid hostPort: 5--0' },
    { input: '1-2-3:80', error: 'invalid hostPort: 1-2-3' },
    // Any other length mismatch, including one host port for a target range.
    {
      input: '8000:80-81',
      error: 'invalid ranges specified for container and host Ports: 80-81 and 8000',
    },
    {
      input: '8000-8001:80-82',
      error: 'invalid ranges specified for container and host Ports: 80-82 and 8000-8001',
    },
    {
      input: '8000-8003:80-82/udp',
      error: 'invalid ranges specified for container and host Ports: 80-82 and 8000-8003',
    },
    {
      input: '1.2.3.4:0:80-81',
      error: 'invalid ranges specified for container and host Ports: 80-81 and 0',
    },
    {
      // The message echoes the fields as typed, not normalised.
      input: '08000:080-081',
      error: 'invalid ranges specified for container and host Ports: 080-081 and 08000',
    },
  ]);
});

describe('parsePublish: protocols', () => {
  accepts([
    { input: '80/tcp', expected: [pm(80)] },
    { input: '80/udp', expected: [pm(80, '', '', 'udp')] },
    { input: '80/sctp', expected: [pm(80, '', '', 'sctp')] },
    // Case-insensitive, stored lower-case.
    { input: '80/UDP', expected: [pm(80, '', '', 'udp')] },
    { input: '80/Sctp', expected: [pm(80, '', '', 'sctp')] },
    { input: '8080:80/TCP', expected: [pm(80, '8080')] },
    // Empty protocol means tcp.
    { input: '80/', expected: [pm(80)] },
    { input: '8080:80/', expected: [pm(80, '8080')] },
    { input: '80-81/', expected: paired(80, 81, undefined) },
  ]);
  rejects([
    // Cut at the first '/', so the rest is one (invalid) protocol (v0.6.0+).
    { input: '80/tcp/udp', error: 'invalid proto: tcp/udp' },
    { input: '80//', error: 'invalid proto: /' },
    // No trimming.
    { input: '80/tcp ', error: 'invalid proto: tcp ' },
    { input: '80/ tcp', error: 'invalid proto:  tcp' },
    { input: '80/xyz', error: 'invalid proto: xyz' },
    // The message shows the lower-cased protocol.
    { input: '80/XYZ', error: 'invalid proto: xyz' },
    { input: '80/icmp', error: 'invalid proto: icmp' },
    { input: '8080:80/tcp4', error: 'invalid proto: tcp4' },
    // Go's strings.ToLower maps each rune on its own (issue 13 defect 16): no final sigma, and
    // U+0130 becomes a plain i, where JavaScript's toLowerCase gives 'ας' and 'i' + U+0307.
    { input: '80/ΑΣ', error: 'invalid proto: ασ' },
    { input: '80/TCPΣ', error: 'invalid proto: tcpσ' },
    { input: '80/İCMP', error: 'invalid proto: icmp' },
    { input: '80/ÀÉ', error: 'invalid proto: àé' },
  ]);
});

describe("canonicalIp: Go's netip.Addr String()", () => {
  it.each([
    ['0.0.0.0', '0.0.0.0'],
    ['192.168.1.100', '192.168.1.100'],
    ['::', '::'],
    ['::1', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['FE80::1', 'fe80::1'],
    ['fe80:0000:0000:0000:0204:61ff:fe9d:f156', 'fe80::204:61ff:fe9d:f156'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // a tie: the first run
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'], // the longest run, not the first
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group stays
    ['1:0:0:0:0:0:0:0', '1::'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::ffff:1.2.3.4', '::ffff:1.2.3.4'],
    ['::FFFF:0102:0304', '::ffff:1.2.3.4'], // IPv4-mapped however written
    ['0:0:0:0:0:ffff:a00:1', '::ffff:10.0.0.1'],
    ['64:ff9b::1.2.3.4', '64:ff9b::102:304'],
    ['::1.2.3.4', '::102:304'], // IPv4-compatible is not IPv4-mapped
    ['::fffe:1.2.3.4', '::fffe:102:304'],
    ['2001:DB8::ABCD:EF01', '2001:db8::abcd:ef01'],
    ['0001:0002::0003', '1:2::3'],
  ])('%s -> %s', (input, expected) => {
    expect(canonicalIp(input)).toBe(expected);
  });
});

describe('goToLower: Go strings.ToLower', () => {
  it.each([
    ['TCP', 'tcp'],
    ['ΟΔΟΣ', 'οδοσ'],
    ['İ', 'i'],
    ['ǅ', 'ǆ'], // titlecase letter: its simple lowercase mapping
    ['ẞ', 'ß'],
    ['K', 'k'], // Kelvin sign
    ['😀A', '😀a'],
    ['', ''],
  ])('%j -> %j', (input, expected) => {
    expect(goToLower(input)).toBe(expected);
  });
});

describe('parsePublish: missing target port', () => {
  rejects([
    // The raw spec is echoed with a literal "<empty>" appended.
    { input: '', error: 'no port specified: <empty>' },
    { input: '80:', error: 'no port specified: 80:<empty>' },
    { input: '/udp', error: 'no port specified: /udp<empty>' },
    { input: '/', error: 'no port specified: /<empty>' },
    { input: ':', error: 'no port specified: :<empty>' },
    { input: '::', error: 'no port specified: ::<empty>' },
    { input: '[::1]::', error: 'no port specified: [::1]::<empty>' },
    // nat_test.go TestParsePortSpecEmptyContainerPort.
    { input: '0.0.0.0:1234-1235:/tcp', error: 'no port specified: 0.0.0.0:1234-1235:/tcp<empty>' },
    { input: '0.0.0.0:1234-1235:', error: 'no port specified: 0.0.0.0:1234-1235:<empty>' },
  ]);
});

describe("parsePublish: the Engine's checks on top of the parser", () => {
  accepts([
    // Host port 0 keeps meaning "any free port"; a pool starting above 0 is fine.
    { input: '0:80', expected: [pm(80, '0')] },
    { input: '0-1:80-81', expected: [pm(80, '0'), pm(81, '1')] },
    { input: '1-100:80', expected: [pm(80, '1-100')] },
  ]);
  rejects([
    // Target port 0: validatePortBindings at container create (Engine 29.1.3+).
    { input: '0', error: 'invalid port specification: "0/tcp"' },
    { input: '00', error: 'invalid port specification: "0/tcp"' },
    { input: '0/udp', error: 'invalid port specification: "0/udp"' },
    { input: '0/SCTP', error: 'invalid port specification: "0/sctp"' },
    { input: '8080:0', error: 'invalid port specification: "0/tcp"' },
    { input: '127.0.0.1::0', error: 'invalid port specification: "0/tcp"' },
    // A target range reaching 0 expands to 0/tcp, 1/tcp, ...: the 0 is rejected.
    { input: '0-1', error: 'invalid port specification: "0/tcp"' },
    { input: '8000-8001:0-1', error: 'invalid port specification: "0/tcp"' },
    { input: '0-0', error: 'invalid port specification: "0/tcp"' },
    // A pool starting at 0: the port allocator's RequestPortsInRange, numbers normalised.
    { input: '0-100:80', error: 'invalid port range: 0-100' },
    { input: '00-0100:80/udp', error: 'invalid port range: 0-100' },
    { input: '1.2.3.4:0-65535:80', error: 'invalid port range: 0-65535' },
    // Create-time validation (target 0) comes before allocation (pool at 0).
    { input: '0-100:0', error: 'invalid port specification: "0/tcp"' },
  ]);
});

describe('parsePublish: long syntax (docker run)', () => {
  accepts([
    { input: 'published=8080,target=80,protocol=udp', expected: [pm(80, '8080', '', 'udp')] },
    { input: 'target=80,published=8080', expected: [pm(80, '8080')] },
    // target alone: ":80/tcp", a random host port.
    { input: 'target=80', expected: [pm(80)] },
    // Only published, target and protocol count: host_ip, mode, name and typos are ignored.
    { input: 'host_ip=127.0.0.1,published=8080,target=80', expected: [pm(80, '8080')] },
    { input: 'mode=host,target=80', expected: [pm(80)] },
    { input: 'name=web,target=80,published=8080,app_protocol=http', expected: [pm(80, '8080')] },
    { input: 'target=80, published=8080', expected: [pm(80)] },
    { input: 'target=80,Published=8080', expected: [pm(80)] },
    // A repeated key keeps the last value.
    { input: 'target=80,target=81', expected: [pm(81)] },
    { input: 'published=8080,published=9090,target=80', expected: [pm(80, '9090')] },
    { input: 'target=80,protocol=udp,protocol=tcp', expected: [pm(80)] },
    // Values are pasted into the short form unchecked, then parsed.
    { input: 'target=80,protocol=UDP', expected: [pm(80, '', '', 'udp')] },
    { input: 'target=80,protocol=', expected: [pm(80)] },
    { input: 'published=8000-8010,target=80', expected: [pm(80, '8000-8010')] },
    {
      input: 'published=8000-8002,target=80-82,protocol=sctp',
      expected: paired(80, 82, 8000, '', 'sctp'),
    },
    { input: 'target=80,published=127.0.0.1:8080', expected: [pm(80, '8080', '127.0.0.1')] },
    { input: 'published=0,target=80', expected: [pm(80, '0')] },
  ]);
  rejects([
    // published alone is "8080:/tcp": the message echoes the converted string.
    { input: 'published=8080', error: 'no port specified: 8080:/tcp<empty>' },
    { input: 'protocol=udp', error: 'no port specified: :/udp<empty>' },
    { input: 'mode=host', error: 'no port specified: :/tcp<empty>' },
    { input: 'Target=80', error: 'no port specified: :/tcp<empty>' },
    { input: 'a==b', error: 'no port specified: :/tcp<empty>' },
    // Any '=' switches to long syntax: then "8080:80=" is one item with key "8080:80".
    { input: '8080:80=', error: 'no port specified: :/tcp<empty>' },
    // Every item must be name=value with a non-empty name.
    { input: '=80', error: "invalid publish opts format (should be name=value but got '=80')" },
    { input: '=', error: "invalid publish opts format (should be name=value but got '=')" },
    {
      input: 'published,target=80',
      error: "invalid publish opts format (should be name=value but got 'published')",
    },
    { input: 'a=b,,c=d', error: "invalid publish opts format (should be name=value but got '')" },
    { input: 'target=80,', error: "invalid publish opts format (should be name=value but got '')" },
    { input: ',target=80', error: "invalid publish opts format (should be name=value but got '')" },
    {
      input: 'target=80,mode',
      error: "invalid publish opts format (should be name=value but got 'mode')",
    },
    // Without any '=' it is short syntax, so a bare key is a bad port.
    { input: 'published', error: 'invalid containerPort: published' },
    // Converted values go through the short-syntax checks.
    { input: 'target=80,protocol=xyz', error: 'invalid proto: xyz' },
    { input: 'target=80,protocol=tcp/udp', error: 'invalid proto: tcp/udp' },
    { input: 'target=80=81', error: 'invalid containerPort: 80=81' },
    { input: 'target=http', error: 'invalid containerPort: http' },
    { input: 'published=x,target=80', error: 'invalid hostPort: x' },
    { input: 'published=localhost:8080,target=80', error: 'invalid IP address: localhost' },
    {
      input: 'published=8080,target=80-81',
      error: 'invalid ranges specified for container and host Ports: 80-81 and 8080',
    },
    { input: 'target=0', error: 'invalid port specification: "0/tcp"' },
    { input: 'published=0-100,target=80', error: 'invalid port range: 0-100' },
  ]);
});

describe('parsePublish: check order (only the first fault is reported)', () => {
  rejects([
    // empty target port -> protocol -> IP -> target port -> host port -> range lengths.
    { input: 'localhost:x:/xyz', error: 'no port specified: localhost:x:/xyz<empty>' },
    { input: 'localhost:x:y/xyz', error: 'invalid proto: xyz' },
    { input: '[::1:x:y/xyz', error: 'invalid proto: xyz' },
    { input: 'localhost:x:y', error: 'invalid IP address: localhost' },
    { input: '[::1:x:y', error: "invalid IP address [::1: address [::1:: missing ']' in address" },
    { input: '1.2.3.4:x:y', error: 'invalid containerPort: y' },
    { input: 'x:81-80', error: 'invalid containerPort: 81-80' },
    { input: '1.2.3.4:x:80-81', error: 'invalid hostPort: x' },
    { input: '8000-7000:80-81', error: 'invalid hostPort: 8000-7000' },
    {
      input: '1.2.3.4:8000:80-81',
      error: 'invalid ranges specified for container and host Ports: 80-81 and 8000',
    },
    // The parser's errors come before the Engine's.
    { input: 'x:0', error: 'invalid hostPort: x' },
    { input: 'localhost::0', error: 'invalid IP address: localhost' },
    {
      input: '8000:0-1',
      error: 'invalid ranges specified for container and host Ports: 0-1 and 8000',
    },
    { input: '0-100:0/udp', error: 'invalid port specification: "0/udp"' },
    // Long-syntax items are checked first, in order, before anything is parsed.
    {
      input: 'target=x,=y,z',
      error: "invalid publish opts format (should be name=value but got '=y')",
    },
  ]);
});

describe('parsePortSpec (short syntax only, no Engine checks)', () => {
  it.each<Ok>([
    { input: '0', expected: [pm(0)] },
    { input: '0-100:80', expected: [pm(80, '0-100')] },
    { input: '8000-8001:0-1', expected: [pm(0, '8000'), pm(1, '8001')] },
    { input: '[::1]:8080:80/udp', expected: [pm(80, '8080', '::1', 'udp')] },
  ])('accepts $input', ({ input, expected }) => {
    expect(parsePortSpec(input)).toEqual(expected);
  });

  it.each<Bad>([
    // No long-syntax rewrite here: an '=' is just a bad port.
    { input: 'target=80', error: 'invalid containerPort: target=80' },
    { input: '80/tcp/udp', error: 'invalid proto: tcp/udp' },
  ])('rejects $input', ({ input, error }) => {
    expectSpecError(() => parsePortSpec(input), error);
  });
});

describe('validateMapping', () => {
  it.each<{ mapping: PortMapping; error: string | undefined }>([
    { mapping: pm(80), error: undefined },
    { mapping: pm(80, '0'), error: undefined },
    { mapping: pm(80, '8000-8010'), error: undefined },
    { mapping: pm(0, '8080', '', 'udp'), error: 'invalid port specification: "0/udp"' },
    { mapping: pm(80, '0-100'), error: 'invalid port range: 0-100' },
  ])('$mapping.hostPort -> $mapping.targetPort: $error', ({ mapping, error }) => {
    if (error === undefined) expect(() => validateMapping(mapping)).not.toThrow();
    else expectSpecError(() => validateMapping(mapping), error);
  });
});

describe('convertToStandardNotation', () => {
  it.each<{ input: string; expected: string }>([
    // docker/cli opts_test.go TestConvertToStandardNotation.
    { input: 'published=1500,target=1200', expected: '1500:1200/tcp' },
    { input: 'published=1500,target=1200,protocol=udp', expected: '1500:1200/udp' },
    { input: 'target=80', expected: ':80/tcp' },
    { input: 'published=8080', expected: '8080:/tcp' },
    { input: 'mode=host,host_ip=127.0.0.1,target=80', expected: ':80/tcp' },
    { input: 'target=80,target=81', expected: ':81/tcp' },
    { input: 'target=80=81', expected: ':80=81/tcp' },
    { input: 'protocol=', expected: ':/' },
    // Without '=' the value is short syntax and passes through untouched.
    { input: '8080:80/udp', expected: '8080:80/udp' },
    { input: '', expected: '' },
    { input: 'published', expected: 'published' },
  ])('$input -> $expected', ({ input, expected }) => {
    expect(convertToStandardNotation(input)).toBe(expected);
  });

  it.each<Bad>([
    { input: '=80', error: "invalid publish opts format (should be name=value but got '=80')" },
    { input: 'a=b,,c=d', error: "invalid publish opts format (should be name=value but got '')" },
    {
      input: 'published,target=80',
      error: "invalid publish opts format (should be name=value but got 'published')",
    },
  ])('rejects $input', ({ input, error }) => {
    expectSpecError(() => convertToStandardNotation(input), error);
  });
});

describe('formatSpec', () => {
  it.each<{ mapping: PortMapping; expected: string }>([
    { mapping: pm(80), expected: '80/tcp' },
    { mapping: pm(80, '8080'), expected: '8080:80/tcp' },
    { mapping: pm(80, '0'), expected: '0:80/tcp' },
    { mapping: pm(80, '', '1.2.3.4', 'udp'), expected: '1.2.3.4::80/udp' },
    { mapping: pm(80, '8080', '::1'), expected: '[::1]:8080:80/tcp' },
    { mapping: pm(80, '', '::', 'sctp'), expected: '[::]::80/sctp' },
    { mapping: pm(80, '8000-8010', '127.0.0.1'), expected: '127.0.0.1:8000-8010:80/tcp' },
  ])('$expected', ({ mapping, expected }) => {
    expect(formatSpec(mapping)).toBe(expected);
  });

  // Every mapping parsePublish returns writes back to a spec that parses to exactly that mapping.
  it.each([
    '80',
    '80/udp',
    '80/Sctp',
    '8080:80',
    ':80',
    '0:80',
    '0-0:80',
    '0080:0080',
    '+80',
    '127.0.0.1::80',
    '127.0.0.1:8080:80/udp',
    '0.0.0.0:0:80',
    '[::1]:8080:80',
    '::1:8080:80',
    '::::80',
    ':::80:80',
    '[::]::80/udp',
    '2001:db8::1::80',
    'FE80::1:80:80',
    '::ffff:1.2.3.4:80:80',
    '[1.2.3.4]:80:80',
    '[]:80:80',
    '80-82',
    '8000-8002:80-82/udp',
    '0-2:80-82',
    '8000-8010:80',
    '[::1]:8000-8010:80/udp',
    'published=8080,target=80,protocol=udp',
    'target=80',
  ])('round-trips %j', (input) => {
    const mappings = parsePublish(input);
    expect(mappings.length).toBeGreaterThan(0);
    for (const m of mappings) expect(parsePublish(formatSpec(m))).toEqual([m]);
  });
});

describe('hostPortRange', () => {
  it.each<{ hostPort: string; expected: [number, number] | undefined }>([
    { hostPort: '', expected: undefined },
    { hostPort: '0', expected: undefined },
    { hostPort: '8080', expected: [8080, 8080] },
    { hostPort: '65535', expected: [65535, 65535] },
    { hostPort: '8000-8010', expected: [8000, 8010] },
    { hostPort: '1-65535', expected: [1, 65535] },
    { hostPort: '0-100', expected: [0, 100] },
  ])('$hostPort -> $expected', ({ hostPort, expected }) => {
    expect(hostPortRange(hostPort)).toEqual(expected);
  });

  it.each(['80', ':80', '0:80', '8080:80', '8000-8010:80', '1.2.3.4:8000-8002:80-82'])(
    'reads back what the parser stored for %j',
    (input) => {
      for (const m of parsePublish(input)) {
        const r = hostPortRange(m.hostPort);
        if (m.hostPort === '' || m.hostPort === '0') expect(r).toBeUndefined();
        else expect(formatRange(r)).toBe(m.hostPort);
      }
    },
  );
});

function formatRange(r: [number, number] | undefined): string {
  if (!r) return '';
  return r[0] === r[1] ? String(r[0]) : `${r[0]}-${r[1]}`;
}
