// The shared read buffer's capture and put-back logic, driven with fake writers (no sockets):
// what a pending write holds is what it sends, whichever socket reads into the buffer meanwhile.
import { describe, expect, it } from 'vitest';
import {
  capturesHeld,
  readBuffer,
  readBufferCounts,
  relayRead,
  sweepCaptures,
  tcpReadPath,
  type ReadCounters,
  type Writer,
} from '../../src/tcp/shared-reads.js';

/**
 * FakeWriter is a socket's write side: open, a write completes at once (its bytes copied out
 * there and then); stalled, it keeps the chunk it was given (a view into the read buffer) and
 * copies it only when flushed, as libuv sends a pending write later.
 */
class FakeWriter implements Writer {
  destroyed = false;
  stalled: boolean;
  private pending: Buffer[] = [];
  readonly sent: Buffer[] = [];

  constructor(stalled: boolean) {
    this.stalled = stalled;
  }

  write(chunk: Buffer): boolean {
    if (!this.stalled && this.pending.length === 0) {
      this.sent.push(Buffer.from(chunk));
      return true;
    }
    this.pending.push(chunk);
    return false;
  }

  get writableLength(): number {
    return this.pending.reduce((n, c) => n + c.length, 0);
  }

  flush(): void {
    for (const c of this.pending.splice(0)) this.sent.push(Buffer.from(c));
    this.stalled = false;
  }

  text(): string {
    return Buffer.concat(this.sent).toString('latin1');
  }
}

/** read simulates a socket reading `text` into buf, as Node's onread does. */
function read(buf: Buffer, text: string): number {
  return buf.write(text, 0, 'latin1');
}

const counters = (): ReadCounters => ({ sharedReadsCaptured: 0, sharedReadsRestored: 0 });

describe('shared read buffer: capture and put-back', () => {
  it('a write that completes at once leaves the buffer shared', () => {
    const buf = readBuffer();
    const w = new FakeWriter(false);
    const c = counters();
    expect(relayRead(w, read(buf, 'hello'), buf, c)).toBe(true);
    expect(w.text()).toBe('hello');
    expect(readBuffer()).toBe(buf);
    expect(c).toEqual({ sharedReadsCaptured: 0, sharedReadsRestored: 0 });
  });

  it('a pending write captures the buffer; a later read into it is copied out and put back', () => {
    const buf = readBuffer();
    const before = { ...readBufferCounts };
    const slow = new FakeWriter(true);
    const fast = new FakeWriter(false);
    const c = counters();
    expect(relayRead(slow, read(buf, 'AAAA'), buf, c)).toBe(false);
    expect(c.sharedReadsCaptured).toBe(1);
    expect(readBuffer()).not.toBe(buf); // the next read anywhere lands in a fresh buffer
    expect(capturesHeld()).toBeGreaterThan(0);

    // Another socket still reads into the captured buffer (its next buffer is switched only after
    // this read): its bytes go out as they are, and the pending write's bytes are put back.
    relayRead(fast, read(buf, 'BBBB'), buf, c);
    expect(fast.text()).toBe('BBBB');
    expect(buf.toString('latin1', 0, 4)).toBe('AAAA');
    expect(c.sharedReadsRestored).toBe(1);
    expect(readBufferCounts.restored - before.restored).toBe(1);

    slow.flush();
    expect(slow.text()).toBe('AAAA');
    // Once the write has completed, the next read into that buffer releases the capture.
    relayRead(fast, read(buf, 'CC'), buf, c);
    expect(fast.text()).toBe('BBBBCC');
    expect(c.sharedReadsRestored).toBe(1);
    sweepCaptures();
    expect(capturesHeld()).toBe(0);
  });

  it('a capture ends when the writer is destroyed (libuv drops its pending writes)', () => {
    const buf = readBuffer();
    const slow = new FakeWriter(true);
    relayRead(slow, read(buf, 'XY'), buf);
    expect(capturesHeld()).toBe(1);
    slow.destroyed = true;
    sweepCaptures();
    expect(capturesHeld()).toBe(0);
  });

  it('two pending writes to one writer: the capture lasts until the later bytes are sent too', () => {
    const first = readBuffer();
    const slow = new FakeWriter(true);
    relayRead(slow, read(first, 'one'), first);
    const second = readBuffer();
    expect(second).not.toBe(first);
    relayRead(slow, read(second, 'two'), second);
    expect(capturesHeld()).toBe(2);
    // Overwrite both behind the writer's back: the put-back restores what each write needs.
    const other = new FakeWriter(false);
    relayRead(other, read(first, 'ONE'), first);
    relayRead(other, read(second, 'TWO'), second);
    expect(other.text()).toBe('ONETWO');
    slow.flush();
    expect(slow.text()).toBe('onetwo');
    sweepCaptures();
    expect(capturesHeld()).toBe(0);
  });
});

describe('tcpReadPath', () => {
  it('is shared on Node 20 only, off with PORTPUB_SHARED_READS=0, forced on with =1', () => {
    expect(tcpReadPath({}, '20.20.2')).toBe('shared');
    expect(tcpReadPath({}, '22.1.0')).toBe('data');
    expect(tcpReadPath({ PORTPUB_SHARED_READS: '0' }, '20.20.2')).toBe('data');
    expect(tcpReadPath({ PORTPUB_SHARED_READS: '1' }, '22.1.0')).toBe('shared');
  });
});
