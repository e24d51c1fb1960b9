/* The Node-API face of the engine: start it with a batch callback, hand it listening sockets,
 * close or destroy them, read their live connections. One engine (one thread) per Node
 * environment, stopped and freed at the environment's teardown. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "engine.h"
#include "tcp.h"
#include "napi-util.h"

/* ABI is bumped whenever the JavaScript side must change with this file. */
#define ABI 6
#define FIELDS 9 /* numbers per event record handed to JavaScript */


napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, "ERR_PORTPUB_NATIVE", msg);
  return NULL;
}

struct engine *engine_of(napi_env env) {
  void *data = NULL;
  if (napi_get_instance_data(env, &data) != napi_ok) return NULL;
  return data;
}

/* call_js turns one batch of events into (Float64Array, string[]) and calls the callback. */
static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)data;
  struct engine *e = context;
  if (env == NULL || cb == NULL) return; /* teardown */
  pthread_mutex_lock(&e->ev_lock);
  struct event *evs = e->evs;
  size_t n = e->nevs;
  e->evs = e->evs_spare;
  e->evs_spare = evs;
  size_t cap = e->cap_evs;
  e->cap_evs = e->cap_spare;
  e->cap_spare = cap;
  e->nevs = 0;
  e->call_pending = 0;
  int oom = e->oom;
  e->oom = 0;
  pthread_mutex_unlock(&e->ev_lock);
  /* evs is now ours alone until the next call swaps it back. */
  napi_value ab, nums, names, args[3];
  void *raw = NULL;
  if (napi_create_arraybuffer(env, n * FIELDS * sizeof(double), &raw, &ab) != napi_ok) return;
  if (napi_create_typedarray(env, napi_float64_array, n * FIELDS, ab, 0, &nums) != napi_ok) return;
  if (napi_create_array_with_length(env, n, &names) != napi_ok) return;
  double *out = raw;
  for (size_t i = 0; i < n; i++) {
    const struct event *ev = &evs[i];
    double rec[FIELDS] = {ev->type, ev->listener, ev->conn,        ev->how,  ev->err,
                          ev->up,   ev->down,     ev->duration_ms, ev->extra};
    memcpy(out + i * FIELDS, rec, sizeof rec);
    napi_value s;
    if (napi_create_string_utf8(env, ev->client, NAPI_AUTO_LENGTH, &s) != napi_ok) return;
    if (napi_set_element(env, names, (uint32_t)i, s) != napi_ok) return;
  }
  napi_value undef;
  if (napi_get_undefined(env, &undef) != napi_ok) return;
  args[0] = nums;
  args[1] = names;
  if (napi_get_boolean(env, oom != 0, &args[2]) != napi_ok) return;
  /* An exception thrown by the callback surfaces as an uncaught exception, as for any event. */
  (void)napi_call_function(env, undef, cb, 3, args, NULL);
}

static void cleanup(void *arg) {
  struct engine *e = arg;
  engine_stop(e);
  if (e->tsfn) {
    (void)napi_release_threadsafe_function((napi_threadsafe_function)e->tsfn, napi_tsfn_abort);
  }
  pthread_mutex_destroy(&e->lock);
  pthread_mutex_destroy(&e->ev_lock);
  free(e);
}

napi_value get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < want) {
    napi_throw_type_error(env, "ERR_PORTPUB_NATIVE", "too few arguments");
    return NULL;
  }
  napi_value ok;
  CHECK(env, napi_get_boolean(env, true, &ok));
  return ok;
}

/* start(onEvents, busyPollUs) starts this environment's engine thread; busyPollUs is how long
 * it polls for the next event before sleeping (0: never; see busy_poll in engine.c). */
