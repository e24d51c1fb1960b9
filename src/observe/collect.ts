// The reading side of the control sockets: find the running portpubs in the state directory,
// keep one connection to each, and gather their snapshots, filtered by NAME the way `portpub
// port NAME` reads it (a service, a run's --name, or a pid).
import { PortpubError, EXIT_RUNTIME } from '../errors.js';
import { ERR_NO_SUCH_SERVICE, ERR_NOT_RUNNING, runningNames } from '../registry/queries.js';
import { readStates, type State } from '../registry/state.js';
import { ControlClient, controlPath } from './control.js';
import type { Snapshot } from './live.js';

/** Collector asks every matching running portpub for a snapshot each time collect() is called. */
export class Collector {
  private readonly clients = new Map<number, ControlClient>();

  /**
   * dir is the state directory; names, when given, keep only the bindings whose service, run
   * name or pid is one of them.
   */
  constructor(
    private readonly dir: string,
    private readonly names: readonly string[] = [],
  ) {}

  /**
   * collect returns one snapshot per live portpub, filtered by the names. Processes that do not
   * answer (one starting, one stopping, or one too old to have a control socket) are left out.
   * Throws ERR_NOT_RUNNING when nothing runs and ERR_NO_SUCH_SERVICE when a name matches nothing.
   */
  async collect(withConnections = false): Promise<Snapshot[]> {
    const states = readStates(this.dir);
    if (states.length === 0) {
      throw new PortpubError(
        ERR_NOT_RUNNING,
        `no running portpub found (state dir: ${this.dir})`,
        EXIT_RUNTIME,
      );
    }
    for (const name of this.names) {
      if (!states.some((s) => matchesState(s, name))) {
        throw new PortpubError(
          ERR_NO_SUCH_SERVICE,
          `no such service: ${name} (running: ${runningNames(states).join(', ')})`,
          EXIT_RUNTIME,
        );
      }
    }
    const wanted = states.filter(
      (s) => this.names.length === 0 || this.names.some((n) => matchesState(s, n)),
    );
    for (const [pid, c] of this.clients) {
      if (!wanted.some((s) => s.pid === pid)) {
        c.close();
        this.clients.delete(pid);
      }
    }
    const snaps = await Promise.all(wanted.map((s) => this.ask(s, withConnections)));
    return snaps.flatMap((snap) => (snap ? [this.filter(snap)] : []));
  }

  /** close lets go of every control connection. */
  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private async ask(state: State, withConnections: boolean): Promise<Snapshot | undefined> {
    try {
      let client = this.clients.get(state.pid);
      if (!client) {
        client = await ControlClient.connect(controlPath(this.dir, state.pid));
        this.clients.set(state.pid, client);
      }
      const snap = await client.request(withConnections ? 'connections' : 'stats');
      return { ...snap, ...(state.name !== undefined ? { name: state.name } : {}) };
    } catch {
      this.clients.get(state.pid)?.close();
      this.clients.delete(state.pid);
      return undefined;
    }
  }

  private filter(snap: Snapshot): Snapshot {
    if (this.names.length === 0) return snap;
    const whole = this.names.some((n) => n === snap.name || n === String(snap.pid));
    if (whole) return snap;
    const keep = (b: { service?: string }) =>
      b.service !== undefined && this.names.includes(b.service);
    return {
      ...snap,
      bindings: snap.bindings.filter(keep),
      ...(snap.connections ? { connections: snap.connections.filter(keep) } : {}),
    };
  }
}

/** matchesState: a name runningNames lists matches (a service with no published port too). */
function matchesState(s: State, name: string): boolean {
  return (
    s.name === name ||
    String(s.pid) === name ||
    s.bindings.some((b) => b.name === name) ||
    (s.services ?? []).some((svc) => svc.name === name)
  );
}
