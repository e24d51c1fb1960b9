/* The UDP relay in the engine thread: one socket per binding (a wildcard served whole), read
 * with recvmmsg and IP_PKTINFO/IPV6_RECVPKTINFO so each reply leaves, through sendmmsg, from the
 * address its client sent to; one connected socket per client to the target; flows expire
 * timeout_ms after their last datagram to the target and the least recently used one is evicted
 * beyond max_flows. Semantics and drop reasons are src/udp/forwarder.ts's.
 * Model: moby cmd/docker-proxy udp_proxy_linux.go (Engine 28, IP_PKTINFO). */
#define _GNU_SOURCE
#include "engine.h"
#include "udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* FLOW_BUFFER is the SO_RCVBUF/SO_SNDBUF asked for each flow socket (as src/udp/flow.ts). */
#define FLOW_BUFFER (1 << 20)
/* ROUNDS bounds the batches one socket is read for before others get a turn. */
#define ROUNDS 16
/* WARN_MS: at most one drop event per reason per listener per interval (the JS side warns). */
#define WARN_MS 5000
#define CBUF (CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo)))

int udp_init(struct engine *e) {
  if (e->ubuf) return 0;
  e->ubuf = malloc((size_t)UDP_BATCH * UDP_MAX);
  if (e->ubuf == NULL) {
    errno = ENOMEM;
    return -1;
  }
  return 0;
}

static void ustat_add(struct ulistener *u, int slot, double delta) {
  double v = u->stats[slot] + delta;
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  __atomic_store_n((uint64_t *)&u->stats[slot], bits, __ATOMIC_RELAXED);
}

/* drop counts one dropped datagram, and tells JavaScript at most once per reason per WARN_MS. */
static void drop(struct engine *e, struct ulistener *u, int reason, int err,
                 const struct sockaddr_storage *client) {
  ustat_add(u, US_DROPS + reason, 1);
  if (u->last_warn[reason] != 0 && e->now_ms - u->last_warn[reason] < WARN_MS) return;
  u->last_warn[reason] = e->now_ms;
  /* up: the reason's count with this drop, so the next warning can say how many it held back */
  struct event ev = {.type = EV_DROP, .listener = u->id, .how = reason, .err = err,
                     .up = u->stats[US_DROPS + reason]};
  if (client) format_addr(client, ev.client, sizeof ev.client);
  engine_emit(e, &ev);
}

static struct flow **own_slot(struct engine *e, const struct sockaddr_storage *ss) {
  return &e->own[addr_hash(ss) & (OWN_BUCKETS - 1)];
}

static struct flow *own_find(struct engine *e, const struct sockaddr_storage *ss) {
  for (struct flow *f = *own_slot(e, ss); f; f = f->lnext) {
    if (addr_eq(&f->local, ss)) return f;
  }
  return NULL;
}

static struct flow **table_slot(struct ulistener *u, const struct sockaddr_storage *ss) {
  return &u->table[addr_hash(ss) & (u->nbuckets - 1)];
}

static struct flow *find(struct ulistener *u, const struct sockaddr_storage *ss) {
  for (struct flow *f = *table_slot(u, ss); f; f = f->hnext) {
    if (addr_eq(&f->client, ss)) return f;
  }
  return NULL;
}

static void unchain(struct flow **head, struct flow *f, int own) {
  for (struct flow **p = head; *p; p = own ? &(*p)->lnext : &(*p)->hnext) {
    if (*p == f) {
      *p = own ? f->lnext : f->hnext;
      return;
    }
  }
}

static int source_port(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)ss)->sin_port);
  if (ss->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
  return 0;
}

/* flow_end closes a flow (the caller counted whatever it meant to) and tells JavaScript. */
void udp_flow_end(struct engine *e, struct flow *f, int how, int err) {
  if (f->dead) return;
  struct ulistener *u = f->u;
  f->dead = 1;
  unchain(table_slot(u, &f->client), f, 0);
  if (f->local.ss_family != 0) unchain(own_slot(e, &f->local), f, 1);
  list_remove(&f->lru);
  if (f->fd >= 0) close(f->fd); /* removed from epoll with its only descriptor */
  f->fd = -1;
  u->nflows--;
  ustat_add(u, US_ACTIVE, -1);
  if (how != FE_EXPIRED && how != FE_DESTROYED) {
    /* evicted, broken: warned */
  } else if (!u->log_flows) {
    goto bury;
  }
  struct event ev = {.type = EV_FLOW_ENDED, .listener = u->id, .conn = (double)f->id,
                     .how = how, .err = err, .up = (double)f->dgrams_up,
                     .down = (double)f->dgrams_down,
                     .duration_ms = (double)(e->now_ms - f->opened_ms),
                     .extra = source_port(&f->local)};
  format_addr(&f->client, ev.client, sizeof ev.client);
  engine_emit(e, &ev);
bury:
  f->next_free = e->flow_graveyard;
  e->flow_graveyard = f;
}

