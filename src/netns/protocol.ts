// The messages between portpub and its agent inside a service's namespaces, over the agent's IPC
// channel. Types only: the agent imports nothing of portpub at run time (it is started by path).

/** Setup is what the agent does before anything else, in the new namespaces. */
export interface SetupMessage {
  t: 'setup';
  /** Hostname of the UTS namespace (Docker: the container's short id). */
  hostname: string;
  /** Files bind-mounted over their targets in the private mount namespace, e.g. /etc/hosts. */
  mounts: { source: string; target: string }[];
}

/** StartMessage runs the service's command (once). */
export interface StartMessage {
  t: 'start';
  command: string;
  args: string[];
  /** The command's whole environment, in order; nothing of the agent's own is added. */
  env: [string, string][];
  /** Whether the command reads the agent's stdin (docker run -i); else /dev/null. */
  stdin: boolean;
  /** Whether `command` is script(1) running the service on a terminal (run -t, see tty.ts). */
  tty: boolean;
  /** run -w: the command's working directory (else the agent's, portpub's own). */
  cwd?: string;
}

/** DialMessage asks for a socket connected to 127.0.0.1:port inside the namespace. */
export interface DialMessage {
  t: 'dial';
  id: number;
  protocol: 'tcp' | 'udp';
  port: number;
}

/** ListenMessage opens a TCP listener inside the namespace whose connections are handed back. */
export interface ListenMessage {
  t: 'listen';
  id: number;
  host: string;
  port: number;
}

/** BindUdpMessage binds a UDP socket inside (a link's conduit) and hands it over, as a dial does. */
export interface BindUdpMessage {
  t: 'bind-udp';
  id: number;
  host: string;
  port: number;
}

/** SignalMessage sends a signal to the command. */
export interface SignalMessage {
  t: 'signal';
  signal: NodeJS.Signals;
}

export type ToAgent =
  SetupMessage | StartMessage | DialMessage | ListenMessage | BindUdpMessage | SignalMessage;

export type FromAgent =
  /** The agent runs inside the namespaces (sent first, before setup). */
  | { t: 'hello'; pid: number }
  | { t: 'ready' }
  /** Setup failed; the agent exits after sending it. */
  | { t: 'fatal'; message: string }
  | { t: 'started'; pid: number }
  /** The command ended (code, or signal name); `error` when it never ran (127/126). */
  | { t: 'exit'; code: number | null; signal: NodeJS.Signals | null; error?: string }
  /** A dial succeeded: the socket comes with this message. */
  | { t: 'dialed'; id: number }
  /** The agent has closed its own copy of a dialled UDP socket (see dialUdp). */
  | { t: 'released'; id: number }
  | { t: 'dial-failed'; id: number; code: string; message: string }
  | { t: 'listening'; id: number }
  | { t: 'listen-failed'; id: number; code: string; message: string }
  /** A connection accepted by listener `id`: the socket comes with this message. */
  | { t: 'accepted'; id: number }
  /** A SignalMessage was acted on: the command has had the signal (or had ended already). */
  | { t: 'signalled' };
