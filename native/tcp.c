/* The TCP relay in the engine thread: accept from a listening socket Node bound, connect to the
 * target without blocking, and move bytes with splice(2) through a pipe per direction, taken from
 * a pool only while bytes are in flight. Semantics are src/tcp/forwarder.ts's: a FIN becomes
 * shutdown(SHUT_WR) on the other side, a reset becomes a reset (SO_LINGER 0), backpressure is the
 * pipe and the sockets' own buffers, and the connect, idle and half-close-linger timeouts.
 * Model: haproxy src/raw_sock.c (raw_sock_to_pipe / raw_sock_from_pipe). */
#define _GNU_SOURCE
#include "engine.h"
#include "tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* PIPE_BYTES is the pipe size asked for (256 KiB, like the TypeScript relay's read size); the
 * kernel may refuse (pipe-user-pages-soft), and the default 64 KiB pipe works too. */
#define PIPE_BYTES (256 * 1024)
/* SPLICE_MAX is how much one splice may move. */
#define SPLICE_MAX (1 << 20)
/* RUN_BUDGET bounds the bytes one connection moves before the others get a turn. */
#define RUN_BUDGET (4u << 20)
/* KEEPALIVE_S matches the TypeScript relay (Go's 15 s, docker-proxy's). */
#define KEEPALIVE_S 15
/* WAIT_MS: how long a connection that found no pipe (out of descriptors) waits to retry. */
#define WAIT_MS 100

static void set_opt(int fd, int level, int name, int value) {
  /* A tuning option that fails leaves a working socket: nothing to undo, nothing to report. */
  (void)setsockopt(fd, level, name, &value, sizeof value);
}

void tcp_tune(int fd) {
  set_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  set_opt(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
  set_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE, KEEPALIVE_S);
  set_opt(fd, IPPROTO_TCP, TCP_KEEPINTVL, KEEPALIVE_S);
}

/* close_fd closes one socket, with a reset (SO_LINGER 0) when asked. The descriptor is gone
 * whatever close() returns (Linux), so it is never retried. */
void tcp_close_fd(int *fd, int reset) {
  if (*fd < 0) return;
  if (reset) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(*fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  (void)close(*fd);
  *fd = -1;
}

void tcp_emit(struct engine *e, struct listener *l, int type, int err,
                        const struct sockaddr_storage *peer) {
  struct event ev = {.type = type, .listener = l->id, .err = err};
  if (peer) format_addr(peer, ev.client, sizeof ev.client);
  engine_emit(e, &ev);
}

static int pipe_take(struct engine *e, struct dir *d) {
  if (d->pipe_r >= 0) return 0;
  if (e->npool > 0) {
    e->npool--;
    d->pipe_r = e->pool[e->npool][0];
    d->pipe_w = e->pool[e->npool][1];
    return 0;
  }
  int p[2];
  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) return -1;
  (void)fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES); /* best effort: the default size works */
  d->pipe_r = p[0];
  d->pipe_w = p[1];
  return 0;
}

/* pipe_give returns an empty pipe to the pool (a pipe still holding bytes is closed). */
void tcp_pipe_give(struct engine *e, struct dir *d) {
  if (d->pipe_r < 0) return;
  size_t cap = sizeof e->pool / sizeof e->pool[0];
  if (d->in_pipe == 0 && (size_t)e->npool < cap) {
    e->pool[e->npool][0] = d->pipe_r;
    e->pool[e->npool][1] = d->pipe_w;
    e->npool++;
  } else {
    close(d->pipe_r);
    close(d->pipe_w);
  }
  d->pipe_r = d->pipe_w = -1;
  d->in_pipe = 0;
}

void tcp_drained_check(struct engine *e, struct listener *l) {
  if (!l->closing || l->nconns > 0 || l->dead) return;
  l->dead = 1;
  tcp_emit(e, l, EV_DRAINED, 0, NULL);
}

/* finish ends a connection: both sockets closed (the caller chose which get a reset), pipes
 * returned, counters updated, the close event sent; the memory is freed after the batch. */
void tcp_finish(struct engine *e, struct conn *c, int how, int err) {
  if (c->state == C_DEAD) return;
  if (c->how == HOW_NONE) c->how = how;
  if (c->err == 0) c->err = err;
  tcp_close_fd(&c->fd[0], 0);
  tcp_close_fd(&c->fd[1], 0);
  tcp_pipe_give(e, &c->dir[0]);
  tcp_pipe_give(e, &c->dir[1]);
  c->state = C_DEAD;
  if (c->local.ss_family != 0) {
    struct conn **p = &e->own_tcp[addr_hash(&c->local) & (OWN_BUCKETS - 1)];
    while (*p && *p != c) p = &(*p)->lnext;
    if (*p) *p = c->lnext;
  }
  list_remove(&c->all);
  list_remove(&c->tq);
  struct listener *l = c->l;
  l->nconns--;
  stat_add(l, ST_ACTIVE, -1);
  struct event ev = {
      .type = EV_CLOSED,
      .listener = l->id,
      .conn = (double)c->id,
      .how = c->how,
      .err = c->err,
      .up = (double)c->up,
      .down = (double)c->down,
      .duration_ms = (double)(e->now_ms - c->opened_ms),
  };
  /* Nothing per connection crosses to JavaScript unless it logs it (a failed connect is warned). */
  if (l->log_closed || c->how == HOW_CONNECT_FAILED) {
    format_addr(&c->peer, ev.client, sizeof ev.client);
    engine_emit(e, &ev);
  }
  c->next_free = e->graveyard;
  e->graveyard = c;
  tcp_drained_check(e, l);
}