static napi_value Start(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  int64_t poll_us = int_arg(env, argv[1]);
  if (poll_us < 0 || poll_us > 1000000) {
    napi_throw_range_error(env, "ERR_PORTPUB_NATIVE", "start: bad busy-poll time");
    return NULL;
  }
  if (engine_of(env) != NULL) {
    napi_throw_error(env, "ERR_PORTPUB_NATIVE", "engine already started");
    return NULL;
  }
  struct engine *e = calloc(1, sizeof *e);
  if (e == NULL) return throw_errno(env, "engine", ENOMEM);
  napi_value name;
  CHECK(env, napi_create_string_utf8(env, "portpub-engine", NAPI_AUTO_LENGTH, &name));
  napi_threadsafe_function tsfn;
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, e, call_js,
                                      &tsfn) != napi_ok) {
    free(e);
    napi_throw_error(env, "ERR_PORTPUB_NATIVE", "cannot create the engine's callback");
    return NULL;
  }
  e->tsfn = tsfn;
  e->poll_ns = poll_us * 1000;
  CHECK(env, napi_unref_threadsafe_function(env, tsfn));
  if (engine_start(e) < 0) {
    int err = errno;
    cleanup(e);
    return throw_errno(env, "engine start", err);
  }
  CHECK(env, napi_set_instance_data(env, e, NULL, NULL));
  CHECK(env, napi_add_env_cleanup_hook(env, cleanup, e));
  return NULL;
}

int64_t int_arg(napi_env env, napi_value v) {
  int64_t x = 0;
  if (napi_get_value_int64(env, v, &x) != napi_ok) return -1;
  return x;
}

/* listen(fd, id, target, targetPort, connectMs, idleMs, lingerMs, maxConns, logs, stats) serves a
 * listening socket from a duplicate of fd (the caller closes its own). logs: LOG_OPENED |
 * LOG_CLOSED, the events JavaScript logs (a connect failure is always sent: it is warned). */
static napi_value Listen(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  if (!get_args(env, info, 10, argv)) return NULL;
  struct engine *e = engine_of(env);
  if (e == NULL) {
    napi_throw_error(env, "ERR_PORTPUB_NATIVE", "engine not started");
    return NULL;
  }
  int64_t fd = int_arg(env, argv[0]), id = int_arg(env, argv[1]), port = int_arg(env, argv[3]);
  char host[64];
  size_t len = 0;
  CHECK(env, napi_get_value_string_utf8(env, argv[2], host, sizeof host, &len));
  int64_t logs = int_arg(env, argv[8]);
  void *stats = NULL;
  size_t stats_len = 0;
  CHECK(env, napi_get_arraybuffer_info(env, argv[9], &stats, &stats_len));
  if (fd < 0 || fd > 0x7fffffff || id < 0 || port < 1 || port > 65535 ||
      stats_len < ST_COUNT * sizeof(double)) {
    napi_throw_range_error(env, "ERR_PORTPUB_NATIVE", "listen: bad argument");
    return NULL;
  }
  struct listener *l = calloc(1, sizeof *l);
  if (l == NULL) return throw_errno(env, "listen", ENOMEM);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&l->target;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&l->target;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    l->target_len = sizeof *v4;
  } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    l->target_len = sizeof *v6;
  } else {
    free(l);
    napi_throw_type_error(env, "ERR_PORTPUB_NATIVE", "listen: target must be an IP literal");
    return NULL;
  }
  int accepting = 0;
  socklen_t alen = sizeof accepting;
  if (getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &alen) < 0 || !accepting) {
    free(l);
    return throw_errno(env, "listen: not a listening socket", accepting ? errno : EINVAL);
  }
  l->fd = fcntl((int)fd, F_DUPFD_CLOEXEC, 0);
  if (l->fd < 0) {
    int err = errno;
    free(l);
    return throw_errno(env, "listen: dup", err);
  }
  int flags = fcntl(l->fd, F_GETFL);
  if (flags < 0 || fcntl(l->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    int err = errno;
    close(l->fd);
    free(l);
    return throw_errno(env, "listen: O_NONBLOCK", err);
  }
  /* Accepted sockets inherit these from the listener: set once here, not per connection. */
  tcp_tune(l->fd);
  l->kind = K_LISTENER;
  l->id = (uint32_t)id;
  l->connect_ms = int_arg(env, argv[4]);
  l->idle_ms = int_arg(env, argv[5]);
  l->linger_ms = int_arg(env, argv[6]);
  int64_t max = int_arg(env, argv[7]);
  l->max_conns = max > 0 ? (uint64_t)max : 0;
  if (l->connect_ms < 0) l->connect_ms = 0;
  if (l->idle_ms < 0) l->idle_ms = 0;
  if (l->linger_ms < 0) l->linger_ms = 0;
  l->log_opened = (logs & LOG_OPENED) != 0;
  l->log_closed = (logs & LOG_CLOSED) != 0;
  l->stats = stats;
  list_init(&l->all);
  list_init(&l->q_connect);
  list_init(&l->q_open);
  list_init(&l->q_half);
  pthread_mutex_lock(&e->lock);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = l};
  if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, l->fd, &ev) < 0) {
    int err = errno;
    pthread_mutex_unlock(&e->lock);
    close(l->fd);
    free(l);
    return throw_errno(env, "listen: epoll", err);
  }
  l->next = e->listeners;
  e->listeners = l;
  pthread_mutex_unlock(&e->lock);
  engine_post(e, (struct cmd){.type = CMD_ADD});
  return NULL;
}