static void set_buf(int fd, int name) {
  int v = FLOW_BUFFER;
  (void)setsockopt(fd, SOL_SOCKET, name, &v, sizeof v); /* capped by the kernel: best effort */
}

/* flow_open starts a flow for a new client (evicting the least recent one at the cap). A flow
 * that cannot be set up is reported and its first datagram dropped as flow-setup. */
static struct flow *flow_open(struct engine *e, struct ulistener *u,
                              const struct sockaddr_storage *client, socklen_t len) {
  if (u->nflows >= u->max_flows && !list_empty(&u->lru)) {
    ustat_add(u, US_EVICTIONS, 1);
    udp_flow_end(e, container_of(u->lru.next, struct flow, lru), FE_EVICTED, 0);
  }
  ustat_add(u, US_TOTAL, 1);
  struct flow *f = e->free_flows;
  if (f) e->free_flows = f->next_free;
  else f = malloc(sizeof *f);
  int err = ENOMEM;
  if (f == NULL) goto failed;
  memset(f, 0, sizeof *f);
  f->kind = K_FLOW;
  f->u = u;
  f->client = *client;
  f->client_len = len;
  f->id = e->next_flow_id++;
  f->opened_ms = f->active_ms = e->now_ms;
  f->reply_ms = -1;
  list_init(&f->lru);
  f->fd = socket(u->target.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (f->fd < 0) goto failed_errno;
  set_buf(f->fd, SO_RCVBUF);
  set_buf(f->fd, SO_SNDBUF);
  if (connect(f->fd, (struct sockaddr *)&u->target, u->target_len) < 0) goto failed_errno;
  socklen_t llen = sizeof f->local;
  if (getsockname(f->fd, (struct sockaddr *)&f->local, &llen) < 0) goto failed_errno;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = f};
  if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, f->fd, &ev) < 0) goto failed_errno;
  struct flow **slot = table_slot(u, client);
  f->hnext = *slot;
  *slot = f;
  struct flow **own = own_slot(e, &f->local);
  f->lnext = *own;
  *own = f;
  list_push_tail(&u->lru, &f->lru);
  u->nflows++;
  ustat_add(u, US_ACTIVE, 1);
  return f;
failed_errno:
  err = errno;
failed:
  if (f && f->fd >= 0) close(f->fd);
  drop(e, u, D_FLOW_SETUP, err, client);
  struct event fev = {.type = EV_FLOW_ENDED, .listener = u->id, .how = FE_SETUP, .err = err};
  format_addr(client, fev.client, sizeof fev.client);
  engine_emit(e, &fev);
  if (f) {
    f->next_free = e->free_flows;
    e->free_flows = f;
  }
  return NULL;
}

/* opened tells JavaScript (debug) of a new flow: "client local" (the address the client sent
 * to, without port), and the flow socket's source port. */
static void opened(struct engine *e, struct flow *f) {
  struct ulistener *u = f->u;
  if (!u->log_flows) return;
  struct event ev = {.type = EV_FLOW_OPENED, .listener = u->id, .conn = (double)f->id,
                     .extra = source_port(&f->local)};
  char local[INET6_ADDRSTRLEN] = "";
  if (f->client.ss_family == AF_INET) (void)inet_ntop(AF_INET, &f->dst4, local, sizeof local);
  else (void)inet_ntop(AF_INET6, &f->dst6, local, sizeof local);
  format_addr(&f->client, ev.client, sizeof ev.client);
  size_t n = strlen(ev.client);
  snprintf(ev.client + n, sizeof ev.client - n, " %s", local);
  engine_emit(e, &ev);
}

static int send_reason(int err) {
  if (err == EAGAIN || err == ENOBUFS) return D_QUEUE_FULL;
  if (err == EMSGSIZE) return D_TOO_LARGE;
  if (err == ECONNREFUSED) return D_TARGET_REFUSED;
  return D_TARGET_SEND;
}

static int reply_reason(int err) {
  if (err == EAGAIN || err == ENOBUFS) return D_CLIENT_QUEUE_FULL;
  if (err == EMSGSIZE) return D_TOO_LARGE;
  return D_CLIENT_SEND;
}

enum { TO_TARGET, TO_CLIENT };

