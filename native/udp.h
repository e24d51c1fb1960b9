/* What the UDP files share (udp.c: the datagram paths; udp-life.c: expiry, destroy, freeing). */
#ifndef PORTPUB_UDP_H
#define PORTPUB_UDP_H

#include "engine.h"

/* udp_flow_end closes a flow (the caller counted what it meant to) and tells JavaScript. */
void udp_flow_end(struct engine *e, struct flow *f, int how, int err);

#endif