static struct listener *find(struct engine *e, uint32_t id) {
  for (struct listener *l = e->listeners; l; l = l->next) {
    if (l->id == id && !l->dead) return l;
  }
  return NULL;
}

static napi_value stop_listener(napi_env env, napi_callback_info info, int destroy) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  struct engine *e = engine_of(env);
  if (e == NULL) return NULL;
  int64_t id = int_arg(env, argv[0]);
  pthread_mutex_lock(&e->lock);
  e->now_ms = mono_ms();
  struct listener *l = find(e, (uint32_t)id);
  if (l && destroy) tcp_destroy_listener(e, l);
  else if (l) tcp_close_listener(e, l);
  pthread_mutex_unlock(&e->lock);
  engine_post(e, (struct cmd){.type = destroy ? CMD_DESTROY : CMD_CLOSE});
  return NULL;
}

/* adopt(id, fd) serves a client Node accepted before the engine took the listener, from a
 * duplicate of fd (the caller destroys its socket). */
static napi_value Adopt(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  struct engine *e = engine_of(env);
  if (e == NULL) return NULL;
  int64_t id = int_arg(env, argv[0]), fd = int_arg(env, argv[1]);
  if (fd < 0 || fd > 0x7fffffff) {
    napi_throw_range_error(env, "ERR_PORTPUB_NATIVE", "adopt: bad descriptor");
    return NULL;
  }
  int mine = fcntl((int)fd, F_DUPFD_CLOEXEC, 0);
  if (mine < 0) return throw_errno(env, "adopt: dup", errno);
  pthread_mutex_lock(&e->lock);
  e->now_ms = mono_ms();
  struct listener *l = find(e, (uint32_t)id);
  if (l) tcp_adopt(e, l, mine);
  else close(mine);
  pthread_mutex_unlock(&e->lock);
  engine_post(e, (struct cmd){.type = CMD_ADD});
  return NULL;
}

/* close(id) stops accepting; the DRAINED event follows the last connection. */
static napi_value Close(napi_env env, napi_callback_info info) { return stop_listener(env, info, 0); }
/* destroy(id) also cuts every connection now. */
static napi_value Destroy(napi_env env, napi_callback_info info) { return stop_listener(env, info, 1); }

napi_value str(napi_env env, const char *s) {
  napi_value v;
  if (napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v) != napi_ok) return NULL;
  return v;
}

static void local_name(int fd, char *out, size_t cap) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
    out[0] = 0;
    return;
  }
  format_addr(&ss, out, cap);
}

/* connections(id) lists live connections as [client, host, targetLocal, openedAt, activeAt, up,
 * down, state] rows (times in wall-clock ms, see wall_ms); state 0 connecting, 1 open,
 * 2 half-closed, 3 draining. */