/* send_batch sends n datagrams of flow f with sendmmsg on fd: to the target (the flow's own
 * connected socket) or to the client (the listening socket), and counts each one sent. A
 * datagram the socket refuses is dropped with its reason, and a full socket drops the rest of the
 * batch, which would fail the same way. To the target, ECONNREFUSED reports an ICMP error left
 * by an earlier datagram (that one's drop), and this one did not leave: it is sent once more. */
static void send_batch(struct engine *e, struct flow *f, int fd, struct mmsghdr *m, int n,
                       int to) {
  struct ulistener *u = f->u;
  int sent = 0, retried = -1;
  while (sent < n) {
    int k = sendmmsg(fd, m + sent, (unsigned)(n - sent), MSG_DONTWAIT);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      int err = errno;
      if (to == TO_TARGET && err == ECONNREFUSED && retried != sent) {
        drop(e, u, D_TARGET_REFUSED, ECONNREFUSED, &f->client);
        retried = sent;
        continue;
      }
      int reason = to == TO_TARGET ? send_reason(err) : reply_reason(err);
      drop(e, u, reason, err, &f->client);
      if (reason == D_QUEUE_FULL || reason == D_CLIENT_QUEUE_FULL) {
        ustat_add(u, US_DROPS + reason, (double)(n - sent - 1));
        break;
      }
      sent++; /* skip the one that failed */
      continue;
    }
    for (int i = sent; i < sent + k; i++) {
      if (to == TO_TARGET) {
        f->dgrams_up++;
        f->up += m[i].msg_len;
      } else {
        f->dgrams_down++;
        f->down += m[i].msg_len;
      }
      ustat_add(u, to == TO_TARGET ? US_DGRAMS_UP : US_DGRAMS_DOWN, 1);
      ustat_add(u, to == TO_TARGET ? US_UP : US_DOWN, (double)m[i].msg_len);
    }
    sent += k;
  }
}

/* poll_mark tells the engine loop what a batch of n datagrams was (engine.c busy_poll): one
 * small datagram is a request or a reply, worth polling for the next; more is a stream. */
static void poll_mark(struct engine *e, const struct mmsghdr *msgs, int n) {
  if (n == 1 && msgs[0].msg_len < POLL_SMALL) e->moved_small = 1;
  else if (n > 1) e->moved_bulk = 1;
}

/* A run is consecutive client datagrams of one flow, sent to the target with one sendmmsg on the
 * flow's connected socket. It is flushed before another flow's datagram is looked at, so a flow
 * that a new one evicts never holds datagrams. */
struct run {
  struct flow *f;
  int n;
  struct mmsghdr m[UDP_BATCH];
};

static void run_add(struct run *r, struct iovec *iov) {
  r->m[r->n] = (struct mmsghdr){.msg_hdr = {.msg_iov = iov, .msg_iovlen = 1}};
  r->n++;
}

/* run_flush sends a run to the target. */
static void run_flush(struct engine *e, struct run *r) {
  struct flow *f = r->f;
  int n = r->n;
  r->f = NULL;
  r->n = 0;
  if (f == NULL || f->dead || n == 0) return;
  send_batch(e, f, f->fd, r->m, n, TO_TARGET);
}

/* remember_dst keeps the address a datagram was sent to (IP_PKTINFO), for the reply's source. */
static void remember_dst(struct flow *f, struct msghdr *m) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      f->dst4 = pi.ipi_addr;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      struct in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      f->dst6 = pi.ipi6_addr;
      f->ifindex = (int)pi.ipi6_ifindex;
    }
  }
}

