/* The Node-API face of the UDP engine (native/udp.c): hand it a bound UDP socket, destroy it,
 * list its flows. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "engine.h"
#include "napi-util.h"

/* udpListen(fd, id, target, targetPort, flowTimeoutMs, maxFlows, logFlows, stats) serves a
 * bound UDP socket from a duplicate of fd, with IP_PKTINFO so replies leave from the address each
 * client sent to. */
napi_value UdpListen(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (!get_args(env, info, 8, argv)) return NULL;
  struct engine *e = engine_of(env);
  if (e == NULL) {
    napi_throw_error(env, "ERR_PORTPUB_NATIVE", "engine not started");
    return NULL;
  }
  int64_t fd = int_arg(env, argv[0]), id = int_arg(env, argv[1]), port = int_arg(env, argv[3]);
  int64_t timeout = int_arg(env, argv[4]), max = int_arg(env, argv[5]);
  char host[64];
  size_t len = 0;
  CHECK(env, napi_get_value_string_utf8(env, argv[2], host, sizeof host, &len));
  bool log_flows = false;
  CHECK(env, napi_get_value_bool(env, argv[6], &log_flows));
  void *stats = NULL;
  size_t stats_len = 0;
  CHECK(env, napi_get_arraybuffer_info(env, argv[7], &stats, &stats_len));
  if (fd < 0 || fd > 0x7fffffff || id < 0 || port < 1 || port > 65535 || timeout < 1 ||
      max < 1 || stats_len < US_COUNT * sizeof(double)) {
    napi_throw_range_error(env, "ERR_PORTPUB_NATIVE", "udpListen: bad argument");
    return NULL;
  }
  if (udp_init(e) < 0) return throw_errno(env, "udpListen", errno);
  struct ulistener *u = calloc(1, sizeof *u);
  if (u == NULL) return throw_errno(env, "udpListen", ENOMEM);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&u->target;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&u->target;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    u->target_len = sizeof *v4;
  } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    u->target_len = sizeof *v6;
  } else {
    free(u);
    napi_throw_type_error(env, "ERR_PORTPUB_NATIVE", "udpListen: target must be an IP literal");
    return NULL;
  }
  int type = 0;
  socklen_t tlen = sizeof type;
  struct sockaddr_storage self;
  socklen_t slen = sizeof self;
  if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_DGRAM ||
      getsockname((int)fd, (struct sockaddr *)&self, &slen) < 0) {
    free(u);
    return throw_errno(env, "udpListen: not a bound UDP socket", type == SOCK_DGRAM ? errno : EINVAL);
  }
  u->family = self.ss_family;
  u->fd = fcntl((int)fd, F_DUPFD_CLOEXEC, 0);
  if (u->fd < 0) {
    int err = errno;
    free(u);
    return throw_errno(env, "udpListen: dup", err);
  }
  int one = 1, flags = fcntl(u->fd, F_GETFL);
  int rc = u->family == AF_INET6
               ? setsockopt(u->fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one)
               : setsockopt(u->fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
  if (rc < 0 || flags < 0 || fcntl(u->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    int err = errno;
    close(u->fd);
    free(u);
    return throw_errno(env, "udpListen: IP_PKTINFO", err);
  }
  size_t buckets = 64;
  while (buckets < (uint64_t)max && buckets < (1u << 16)) buckets <<= 1;
  u->table = calloc(buckets, sizeof *u->table);
  if (u->table == NULL) {
    close(u->fd);
    free(u);
    return throw_errno(env, "udpListen", ENOMEM);
  }
  u->nbuckets = buckets;
  u->kind = K_ULISTENER;
  u->id = (uint32_t)id;
  u->timeout_ms = timeout;
  u->max_flows = (uint64_t)max;
  u->log_flows = log_flows;
  u->stats = stats;
  list_init(&u->lru);
  pthread_mutex_lock(&e->lock);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = u};
  if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, u->fd, &ev) < 0) {
    int err = errno;
    pthread_mutex_unlock(&e->lock);
    close(u->fd);
    free(u->table);
    free(u);
    return throw_errno(env, "udpListen: epoll", err);
  }
  u->next = e->ulisteners;
  e->ulisteners = u;
  pthread_mutex_unlock(&e->lock);
  engine_post(e, (struct cmd){.type = CMD_ADD});
  return NULL;
}

static struct ulistener *ufind(struct engine *e, uint32_t id) {
  for (struct ulistener *u = e->ulisteners; u; u = u->next) {
    if (u->id == id && !u->dead) return u;
  }
  return NULL;
}

/* udpDestroy(id) closes the socket and every flow now; EV_DRAINED follows at once. */
napi_value UdpDestroy(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  struct engine *e = engine_of(env);
  if (e == NULL) return NULL;
  int64_t id = int_arg(env, argv[0]);
  pthread_mutex_lock(&e->lock);
  e->now_ms = mono_ms();
  struct ulistener *u = ufind(e, (uint32_t)id);
  if (u) udp_destroy_listener(e, u);
  pthread_mutex_unlock(&e->lock);
  engine_post(e, (struct cmd){.type = CMD_DESTROY});
  return NULL;
}

static void dst_name(const struct flow *f, int port, char *out, size_t cap) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  ss.ss_family = f->client.ss_family;
  if (ss.ss_family == AF_INET) {
    ((struct sockaddr_in *)&ss)->sin_addr = f->dst4;
    ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
  } else {
    ((struct sockaddr_in6 *)&ss)->sin6_addr = f->dst6;
    ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
  }
  format_addr(&ss, out, cap);
}

/* udpFlows(id, port) lists live flows, least recently active first, as [client, host,
 * targetLocal, openedAt, activeAt, bytesUp, bytesDown] rows (wall-clock ms, see wall_ms). */
napi_value UdpFlows(napi_env env, napi_callback_info info) {
  napi_value argv[2], rows;
  if (!get_args(env, info, 2, argv)) return NULL;
  struct engine *e = engine_of(env);
  CHECK(env, napi_create_array(env, &rows));
  if (e == NULL) return rows;
  int64_t id = int_arg(env, argv[0]), port = int_arg(env, argv[1]);
  pthread_mutex_lock(&e->lock);
  struct ulistener *u = ufind(e, (uint32_t)id);
  uint32_t n = 0;
  for (struct link *p = u ? u->lru.next : NULL; u && p != &u->lru; p = p->next) {
    struct flow *f = container_of(p, struct flow, lru);
    char client[64], host[64], tlocal[64];
    format_addr(&f->client, client, sizeof client);
    dst_name(f, (int)port, host, sizeof host);
    format_addr(&f->local, tlocal, sizeof tlocal);
    int64_t last = f->reply_ms > f->active_ms ? f->reply_ms : f->active_ms;
    double nums[4] = {wall_ms(f->opened_ms), wall_ms(last), (double)f->up, (double)f->down};
    napi_value row, v;
    if (napi_create_array_with_length(env, 7, &row) != napi_ok) break;
    const char *texts[3] = {client, host, tlocal};
    int ok = 1;
    for (uint32_t k = 0; k < 3 && ok; k++) {
      v = str(env, texts[k]);
      ok = v && napi_set_element(env, row, k, v) == napi_ok;
    }
    for (uint32_t k = 0; k < 4 && ok; k++) {
      ok = napi_create_double(env, nums[k], &v) == napi_ok &&
           napi_set_element(env, row, 3 + k, v) == napi_ok;
    }
    if (!ok || napi_set_element(env, rows, n++, row) != napi_ok) break;
  }
  pthread_mutex_unlock(&e->lock);
  return rows;
}