/* fail ends a connection because socket `side` failed: that socket is closed, the other reset. */
static void fail(struct engine *e, struct conn *c, int side, int err) {
  tcp_close_fd(&c->fd[1 - side], 1);
  tcp_finish(e, c, side == 0 ? HOW_RESET_BY_CLIENT : HOW_RESET_BY_TARGET, err);
}

void tcp_connect_failed(struct engine *e, struct conn *c, int err) {
  stat_add(c->l, ST_CONNECT_FAILURES, 1);
  tcp_close_fd(&c->fd[1], 0);
  tcp_close_fd(&c->fd[0], 1);
  tcp_finish(e, c, HOW_CONNECT_FAILED, err);
}

/* requeue moves the connection to the timeout queue its state calls for. */
void tcp_requeue(struct conn *c) {
  struct listener *l = c->l;
  list_remove(&c->tq);
  if (c->state == C_CONNECTING && l->connect_ms > 0) list_push_tail(&l->q_connect, &c->tq);
  if (c->state == C_OPEN && l->idle_ms > 0) list_push_tail(&l->q_open, &c->tq);
  if (c->state == C_HALF && (l->idle_ms > 0 || l->linger_ms > 0)) list_push_tail(&l->q_half, &c->tq);
}

static void touch(struct engine *e, struct conn *c) {
  c->active_ms = e->now_ms;
  if (c->tq.next != &c->tq && c->tq.next != NULL) {
    struct link *h = c->state == C_OPEN ? &c->l->q_open : &c->l->q_half;
    list_remove(&c->tq);
    list_push_tail(h, &c->tq);
  }
}

enum pump_result { P_IDLE, P_AGAIN, P_WAIT_PIPE, P_ENDED };

/* pass_small sends n bytes just read into the engine's copy buffer on to the destination; what
 * it does not take waits in the direction's pipe, which is empty (small reads happen only then)
 * and holds at least one page, TCP_SMALL bytes. Returns 0, or the errno that ends the pair. */
