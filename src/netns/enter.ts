// `portpub exec`: joining a running service's namespaces with util-linux's nsenter(1), as docker
// exec joins a container's. The agent (PID 1 of the service's PID namespace, the child of the
// unshare(1) that portpub started) is the process whose namespaces are entered; nsenter forks the
// command into the PID namespace, so it ends with the service as everything else there does.
import { readFileSync, readlinkSync } from 'node:fs';
import { ERR_EXEC, EXIT_RUNTIME, PortpubError } from '../errors.js';
import { findExecutable } from './tty.js';

/** childrenOf lists the pids whose parent is `pid` (Linux's /proc/PID/task/PID/children). */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** comm is a process's name, or undefined once it is gone. */
export function comm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * agentOf finds the namespace agent of the portpub `pid` serves a `run` service from: the one
 * child of its unshare child. Throws ERR_EXEC when there is none (the service is ending).
 */
export function agentOf(pid: number, name: string): number {
  const unshare = childrenOf(pid).find((c) => comm(c) === 'unshare');
  const agent = unshare === undefined ? undefined : childrenOf(unshare)[0];
  if (agent === undefined) {
    throw new PortpubError(
      ERR_EXEC,
      `the namespaces of ${name} are not there (is it stopping?): nothing was run`,
      EXIT_RUNTIME,
    );
  }
  return agent;
}

function userNamespace(pid: number | 'self'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/user`);
  } catch {
    return undefined;
  }
}

/**
 * enterArgs are nsenter's arguments before `--` to join the agent's network, mount, UTS and PID
 * namespaces (and its user namespace, when it has one of its own: the command is root there, as
 * the service is), in `workdir` or else the agent's own working directory.
 */
export function enterArgs(agent: number, workdir: string | undefined): string[] {
  const own = userNamespace(agent);
  // --preserve-credentials: the namespace maps portpub's uid to root already, and an
  // unprivileged one denies setgroups(2), which nsenter would otherwise call.
  const user =
    own !== undefined && own !== userNamespace('self') ? ['--user', '--preserve-credentials'] : [];
  return [
    `--target=${agent}`,
    ...user,
    '--net',
    '--mount',
    '--uts',
    '--pid',
    workdir === undefined ? '--wd' : `--wd=${workdir}`,
  ];
}

/** requireTool returns the path of util-linux's `name` (nsenter, setsid), or throws what to install. */
export function requireTool(name: string, path: string | undefined): string {
  const found = findExecutable(name, path);
  if (found === undefined) {
    throw new PortpubError(
      ERR_EXEC,
      `${name} (util-linux) is not installed: it is needed to enter the service\u2019s namespaces`,
      EXIT_RUNTIME,
    );
  }
  return found;
}

/**
 * descendantSignals sends signals to the process `depth` generations below `pid` (nsenter's
 * child, or under script the command script runs), by its pid on the host (the pids the command
 * sees are its PID namespace's), and to its process group, which it leads (setsid, or script's
 * session), so that a shell's children hear a Ctrl-C too. A signal sent before that process
 * exists waits for it, looked for every 10 ms while `running()` says nsenter still runs: once
 * nsenter has ended its pid may be another's.
 */
export function descendantSignals(
  pid: number,
  depth: number,
  running: () => boolean,
): (signal: NodeJS.Signals) => void {
  const find = (): number | undefined => {
    let at: number | undefined = pid;
    for (let i = 0; i < depth && at !== undefined; i++) at = childrenOf(at)[0];
    return at;
  };
  return (signal) => {
    const attempt = () => {
      if (!running()) return;
      const target = find();
      if (target === undefined) {
        setTimeout(attempt, 10).unref();
        return;
      }
      for (const to of [-target, target]) {
        try {
          process.kill(to, signal);
          return;
        } catch {
          // no such group (the command left it): the process alone; or gone already
        }
      }
    };
    attempt();
  };
}
