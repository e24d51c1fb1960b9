/* The engine thread: one edge-triggered epoll set for every listener and connection of one Node
 * environment, a wake-up eventfd, timeouts from the listeners' queues, and events handed to
 * JavaScript in batches through one thread-safe function (one call per batch, not per event). */
#define _GNU_SOURCE
#include "engine.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

/* BATCH is how many epoll events one wait returns at most. */
#define BATCH 256
/* RETRY_MS paces retries of work that failed for want of descriptors (accept, pipes). */
#define RETRY_MS 100
/* POLL_MISSES polls that find nothing in one POLL_PERIOD_NS end polling for that period. */
#define POLL_MISSES 8
#define POLL_PERIOD_NS 1000000000LL

static struct {
  uint8_t kind;
} wake_tag = {K_WAKE};

int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for CLOCK_MONOTONIC with a valid pointer */
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mono_ms(void) { return mono_ns() / 1000000; }

/* wall_ms turns a mono_ms() time into wall-clock ms since the epoch with one offset, so a
 * connection's opened-at time reads the same in every listing (Date.now() minus an age would
 * move by a millisecond from one listing to the next). The offset is taken again when the clocks
 * have drifted apart by more than a second (a suspend stops CLOCK_MONOTONIC; NTP can step the
 * wall clock), so new connections never show a stale age. Called on the JavaScript thread. */
static double wall_offset;
static int wall_known;
double wall_ms(int64_t mono) {
  struct timespec m, r;
  clock_gettime(CLOCK_MONOTONIC, &m);
  clock_gettime(CLOCK_REALTIME, &r);
  double now = ((double)r.tv_sec * 1e3 + (double)r.tv_nsec / 1e6) -
               ((double)m.tv_sec * 1e3 + (double)m.tv_nsec / 1e6);
  if (!wall_known || now - wall_offset > 1000 || wall_offset - now > 1000) {
    wall_offset = now;
    wall_known = 1;
  }
  /* The middle of that millisecond, rounded (positive, so the cast floors). */
  return (double)(int64_t)((double)mono + 0.5 + wall_offset + 0.5);
}

void list_init(struct link *h) { h->prev = h->next = h; }
int list_empty(const struct link *h) { return h->next == h; }
void list_remove(struct link *n) {
  if (n->next == NULL || n->next == n) return; /* not linked */
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = n;
}
void list_push_tail(struct link *h, struct link *n) {
  n->prev = h->prev;
  n->next = h;
  h->prev->next = n;
  h->prev = n;
}

/* stat_add changes one counter of the listener's JavaScript-visible stats. Writers are serialised
 * by engine->lock; the store is atomic so a reader on the main thread never sees a torn value. */
void stat_add(struct listener *l, int slot, double delta) {
  double v = l->stats[slot] + delta;
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  __atomic_store_n((uint64_t *)&l->stats[slot], bits, __ATOMIC_RELAXED);
}

/* format_addr writes ip:port ([ip]:port for IPv6) as Node's remoteAddress/remotePort would. */
void format_addr(const struct sockaddr_storage *ss, char *out, size_t cap) {
  char ip[INET6_ADDRSTRLEN] = "unknown";
  unsigned port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    if (!inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip)) strcpy(ip, "unknown");
    port = ntohs(a->sin_port);
    snprintf(out, cap, "%s:%u", ip, port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    if (!inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip)) strcpy(ip, "unknown");
    port = ntohs(a->sin6_port);
    snprintf(out, cap, "[%s]:%u", ip, port);
  } else {
    snprintf(out, cap, "unknown");
  }
}

/* addr_hash and addr_eq key tables by address and port (FNV-1a). */
uint32_t addr_hash(const struct sockaddr_storage *ss) {
  const unsigned char *p;
  size_t n;
  uint16_t port;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    p = (const unsigned char *)&a->sin_addr;
    n = 4;
    port = a->sin_port;
  } else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    p = (const unsigned char *)&a->sin6_addr;
    n = 16;
    port = a->sin6_port;
  }
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  h = (h ^ (port & 0xff)) * 16777619u;
  h = (h ^ (port >> 8)) * 16777619u;
  return h;
}

int addr_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family) return 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
  return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

/* engine_emit queues one event for JavaScript and asks for a call if none is pending. Called
 * with engine->lock held, from either thread. */
