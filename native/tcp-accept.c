/* TCP listeners in the engine thread: accepting (edge-triggered, with a spare descriptor for
 * EMFILE), starting each pair's non-blocking connect to the target, the connect, idle and
 * half-close-linger timeouts, and closing, destroying and freeing listeners. */
#define _GNU_SOURCE
#include "engine.h"
#include "tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* ACCEPT_BUDGET bounds one accept burst. */
#define ACCEPT_BUDGET 256

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

/* start takes one accepted client: counts it, opens its target connection, watches both. A
 * client accepted from the engine's own listener inherited the listener's TCP options (Linux
 * copies them at accept); one Node accepted (adopted) is tuned here. */
static void start(struct engine *e, struct listener *l, int fd, const struct sockaddr_storage *ss,
                  int tuned) {
  struct conn *c = conn_alloc(e);
  if (c == NULL) {
    tcp_close_fd(&fd, 1);
    tcp_emit(e, l, EV_ACCEPT_ERROR, ENOMEM, ss);
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
  if (!tuned) tcp_tune(fd);
  if (watch(e, c, 0) < 0) {
    tcp_connect_failed(e, c, errno);
    return;
  }
  c->fd[1] = socket(l->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd[1] < 0) {
    tcp_connect_failed(e, c, errno);
    return;
  }
  tcp_tune(c->fd[1]);
  int rc;
  do rc = connect(c->fd[1], (struct sockaddr *)&l->target, l->target_len);
  while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno != EINPROGRESS) {
    tcp_connect_failed(e, c, errno);
    return;
  }
  /* The kernel chose the local port at connect(): record it, so that a connection from this
     socket to one of our own listeners (portpub forwarding into itself) is known at accept. */
  socklen_t llen = sizeof c->local;
  if (getsockname(c->fd[1], (struct sockaddr *)&c->local, &llen) == 0) {
    struct conn **slot = &e->own_tcp[addr_hash(&c->local) & (OWN_BUCKETS - 1)];
    c->lnext = *slot;
    *slot = c;
  } else {
    c->local.ss_family = 0; /* cannot fail on a socket we own; if it did, no loop check */
  }
  if (watch(e, c, 1) < 0) {
    tcp_connect_failed(e, c, errno);
    return;
  }
  tcp_requeue(c);
  /* A connect that completed at once is reported by epoll as writable, like any other. */
}

/* own says whether the accepted connection fd (from ss) is one of our own target sockets
 * connecting to us. Linux reuses an ephemeral port for connections to different destinations, so
 * a client may share its address and port with one of our target sockets: it is a loop only if
 * it also reached the address that target socket dials (checked with getsockname, only then). */
static int own(struct engine *e, int fd, const struct sockaddr_storage *ss) {
  for (struct conn *c = e->own_tcp[addr_hash(ss) & (OWN_BUCKETS - 1)]; c; c = c->lnext) {
    if (!addr_eq(&c->local, ss)) continue;
    struct sockaddr_storage me;
    socklen_t len = sizeof me;
    memset(&me, 0, sizeof me);
    if (getsockname(fd, (struct sockaddr *)&me, &len) == 0 && addr_eq(&me, &c->l->target)) {
      return 1;
    }
  }
  return 0;
}

/* take serves one accepted client, or drops it: a connection from one of our own target
 * sockets (forwarding into itself) and one beyond max_conns are reset and counted. */
static void take(struct engine *e, struct listener *l, int fd, const struct sockaddr_storage *ss,
                 int tuned) {
  if (own(e, fd, ss)) {
    stat_add(l, ST_LOOPED, 1);
    tcp_emit(e, l, EV_LOOPED, 0, ss);
    tcp_close_fd(&fd, 1);
    return;
  }
  if (l->max_conns > 0 && l->nconns >= l->max_conns) {
    stat_add(l, ST_REJECTED, 1);
    tcp_emit(e, l, EV_REJECTED, 0, ss);
    tcp_close_fd(&fd, 1);
    return;
  }
  start(e, l, fd, ss, tuned);
}

void tcp_adopt(struct engine *e, struct listener *l, int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset(&ss, 0, sizeof ss);
  int flags = fcntl(fd, F_GETFL);
  if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0 || flags < 0 ||
      fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    tcp_close_fd(&fd, 1); /* the client already went away */
    return;
  }
  if (l->closing) {
    tcp_close_fd(&fd, 1);
    return;
  }
  take(e, l, fd, &ss, 0);
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
      tcp_emit(e, l, EV_ACCEPT_ERROR, err, NULL);
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
    take(e, l, fd, &ss, 1);
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
    if (how == HOW_CONNECT_FAILED) tcp_connect_failed(e, c, ETIMEDOUT);
    else tcp_finish(e, c, how, 0);
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
  tcp_close_fd(&l->fd, 0);
  tcp_drained_check(e, l);
}

/* tcp_destroy_listener closes the listener and cuts every connection now with a reset on both
 * sides, as the TypeScript relay's destroy(): a clean end would make a cut upload look complete
 * to the target (issue 11). */
void tcp_destroy_listener(struct engine *e, struct listener *l) {
  tcp_close_listener(e, l);
  while (!list_empty(&l->all)) {
    struct conn *c = container_of(l->all.next, struct conn, all);
    tcp_close_fd(&c->fd[0], 1);
    tcp_close_fd(&c->fd[1], 1);
    tcp_finish(e, c, HOW_DESTROYED, 0);
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
    tcp_close_fd(&l->fd, 0);
    while (!list_empty(&l->all)) {
      struct conn *c = container_of(l->all.next, struct conn, all);
      tcp_close_fd(&c->fd[0], 0);
      tcp_close_fd(&c->fd[1], 0);
      tcp_pipe_give(e, &c->dir[0]);
      tcp_pipe_give(e, &c->dir[1]);
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
