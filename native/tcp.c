/* The TCP relay in the engine thread: accept from a listening socket Node bound, connect to the
 * target without blocking, and move bytes with splice(2) through a pipe per direction, taken from
 * a pool only while bytes are in flight. Semantics are src/tcp/forwarder.ts's: a FIN becomes
 * shutdown(SHUT_WR) on the other side, a reset becomes a reset (SO_LINGER 0), backpressure is the
 * pipe and the sockets' own buffers, and the connect, idle and half-close-linger timeouts.
 * Model: haproxy src/raw_sock.c (raw_sock_to_pipe / raw_sock_from_pipe). */
#define _GNU_SOURCE
#include "engine.h"

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
/* ACCEPT_BUDGET bounds one accept burst. */
#define ACCEPT_BUDGET 256
/* KEEPALIVE_S matches the TypeScript relay (Go's 15 s, docker-proxy's). */
#define KEEPALIVE_S 15
#define WAIT_MS 100

static void set_opt(int fd, int level, int name, int value) {
  /* A tuning option that fails leaves a working socket: nothing to undo, nothing to report. */
  (void)setsockopt(fd, level, name, &value, sizeof value);
}

static void tune(int fd) {
  set_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
  set_opt(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
  set_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE, KEEPALIVE_S);
  set_opt(fd, IPPROTO_TCP, TCP_KEEPINTVL, KEEPALIVE_S);
}

/* close_fd closes one socket, with a reset (SO_LINGER 0) when asked. The descriptor is gone
 * whatever close() returns (Linux), so it is never retried. */
