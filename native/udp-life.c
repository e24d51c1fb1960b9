/* The lives of UDP listeners and flows in the engine thread: running again what used its turn,
 * expiry (timeout after the last datagram to the target), destroying a listener, and freeing
 * what ended once no epoll event can point at it. */
#define _GNU_SOURCE
#include "engine.h"
#include "udp.h"

#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

void udp_run_again(struct engine *e) {
  struct flow *list = e->flow_again;
  e->flow_again = NULL;
  while (list) {
    struct flow *f = list;
    list = f->again;
    f->again = NULL;
    f->queued = 0;
    udp_on_flow(e, f, EPOLLIN);
  }
  for (struct ulistener *u = e->ulisteners; u; u = u->next) {
    if (!u->again) continue;
    u->again = 0;
    if (!u->dead) udp_on_listener(e, u);
  }
}

int64_t udp_timeouts(struct engine *e, struct ulistener *u) {
  while (!list_empty(&u->lru)) {
    struct flow *f = container_of(u->lru.next, struct flow, lru);
    int64_t due = f->active_ms + u->timeout_ms;
    if (due > e->now_ms) return due - e->now_ms;
    udp_flow_end(e, f, FE_EXPIRED, 0);
  }
  return -1;
}

void udp_destroy_listener(struct engine *e, struct ulistener *u) {
  if (u->dead) return;
  u->closing = 1;
  if (u->fd >= 0) {
    (void)epoll_ctl(e->epfd, EPOLL_CTL_DEL, u->fd, NULL); /* Node may still hold its own fd */
    close(u->fd);
    u->fd = -1;
  }
  while (!list_empty(&u->lru)) {
    udp_flow_end(e, container_of(u->lru.next, struct flow, lru), FE_DESTROYED, 0);
  }
  u->dead = 1;
  struct event ev = {.type = EV_DRAINED, .listener = u->id};
  engine_emit(e, &ev);
}

void udp_reap(struct engine *e) {
  struct flow *keep = NULL;
  while (e->flow_graveyard) {
    struct flow *f = e->flow_graveyard;
    e->flow_graveyard = f->next_free;
    if (f->queued) {
      f->next_free = keep;
      keep = f;
      continue;
    }
    f->next_free = e->free_flows;
    e->free_flows = f;
  }
  e->flow_graveyard = keep;
  struct ulistener **p = &e->ulisteners;
  while (*p) {
    struct ulistener *u = *p;
    if (u->dead) {
      *p = u->next;
      free(u->table);
      free(u);
    } else {
      p = &u->next;
    }
  }
}

void udp_free_all(struct engine *e) {
  for (struct ulistener *u = e->ulisteners; u; u = u->next) {
    if (u->fd >= 0) close(u->fd);
    while (!list_empty(&u->lru)) {
      struct flow *f = container_of(u->lru.next, struct flow, lru);
      list_remove(&f->lru);
      if (f->fd >= 0) close(f->fd);
      free(f);
    }
  }
  while (e->ulisteners) {
    struct ulistener *u = e->ulisteners;
    e->ulisteners = u->next;
    free(u->table);
    free(u);
  }
  struct flow *lists[2] = {e->flow_graveyard, e->free_flows};
  for (int i = 0; i < 2; i++) {
    while (lists[i]) {
      struct flow *f = lists[i];
      lists[i] = f->next_free;
      free(f);
    }
  }
  e->flow_graveyard = e->free_flows = NULL;
  free(e->ubuf);
  e->ubuf = NULL;
}