static int pass_small(struct engine *e, struct conn *c, int i, size_t n, size_t *budget) {
  struct dir *d = &c->dir[i];
  int to = 1 - i;
  ssize_t w;
  do w = send(c->fd[to], e->small, n, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  if (w < 0) {
    if (errno != EAGAIN) return errno;
    c->writable[to] = 0;
    w = 0;
  }
  *budget = *budget > (size_t)w ? *budget - (size_t)w : 0;
  size_t rest = n - (size_t)w;
  if (rest == 0) return 0;
  ssize_t p;
  do p = write(d->pipe_w, e->small + w, rest);
  while (p < 0 && errno == EINTR);
  if (p != (ssize_t)rest) return p < 0 ? errno : ENOBUFS; /* cannot happen: see above */
  d->in_pipe += (uint32_t)rest;
  return 0;
}

/* pump moves bytes one way (i: 0 client -> target, 1 target -> client) until a socket would
 * block, the budget is spent or the direction is done. Small reads are copied (recv, then send
 * at once: two system calls and no page references, what request/response traffic needs); a
 * read that fills the copy buffer switches the direction to splice(2) through its pipe until a
 * splice comes back small. A short recv means the socket was drained (unless a FIN or error is
 * pending), so no read is spent on EAGAIN; nginx's ngx_unix_recv does the same under EPOLLRDHUP.
 * A splice into the pipe that returns EAGAIN while the pipe holds bytes may mean a full pipe
 * rather than an empty socket, so the source counts as drained only when that happens with an
 * empty pipe (edge-triggered epoll would not report it again). */
static int pump(struct engine *e, struct conn *c, int i, size_t *budget) {
  struct dir *d = &c->dir[i];
  int from = i, to = 1 - i;
  while (!d->done) {
    int moved = 0;
    if (!d->eof && c->readable[from]) {
      if (pipe_take(e, d) < 0) return P_WAIT_PIPE;
      int small = d->in_pipe == 0 && !d->bulk && c->writable[to];
      ssize_t n;
      if (small) {
        n = recv(c->fd[from], e->small, TCP_SMALL, MSG_DONTWAIT);
      } else {
        n = splice(c->fd[from], NULL, d->pipe_w, NULL, SPLICE_MAX,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      }
      if (n > 0) {
        if (i == 0) {
          c->up += (uint64_t)n;
          stat_add(c->l, ST_UP, (double)n);
        } else {
          c->down += (uint64_t)n;
          stat_add(c->l, ST_DOWN, (double)n);
        }
        moved = 1;
        if (small && n < POLL_SMALL) e->moved_small = 1;
        else e->moved_bulk = 1;
        if (small) {
          if (n == TCP_SMALL) d->bulk = 1;
          else if (!c->ending[from]) c->readable[from] = 0;
          int err = pass_small(e, c, i, (size_t)n, budget);
          if (err != 0) {
            fail(e, c, to, err);
            return P_ENDED;
          }
        } else {
          if (n < TCP_SMALL && d->in_pipe == 0) d->bulk = 0;
          d->in_pipe += (uint32_t)n;
        }
      } else if (n == 0) {
        d->eof = 1;
        moved = 1;
      } else if (errno == EAGAIN) {
        if (d->in_pipe == 0) c->readable[from] = 0;
      } else if (errno != EINTR) {
        fail(e, c, from, errno);
        return P_ENDED;
      }
    }
    if (d->in_pipe > 0 && c->writable[to]) {
      ssize_t m = splice(d->pipe_r, NULL, c->fd[to], NULL, d->in_pipe,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (m > 0) {
        d->in_pipe -= (uint32_t)m;
        *budget = *budget > (size_t)m ? *budget - (size_t)m : 0;
        moved = 1;
      } else if (m < 0 && errno == EAGAIN) {
        c->writable[to] = 0;
      } else if (m < 0 && errno != EINTR) {
        fail(e, c, to, errno);
        return P_ENDED;
      }
    }
    if (d->in_pipe == 0) tcp_pipe_give(e, d);
    if (d->eof && d->in_pipe == 0) {
      /* ENOTCONN: the destination is already fully shut down (its peer reset or closed);
         the other direction finds out by itself. When the other direction is done too, the
         pair ends now and close() sends the FIN (nothing is left unread: that direction read
         its EOF), so the shutdown is skipped. */
      if (!c->dir[to].done && shutdown(c->fd[to], SHUT_WR) < 0 && errno != ENOTCONN) {
        fail(e, c, to, errno);
        return P_ENDED;
      }
      d->done = 1;
      return P_IDLE;
    }
    if (moved) touch(e, c);
    if (!moved) return P_IDLE;
    if (*budget == 0) return P_AGAIN;
  }
  return P_IDLE;
}

static void queue(struct engine *e, struct conn *c, int which) {
  if (c->queued) return;
  c->queued = (uint8_t)which;
  if (which == 1) {
    c->again = e->again_head;
    e->again_head = c;
  } else {
    if (e->wait_head == NULL) e->wait_until = e->now_ms + WAIT_MS;
    c->again = e->wait_head;
    e->wait_head = c;
  }
}

/* tcp_run moves what can be moved on an open connection and notices when both ways are done. */
void tcp_run(struct engine *e, struct conn *c) {
  if (c->state != C_OPEN && c->state != C_HALF) return;
  size_t budget = RUN_BUDGET;
  int again = 0, wait = 0;
  for (int i = 0; i < 2; i++) {
    int r = pump(e, c, i, &budget);
    if (r == P_ENDED) return;
    if (r == P_AGAIN) again = 1;
    if (r == P_WAIT_PIPE) wait = 1;
  }
  if (c->dir[0].done && c->dir[1].done) {
    tcp_finish(e, c, HOW_END, 0);
    return;
  }
  if ((c->dir[0].done || c->dir[1].done) && c->state == C_OPEN) {
    c->state = C_HALF;
    c->active_ms = e->now_ms;
    tcp_requeue(c);
  }
  if (again) queue(e, c, 1);
  else if (wait) queue(e, c, 2);
}

static int sock_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

static void connected(struct engine *e, struct conn *c) {
  c->state = C_OPEN;
  c->active_ms = e->now_ms;
  tcp_requeue(c);
  tcp_run(e, c);
}

void tcp_on_side(struct engine *e, struct side *s, uint32_t events) {
  struct conn *c = s->conn;
  int i = s->idx;
  if (c->state == C_DEAD) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->readable[i] = 1;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->ending[i] = 1;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) c->writable[i] = 1;
  if (c->state == C_CONNECTING) {
    if (i == 1 && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
      /* Writable without an error or hang-up is a connect that succeeded (Linux's tcp_poll
         reports a failed one with EPOLLERR): SO_ERROR is read only when there is one to read. */
      int err = 0;
      if (events & (EPOLLERR | EPOLLHUP)) {
        err = sock_error(c->fd[1]);
        if (err == 0) err = ECONNREFUSED;
      }
      if (err != 0) tcp_connect_failed(e, c, err);
      else connected(e, c);
    } else if (i == 0 && (events & EPOLLERR)) {
      /* The client went away while we were still connecting: abandon the attempt (no code in
         the close line, as in the TypeScript relay). */
      tcp_finish(e, c, HOW_RESET_BY_CLIENT, 0);
    }
    return;
  }
  if (events & EPOLLERR) {
    int err = sock_error(c->fd[i]);
    if (err != 0) {
      fail(e, c, i, err);
      return;
    }
  }
  tcp_run(e, c);
}

