// V8 heap sizing for a process that holds thousands of long-lived sockets. bin/portpub.js sets
// these before the CLI loads (loading it alone would already grow the young generation to
// 4 MiB), and TCP worker processes get them on their command line.
// - semi-space-growth-factor=1 keeps the young generation at its initial 1 MiB per semi-space.
//   Every held connection survives the scavenges after its accept, and by default that survival
//   keeps doubling the young generation up to 16 MiB per semi-space: ~4 KiB of RSS per idle
//   connection with 2000 of them, for no speed gain a proxy can measure (GC is ~1 % of its CPU).
// - heap-growing-percent=50 runs a full GC once the old generation has grown by half, instead of
//   V8's default of up to 4x for a fast-collecting heap: connection set-up garbage promoted
//   during a burst is then reclaimed instead of staying resident (~1.5 KiB per connection with
//   5000 held).
export const HEAP_FLAGS: readonly string[] = [
  '--semi-space-growth-factor=1',
  '--heap-growing-percent=50',
];