void engine_emit(struct engine *e, const struct event *ev) {
  pthread_mutex_lock(&e->ev_lock);
  if (e->nevs == e->cap_evs) {
    size_t cap = e->cap_evs ? e->cap_evs * 2 : 64;
    struct event *grown = realloc(e->evs, cap * sizeof *grown);
    if (grown == NULL) {
      e->oom = 1; /* reported by the next batch: the JavaScript side resynchronises from stats */
      pthread_mutex_unlock(&e->ev_lock);
      return;
    }
    e->evs = grown;
    e->cap_evs = cap;
  }
  e->evs[e->nevs++] = *ev;
  int call = !e->call_pending;
  e->call_pending = 1;
  pthread_mutex_unlock(&e->ev_lock);
  if (call) {
    /* napi_closing after teardown began: nobody is left to tell. */
    (void)napi_call_threadsafe_function((napi_threadsafe_function)e->tsfn, NULL,
                                        napi_tsfn_nonblocking);
  }
}

static void wake(struct engine *e) {
  uint64_t one = 1;
  /* EAGAIN means the counter is already non-zero: the engine will wake anyway. */
  while (write(e->wakefd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

static void drain_wake(struct engine *e) {
  uint64_t n;
  while (read(e->wakefd, &n, sizeof n) < 0 && errno == EINTR) {
  }
}

static void reopen_spare(struct engine *e) {
  if (e->spare_fd < 0) e->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* next_timeout is the epoll_wait delay: 0 when work is queued, else the nearest deadline. */
static int next_timeout(struct engine *e) {
  int64_t best = e->again_head != NULL ? 0 : -1;
  if (e->wait_head != NULL && best < 0) {
    best = e->wait_until > e->now_ms ? e->wait_until - e->now_ms : 0;
  }
  for (struct listener *l = e->listeners; l; l = l->next) {
    if (l->dead) continue;
    int64_t d = tcp_timeouts(e, l);
    int64_t retry = l->accept_retry == 2 ? 0 : RETRY_MS;
    if (l->accept_retry && (best < 0 || retry < best)) best = retry;
    if (d >= 0 && (best < 0 || d < best)) best = d;
  }
  if (e->flow_again != NULL) best = 0;
  for (struct ulistener *u = e->ulisteners; u; u = u->next) {
    if (u->dead) continue;
    if (u->again) best = 0;
    int64_t d = udp_timeouts(e, u);
    if (d >= 0 && (best < 0 || d < best)) best = d;
  }
  if (best > 1000000) best = 1000000;
  return (int)best;
}

/* count adds one to a counter the main thread reads (pollStats) without the lock. */
static void count(uint64_t *counter) {
  __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

/* busy_poll waits for events without sleeping, for at most e->poll_ns, and returns what
 * epoll_wait returned (0: nothing came). On a virtual machine, waking a CPU that went idle costs
 * more than a relay's whole crossing (haproxy's busy-polling option says the same: 30 to 100 µs
 * observed), so after a batch of request/response traffic the engine polls for the next request
 * or reply instead of sleeping. It yields on every turn, so a thread waiting for this CPU (the
 * client, the server) runs first. A poll that finds nothing is a miss; after POLL_MISSES misses
 * in one second, polling waits for the next second, so traffic sparser than the window wastes at
 * most POLL_MISSES windows a second. A timer due during the poll fires up to one window late.
 * Called without engine->lock. */
static int busy_poll(struct engine *e, struct epoll_event *evs) {
  int64_t now = mono_ns();
  if (now - e->poll_period >= POLL_PERIOD_NS) {
    e->poll_period = now;
    e->poll_period_misses = 0;
  }
  if (e->poll_period_misses >= POLL_MISSES) return 0;
  count(&e->poll_stats[PS_POLLS]);
  int64_t until = now + e->poll_ns;
  do {
    int n = epoll_wait(e->epfd, evs, BATCH, 0);
    if (n > 0) {
      count(&e->poll_stats[PS_HITS]);
      return n;
    }
    (void)sched_yield();
  } while (mono_ns() < until);
  e->poll_period_misses++;
  return 0;
}

static void *loop(void *arg) {
  struct engine *e = arg;
  struct epoll_event evs[BATCH];
  int timeout = -1;
  pthread_mutex_lock(&e->lock);
  while (!e->stopping) {
    /* Poll only after small traffic: a bulk transfer keeps the engine busy by itself, and
       polling between its batches would only spend CPU. */
    int poll = timeout != 0 && e->poll_ns > 0 && e->moved_small && !e->moved_bulk;
    e->moved_small = e->moved_bulk = 0;
    pthread_mutex_unlock(&e->lock);
    int n = poll ? busy_poll(e, evs) : 0;
    if (n == 0) n = epoll_wait(e->epfd, evs, BATCH, timeout);
    int werr = errno;
    pthread_mutex_lock(&e->lock);
    e->now_ms = mono_ms();
    if (n < 0 && werr != EINTR) {
      /* EBADF/EINVAL cannot happen with our own epfd; leave rather than spin. */
      fprintf(stderr, "portpub native engine: epoll_wait: %s\n", strerror(werr));
      break;
    }
    for (int i = 0; i < n; i++) {
      uint8_t kind = *(uint8_t *)evs[i].data.ptr;
      if (kind == K_WAKE) {
        drain_wake(e);
      } else if (kind == K_LISTENER) {
        struct listener *l = evs[i].data.ptr;
        if (!l->dead && !l->closing) tcp_on_listener(e, l);
      } else if (kind == K_SIDE) {
        tcp_on_side(e, evs[i].data.ptr, evs[i].events);
      } else if (kind == K_ULISTENER) {
        struct ulistener *u = evs[i].data.ptr;
        if (!u->dead) udp_on_listener(e, u);
      } else if (kind == K_FLOW) {
        udp_on_flow(e, evs[i].data.ptr, evs[i].events);
      }
    }
    /* Connections that used their budget, or waited for a pipe, run again. */
    if (e->wait_head != NULL && e->now_ms >= e->wait_until) {
      struct conn *w = e->wait_head;
      e->wait_head = NULL;
      while (w) {
        struct conn *c = w;
        w = c->again;
        c->again = e->again_head;
        c->queued = 1;
        e->again_head = c;
      }
    }
    struct conn *list = e->again_head;
    e->again_head = NULL;
    while (list) {
      struct conn *c = list;
      list = c->again;
      c->again = NULL;
      c->queued = 0;
      tcp_run(e, c);
    }
    udp_run_again(e);
    for (struct listener *l = e->listeners; l; l = l->next) {
      if (l->dead) continue;
      if (l->accept_retry) {
        l->accept_retry = 0;
        reopen_spare(e);
        if (!l->closing) tcp_on_listener(e, l);
      }
    }
    timeout = next_timeout(e);
    tcp_reap(e);
    udp_reap(e);
  }
  pthread_mutex_unlock(&e->lock);
  return NULL;
}

int engine_start(struct engine *e) {
  e->epfd = e->wakefd = e->spare_fd = -1;
  if (pthread_mutex_init(&e->lock, NULL) != 0) return -1;
  if (pthread_mutex_init(&e->ev_lock, NULL) != 0) return -1;
  e->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (e->epfd < 0) return -1;
  e->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (e->wakefd < 0) return -1;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &wake_tag};
  if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->wakefd, &ev) < 0) return -1;
  reopen_spare(e);
  e->next_conn_id = 1;
  e->next_flow_id = 1;
  e->now_ms = mono_ms();
  int rc = pthread_create(&e->thread, NULL, loop, e);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  e->thread_started = 1;
  /* Named for top -H and /proc/<pid>/task/<tid>/comm; a failure leaves the name inherited. */
  (void)pthread_setname_np(e->thread, "portpub-engine");
  return 0;
}

/* engine_wake tells the engine thread that the main thread changed its state. */
void engine_post(struct engine *e, struct cmd c) {
  (void)c;
  wake(e);
}

/* engine_stop ends the thread and closes everything the engine owns (environment teardown). */
void engine_stop(struct engine *e) {
  if (e->thread_started) {
    pthread_mutex_lock(&e->lock);
    e->stopping = 1;
    pthread_mutex_unlock(&e->lock);
    wake(e);
    pthread_join(e->thread, NULL);
    e->thread_started = 0;
  }
  tcp_free_all(e);
  udp_free_all(e);
  for (int i = 0; i < e->npool; i++) {
    close(e->pool[i][0]);
    close(e->pool[i][1]);
  }
  e->npool = 0;
  if (e->spare_fd >= 0) close(e->spare_fd);
  if (e->wakefd >= 0) close(e->wakefd);
  if (e->epfd >= 0) close(e->epfd);
  e->spare_fd = e->wakefd = e->epfd = -1;
  free(e->evs);
  free(e->evs_spare);
  e->evs = e->evs_spare = NULL;
}
