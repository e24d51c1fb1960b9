/* What the TCP files share (tcp.c: the relay of one pair; tcp-accept.c: listeners, accepting,
 * connecting, timeouts). */
#ifndef PORTPUB_TCP_H
#define PORTPUB_TCP_H

#include "engine.h"

void tcp_tune(int fd);
/* tcp_close_fd closes a socket, with a reset (SO_LINGER 0) when asked; *fd becomes -1. */
void tcp_close_fd(int *fd, int reset);
void tcp_emit(struct engine *e, struct listener *l, int type, int err,
              const struct sockaddr_storage *peer);
void tcp_pipe_give(struct engine *e, struct dir *d);
void tcp_drained_check(struct engine *e, struct listener *l);
/* tcp_finish ends a connection (the caller chose which sockets get a reset). */
void tcp_finish(struct engine *e, struct conn *c, int how, int err);
void tcp_connect_failed(struct engine *e, struct conn *c, int err);
/* tcp_requeue moves the connection to the timeout queue its state calls for. */
void tcp_requeue(struct conn *c);

#endif