static napi_value Connections(napi_env env, napi_callback_info info) {
  napi_value argv[1], rows;
  if (!get_args(env, info, 1, argv)) return NULL;
  struct engine *e = engine_of(env);
  CHECK(env, napi_create_array(env, &rows));
  if (e == NULL) return rows;
  int64_t id = int_arg(env, argv[0]);
  pthread_mutex_lock(&e->lock);
  struct listener *l = find(e, (uint32_t)id);
  uint32_t n = 0;
  for (struct link *p = l ? l->all.next : NULL; l && p != &l->all; p = p->next) {
    struct conn *c = container_of(p, struct conn, all);
    char client[64], host[64], tlocal[64];
    format_addr(&c->peer, client, sizeof client);
    local_name(c->fd[0], host, sizeof host);
    local_name(c->state == C_CONNECTING ? -1 : c->fd[1], tlocal, sizeof tlocal);
    int state = c->state == C_CONNECTING ? 0 : l->closing ? 3 : c->state == C_HALF ? 2 : 1;
    double nums[5] = {wall_ms(c->opened_ms), wall_ms(c->active_ms), (double)c->up,
                      (double)c->down, state};
    napi_value row, v;
    if (napi_create_array_with_length(env, 8, &row) != napi_ok) break;
    const char *texts[3] = {client, host, tlocal};
    int ok = 1;
    for (uint32_t k = 0; k < 3 && ok; k++) {
      v = str(env, texts[k]);
      ok = v && napi_set_element(env, row, k, v) == napi_ok;
    }
    for (uint32_t k = 0; k < 5 && ok; k++) {
      ok = napi_create_double(env, nums[k], &v) == napi_ok &&
           napi_set_element(env, row, 3 + k, v) == napi_ok;
    }
    if (!ok || napi_set_element(env, rows, n++, row) != napi_ok) break;
  }
  pthread_mutex_unlock(&e->lock);
  return rows;
}

/* pollStats() is [polls begun, polls that found an event] of the engine's busy polling (engine.c
 * busy_poll), for tests and diagnostics; [0, 0] before the engine started. */
static napi_value PollStats(napi_env env, napi_callback_info info) {
  (void)info;
  struct engine *e = engine_of(env);
  napi_value out, v;
  CHECK(env, napi_create_array_with_length(env, PS_COUNT, &out));
  for (uint32_t i = 0; i < PS_COUNT; i++) {
    uint64_t n = e ? __atomic_load_n(&e->poll_stats[i], __ATOMIC_RELAXED) : 0;
    CHECK(env, napi_create_double(env, (double)n, &v));
    CHECK(env, napi_set_element(env, out, i, v));
  }
  return out;
}

/* ref()/unref() keep the process alive while any listener or connection is served. */
static napi_value set_ref(napi_env env, int on) {
  struct engine *e = engine_of(env);
  if (e == NULL) return NULL;
  napi_threadsafe_function t = e->tsfn;
  CHECK(env, on ? napi_ref_threadsafe_function(env, t) : napi_unref_threadsafe_function(env, t));
  return NULL;
}
static napi_value Ref(napi_env env, napi_callback_info info) { (void)info; return set_ref(env, 1); }
static napi_value Unref(napi_env env, napi_callback_info info) { (void)info; return set_ref(env, 0); }

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"start", NULL, Start, NULL, NULL, NULL, napi_default, NULL},
      {"listen", NULL, Listen, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_default, NULL},
      {"adopt", NULL, Adopt, NULL, NULL, NULL, napi_default, NULL},
      {"destroy", NULL, Destroy, NULL, NULL, NULL, napi_default, NULL},
      {"connections", NULL, Connections, NULL, NULL, NULL, napi_default, NULL},
      {"udpListen", NULL, UdpListen, NULL, NULL, NULL, napi_default, NULL},
      {"udpDestroy", NULL, UdpDestroy, NULL, NULL, NULL, napi_default, NULL},
      {"udpFlows", NULL, UdpFlows, NULL, NULL, NULL, napi_default, NULL},
      {"pollStats", NULL, PollStats, NULL, NULL, NULL, napi_default, NULL},
      {"ref", NULL, Ref, NULL, NULL, NULL, napi_default, NULL},
      {"unref", NULL, Unref, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  napi_value abi;
  CHECK(env, napi_create_uint32(env, ABI, &abi));
  CHECK(env, napi_set_named_property(env, exports, "abi", abi));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