static void close_fd(int *fd, int reset) {
  if (*fd < 0) return;
  if (reset) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(*fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  (void)close(*fd);
  *fd = -1;
}

static void emit_simple(struct engine *e, struct listener *l, int type, int err,
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
static void pipe_give(struct engine *e, struct dir *d) {
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

static void drained_check(struct engine *e, struct listener *l) {
  if (!l->closing || l->nconns > 0 || l->dead) return;
  l->dead = 1;
  emit_simple(e, l, EV_DRAINED, 0, NULL);
}

/* finish ends a connection: both sockets closed (the caller chose which get a reset), pipes
 * returned, counters updated, the close event sent; the memory is freed after the batch. */
static void finish(struct engine *e, struct conn *c, int how, int err) {
  if (c->state == C_DEAD) return;
  if (c->how == HOW_NONE) c->how = how;
  if (c->err == 0) c->err = err;
  close_fd(&c->fd[0], 0);
  close_fd(&c->fd[1], 0);
  pipe_give(e, &c->dir[0]);
  pipe_give(e, &c->dir[1]);
  c->state = C_DEAD;
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
  format_addr(&c->peer, ev.client, sizeof ev.client);
  engine_emit(e, &ev);
  c->next_free = e->graveyard;
  e->graveyard = c;
  drained_check(e, l);
}

/* fail ends a connection because socket `side` failed: that socket is closed, the other reset. */
static void fail(struct engine *e, struct conn *c, int side, int err) {
  close_fd(&c->fd[1 - side], 1);
  finish(e, c, side == 0 ? HOW_RESET_BY_CLIENT : HOW_RESET_BY_TARGET, err);
}

static void connect_failed(struct engine *e, struct conn *c, int err) {
  stat_add(c->l, ST_CONNECT_FAILURES, 1);
  close_fd(&c->fd[1], 0);
  close_fd(&c->fd[0], 1);
  finish(e, c, HOW_CONNECT_FAILED, err);
}

/* requeue moves the connection to the timeout queue its state calls for. */
static void requeue(struct conn *c) {
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

/* pump moves bytes one way (i: 0 client -> target, 1 target -> client) until a socket would
 * block, the budget is spent or the direction is done. A splice into the pipe that returns
 * EAGAIN while the pipe holds bytes may mean a full pipe rather than an empty socket, so the
 * source counts as drained only when that happens with an empty pipe (edge-triggered epoll
 * would not report it again). */
static int pump(struct engine *e, struct conn *c, int i, size_t *budget) {
  struct dir *d = &c->dir[i];
  int from = i, to = 1 - i;
  while (!d->done) {
    int moved = 0;
    if (!d->eof && c->readable[from]) {
      if (pipe_take(e, d) < 0) return P_WAIT_PIPE;
      ssize_t n = splice(c->fd[from], NULL, d->pipe_w, NULL, SPLICE_MAX,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d->in_pipe += (uint32_t)n;
        if (i == 0) {
          c->up += (uint64_t)n;
          stat_add(c->l, ST_UP, (double)n);
        } else {
          c->down += (uint64_t)n;
          stat_add(c->l, ST_DOWN, (double)n);
        }
        moved = 1;
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
    if (d->in_pipe == 0) pipe_give(e, d);
    if (d->eof && d->in_pipe == 0) {
      /* ENOTCONN: the destination is already fully shut down (its peer reset or closed);
         the other direction finds out by itself. */
      if (shutdown(c->fd[to], SHUT_WR) < 0 && errno != ENOTCONN) {
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
    finish(e, c, HOW_END, 0);
    return;
  }
  if ((c->dir[0].done || c->dir[1].done) && c->state == C_OPEN) {
    c->state = C_HALF;
    c->active_ms = e->now_ms;
    requeue(c);
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
  requeue(c);
  tcp_run(e, c);
}

void tcp_on_side(struct engine *e, struct side *s, uint32_t events) {
  struct conn *c = s->conn;
  int i = s->idx;
  if (c->state == C_DEAD) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->readable[i] = 1;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) c->writable[i] = 1;
  if (c->state == C_CONNECTING) {
    if (i == 1 && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
      int err = sock_error(c->fd[1]);
      if (err == 0 && (events & (EPOLLERR | EPOLLHUP))) err = ECONNREFUSED;
      if (err != 0) connect_failed(e, c, err);
      else connected(e, c);
    } else if (i == 0 && (events & EPOLLERR)) {
      /* The client went away while we were still connecting: abandon the attempt. */
      int err = sock_error(c->fd[0]);
      finish(e, c, HOW_RESET_BY_CLIENT, err ? err : ECONNRESET);
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

static struct conn *conn_alloc(struct engine *e) {
  struct conn *c = e->free_conns;
  if (c) e->free_conns = c->next_free;
  else c = malloc(sizeof *c);
  if (c == NULL) return NULL;
  memset(c, 0, sizeof *c);
  return c;
}

static int watch(struct engine *e, struct conn *c, int i) {
  c->sides[i].kind = K_SIDE;
  c->sides[i].idx = (uint8_t)i;
  c->sides[i].conn = c;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                           .data.ptr = &c->sides[i]};
  return epoll_ctl(e->epfd, EPOLL_CTL_ADD, c->fd[i], &ev);
}

/* start takes one accepted client: counts it, opens its target connection, watches both. */
static void start(struct engine *e, struct listener *l, int fd, const struct sockaddr_storage *ss) {
  struct conn *c = conn_alloc(e);
  if (c == NULL) {
    close_fd(&fd, 1);
    emit_simple(e, l, EV_ACCEPT_ERROR, ENOMEM, ss);
    return;
  }
  c->fd[0] = fd;
  c->fd[1] = -1;
  c->dir[0].pipe_r = c->dir[0].pipe_w = c->dir[1].pipe_r = c->dir[1].pipe_w = -1;
  c->peer = *ss;
  c->l = l;
  c->id = e->next_conn_id++;
  c->opened_ms = c->active_ms = e->now_ms;
  c->state = C_CONNECTING;
  list_init(&c->tq);
  list_push_tail(&l->all, &c->all);
  l->nconns++;
  stat_add(l, ST_TOTAL, 1);
  stat_add(l, ST_ACTIVE, 1);
  if (l->log_opened) {
    struct event ev = {.type = EV_OPENED, .listener = l->id, .conn = (double)c->id};
    format_addr(ss, ev.client, sizeof ev.client);
    engine_emit(e, &ev);
  }
  tune(fd);
  if (watch(e, c, 0) < 0) {
    connect_failed(e, c, errno);
    return;
  }
  c->fd[1] = socket(l->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd[1] < 0) {
    connect_failed(e, c, errno);
    return;
  }
  tune(c->fd[1]);
  int rc;
  do rc = connect(c->fd[1], (struct sockaddr *)&l->target, l->target_len);
  while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno != EINPROGRESS) {
    connect_failed(e, c, errno);
    return;
  }
  if (watch(e, c, 1) < 0) {
    connect_failed(e, c, errno);
    return;
  }
  requeue(c);
  /* A connect that completed at once is reported by epoll as writable, like any other. */
}

static int fd_exhausted(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* tcp_on_listener accepts until the backlog is empty (edge-triggered) or the burst budget is
 * spent. Out of descriptors, the spare descriptor is given up to accept and close each waiting
 * client (they see a plain close, as under libuv), so the backlog cannot wedge the listener. */
void tcp_on_listener(struct engine *e, struct listener *l) {
  for (int n = 0; n < ACCEPT_BUDGET; n++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN) return;
      if (err == EINTR || err == ECONNABORTED) continue;
      emit_simple(e, l, EV_ACCEPT_ERROR, err, NULL);
      if (fd_exhausted(err) && e->spare_fd >= 0) {
        close(e->spare_fd);
        e->spare_fd = -1;
        int drop = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
        if (drop >= 0) close(drop);
        e->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (drop >= 0 && e->spare_fd >= 0) continue;
      }
      l->accept_retry = 1; /* retried after RETRY_MS, or on the next wake-up */
      return;
    }
    if (l->max_conns > 0 && l->nconns >= l->max_conns) {
      stat_add(l, ST_REJECTED, 1);
      emit_simple(e, l, EV_REJECTED, 0, &ss);
      close_fd(&fd, 1);
      continue;
    }
    start(e, l, fd, &ss);
  }
  l->accept_retry = 2; /* budget spent: the rest of the backlog on the next turn, at once */
}

/* expire ends the connections at the head of q whose deadline (last activity + ms) passed, and
 * returns the delay to the next deadline (-1 none). */
static int64_t expire(struct engine *e, struct link *q, int64_t ms, int how) {
  while (!list_empty(q)) {
    struct conn *c = container_of(q->next, struct conn, tq);
    int64_t due = c->active_ms + ms;
    if (due > e->now_ms) return due - e->now_ms;
    if (how == HOW_CONNECT_FAILED) connect_failed(e, c, ETIMEDOUT);
    else finish(e, c, how, 0);
  }
  return -1;
}

static int64_t nearer(int64_t a, int64_t b) {
  if (a < 0) return b;
  if (b < 0) return a;
  return a < b ? a : b;
}

int64_t tcp_timeouts(struct engine *e, struct listener *l) {
  int64_t next = -1;
  if (l->connect_ms > 0) next = nearer(next, expire(e, &l->q_connect, l->connect_ms, HOW_CONNECT_FAILED));
  if (l->idle_ms > 0) next = nearer(next, expire(e, &l->q_open, l->idle_ms, HOW_IDLE_TIMEOUT));
  /* Half-closed: the shorter of the two bounds applies, named as the TypeScript relay names it. */
  int64_t half = l->linger_ms == 0 ? l->idle_ms
                 : l->idle_ms == 0 ? l->linger_ms
                 : (l->idle_ms < l->linger_ms ? l->idle_ms : l->linger_ms);
  int lingered = l->linger_ms > 0 && (l->idle_ms == 0 || l->linger_ms <= l->idle_ms);
  if (half > 0) {
    next = nearer(next, expire(e, &l->q_half, half, lingered ? HOW_LINGER_TIMEOUT : HOW_IDLE_TIMEOUT));
  }
  return next;
}

/* tcp_close_listener stops accepting (the listening socket is closed) and lets the connections
 * finish; the listener is drained when the last one ends. */
void tcp_close_listener(struct engine *e, struct listener *l) {
  if (l->closing) return;
  l->closing = 1;
  /* Removed by hand: if anyone else still holds this socket (Node's own descriptor), closing
     ours would leave it in the epoll set, pointing at a listener about to be freed. */
  if (l->fd >= 0) (void)epoll_ctl(e->epfd, EPOLL_CTL_DEL, l->fd, NULL);
  close_fd(&l->fd, 0);
  drained_check(e, l);
}

/* tcp_destroy_listener closes the listener and cuts every connection now (plain close: a FIN,
 * or a reset where bytes were unread, as the TypeScript relay's destroy()). */
void tcp_destroy_listener(struct engine *e, struct listener *l) {
  tcp_close_listener(e, l);
  while (!list_empty(&l->all)) {
    struct conn *c = container_of(l->all.next, struct conn, all);
    finish(e, c, HOW_DESTROYED, 0);
  }
}

/* tcp_reap frees what ended during the batch (no epoll event can point at it any more). */
void tcp_reap(struct engine *e) {
  struct conn *keep = NULL;
  while (e->graveyard) {
    struct conn *c = e->graveyard;
    e->graveyard = c->next_free;
    if (c->queued) {
      c->next_free = keep; /* still on a run list: freed once that list let go of it */
      keep = c;
      continue;
    }
    c->next_free = e->free_conns;
    e->free_conns = c;
  }
  e->graveyard = keep;
  struct listener **p = &e->listeners;
  while (*p) {
    struct listener *l = *p;
    if (l->dead) {
      *p = l->next;
      free(l);
    } else {
      p = &l->next;
    }
  }
}

void tcp_free_all(struct engine *e) {
  for (struct listener *l = e->listeners; l; l = l->next) {
    close_fd(&l->fd, 0);
    while (!list_empty(&l->all)) {
      struct conn *c = container_of(l->all.next, struct conn, all);
      close_fd(&c->fd[0], 0);
      close_fd(&c->fd[1], 0);
      pipe_give(e, &c->dir[0]);
      pipe_give(e, &c->dir[1]);
      list_remove(&c->all);
      free(c);
    }
  }
  while (e->listeners) {
    struct listener *l = e->listeners;
    e->listeners = l->next;
    free(l);
  }
  while (e->graveyard) {
    struct conn *c = e->graveyard;
    e->graveyard = c->next_free;
    free(c);
  }
  while (e->free_conns) {
    struct conn *c = e->free_conns;
    e->free_conns = c->next_free;
    free(c);
  }
}