void udp_on_listener(struct engine *e, struct ulistener *u) {
  struct mmsghdr msgs[UDP_BATCH];
  struct iovec iov[UDP_BATCH];
  struct sockaddr_storage names[UDP_BATCH];
  unsigned char cbuf[UDP_BATCH][CBUF];
  struct run run = {.f = NULL, .n = 0};
  for (int round = 0; round < ROUNDS; round++) {
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < UDP_BATCH; i++) {
      iov[i].iov_base = e->ubuf + (size_t)i * UDP_MAX;
      iov[i].iov_len = UDP_MAX;
      msgs[i].msg_hdr = (struct msghdr){.msg_name = &names[i], .msg_namelen = sizeof names[i],
                                        .msg_iov = &iov[i], .msg_iovlen = 1,
                                        .msg_control = cbuf[i], .msg_controllen = CBUF};
    }
    int n = recvmmsg(u->fd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      struct event ev = {.type = EV_UDP_ERROR, .listener = u->id, .err = errno};
      engine_emit(e, &ev);
      return;
    }
    poll_mark(e, msgs, n);
    for (int i = 0; i < n && !u->dead; i++) {
      struct sockaddr_storage *client = &names[i];
      if (client->ss_family != AF_INET && client->ss_family != AF_INET6) continue;
      struct flow *f = find(u, client);
      if (f != run.f) run_flush(e, &run);
      int fresh = 0;
      if (f == NULL) {
        if (own_find(e, client)) {
          drop(e, u, D_LOOP, 0, client);
          continue;
        }
        f = flow_open(e, u, client, msgs[i].msg_hdr.msg_namelen);
        if (f == NULL) continue;
        fresh = 1;
      }
      remember_dst(f, &msgs[i].msg_hdr);
      if (fresh) opened(e, f);
      f->active_ms = e->now_ms;
      list_remove(&f->lru);
      list_push_tail(&u->lru, &f->lru);
      iov[i].iov_len = msgs[i].msg_len;
      run.f = f;
      run_add(&run, &iov[i]);
    }
    run_flush(e, &run);
    /* A short batch ended on an empty queue (recvmmsg reads until EAGAIN), and a datagram that
       comes later wakes epoll again (edge-triggered): no read is spent to see EAGAIN. */
    if (n < UDP_BATCH) return;
  }
  u->again = 1;
}

/* source_cmsg writes the IP_PKTINFO / IPV6_PKTINFO that makes a reply leave from f's address. */
static size_t source_cmsg(struct flow *f, unsigned char *buf) {
  struct msghdr m = {.msg_control = buf, .msg_controllen = CBUF};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  memset(buf, 0, CBUF);
  if (f->client.ss_family == AF_INET) {
    uint32_t a = ntohl(f->dst4.s_addr);
    /* A reply cannot come from a multicast or broadcast address: let routing pick then. */
    if (a == 0 || IN_MULTICAST(a) || a == INADDR_BROADCAST) return 0;
    struct in_pktinfo pi = {.ipi_ifindex = 0, .ipi_spec_dst = f->dst4};
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    return CMSG_SPACE(sizeof pi);
  }
  if (IN6_IS_ADDR_UNSPECIFIED(&f->dst6) || IN6_IS_ADDR_MULTICAST(&f->dst6)) return 0;
  struct in6_pktinfo pi = {.ipi6_addr = f->dst6, .ipi6_ifindex = (unsigned)f->ifindex};
  c->cmsg_level = IPPROTO_IPV6;
  c->cmsg_type = IPV6_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof pi);
  memcpy(CMSG_DATA(c), &pi, sizeof pi);
  return CMSG_SPACE(sizeof pi);
}

/* udp_on_flow relays the target's datagrams to the client: recvmmsg on the flow socket, one
 * sendmmsg on the listening socket. A datagram the listening socket cannot take is dropped. */
void udp_on_flow(struct engine *e, struct flow *f, uint32_t events) {
  if (f->dead) return;
  struct ulistener *u = f->u;
  struct mmsghdr msgs[UDP_BATCH];
  struct iovec iov[UDP_BATCH];
  unsigned char cbuf[CBUF];
  for (int round = 0; round < ROUNDS; round++) {
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < UDP_BATCH; i++) {
      iov[i].iov_base = e->ubuf + (size_t)i * UDP_MAX;
      iov[i].iov_len = UDP_MAX;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(f->fd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      if (errno == ECONNREFUSED) {
        /* ICMP port unreachable: nothing listens on the target yet. The flow stays. */
        drop(e, u, D_TARGET_REFUSED, ECONNREFUSED, &f->client);
        continue;
      }
      /* Any other read error ends the flow (Docker's rule); the next datagram opens a new one. */
      udp_flow_end(e, f, FE_BROKEN, errno);
      return;
    }
    f->reply_ms = e->now_ms;
    poll_mark(e, msgs, n);
    size_t clen = source_cmsg(f, cbuf);
    for (int i = 0; i < n; i++) {
      iov[i].iov_len = msgs[i].msg_len;
      msgs[i].msg_hdr = (struct msghdr){.msg_name = &f->client, .msg_namelen = f->client_len,
                                        .msg_iov = &iov[i], .msg_iovlen = 1,
                                        .msg_control = clen ? cbuf : NULL, .msg_controllen = clen};
    }
    send_batch(e, f, u->fd, msgs, n, TO_CLIENT);
    /* As on the listening socket, a short batch means an empty queue, unless an error was
       reported (ECONNREFUSED waits behind the datagrams for the next recvmmsg). */
    if (n < UDP_BATCH && !(events & EPOLLERR)) return;
  }
  if (!f->queued) {
    f->queued = 1;
    f->again = e->flow_again;
    e->flow_again = f;
  }
}
