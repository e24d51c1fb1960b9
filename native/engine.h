/* The native data plane's shared declarations: one engine per Node environment, one engine
 * thread with an edge-triggered epoll set, listeners and connections it owns, and the batched
 * events it hands to JavaScript. Everything here is touched by the engine thread only, except
 * where a comment says the main thread may read it (under engine->lock). */
#ifndef PORTPUB_ENGINE_H
#define PORTPUB_ENGINE_H

#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Kinds of objects registered in the epoll set; every registered struct starts with one. */
enum kind { K_WAKE = 1, K_LISTENER, K_SIDE, K_ULISTENER, K_FLOW };

/* Event types sent to JavaScript (mirrored in src/engine/native-tcp.ts). */
enum ev_type {
  EV_OPENED = 1, EV_CLOSED, EV_REJECTED, EV_ACCEPT_ERROR, EV_DRAINED,
  /* UDP (native/udp.c): conn is the flow id, how the drop reason or the flow's ending */
  EV_FLOW_OPENED, EV_FLOW_ENDED, EV_DROP, EV_UDP_ERROR,
  EV_LOOPED /* TCP: a connection from one of this engine's own target sockets, dropped */
};

/* How a connection ended (mirrored in src/engine/native-tcp.ts as TcpEnding). */
enum how {
  HOW_NONE = 0, HOW_END, HOW_RESET_BY_CLIENT, HOW_RESET_BY_TARGET, HOW_IDLE_TIMEOUT,
  HOW_LINGER_TIMEOUT, HOW_DESTROYED, HOW_CONNECT_FAILED
};

/* Counter slots of a listener's stats array (TcpStats, in this order). */
enum stat_slot {
  ST_ACTIVE, ST_TOTAL, ST_REJECTED, ST_CONNECT_FAILURES, ST_UP, ST_DOWN, ST_LOOPED, ST_COUNT
};

/* UDP drop reasons, in UdpStats.drops order (src/udp/options.ts UDP_DROP_REASONS). */
enum drop {
  D_QUEUE_FULL, D_CLIENT_QUEUE_FULL, D_FLOW_SETUP, D_FLOW_CLOSED, D_TARGET_REFUSED,
  D_TARGET_SEND, D_CLIENT_SEND, D_TOO_LARGE, D_LOOP, D_COUNT
};

/* How a UDP flow ended (EV_FLOW_ENDED's how). */
enum flow_end { FE_EXPIRED = 1, FE_EVICTED, FE_BROKEN, FE_DESTROYED, FE_SETUP };

/* Slots of a UDP listener's stats array (UdpStats, drops after the six counters). */
enum ustat_slot {
  US_ACTIVE, US_TOTAL, US_DGRAMS_UP, US_DGRAMS_DOWN, US_UP, US_DOWN, US_EVICTIONS,
  US_DROPS, US_COUNT = US_DROPS + D_COUNT
};

/* One event record; the client address is already text. */
struct event {
  double type, listener, conn, how, err, up, down, duration_ms;
  double extra; /* UDP: the flow socket's source port */
  char client[112]; /* ip:port; EV_FLOW_OPENED adds " " and the local address */
};

/* A list link, intrusive (the owner embeds it); a list head is a link pointing at itself. */
struct link {
  struct link *prev, *next;
};

struct conn;

/* side is one socket of a connection: what epoll events point at. */
struct side {
  uint8_t kind; /* K_SIDE */
  uint8_t idx;  /* 0 client, 1 target */
  struct conn *conn;
};

/* dir is one direction of a relay: bytes from side `from` to the other, through a pipe. */
struct dir {
  int pipe_r, pipe_w; /* -1 when no pipe is held (nothing in flight) */
  uint32_t in_pipe;   /* bytes in the pipe */
  uint8_t eof;        /* the source sent its FIN (read returned 0) */
  uint8_t done;       /* the FIN was passed on: shutdown(SHUT_WR) on the destination */
  uint8_t bulk;       /* the last read filled the copy buffer: splice until a read is small */
};

enum conn_state { C_CONNECTING, C_OPEN, C_HALF, C_DEAD };

struct listener;

struct conn {
  struct side sides[2];
  int fd[2];           /* client, target; -1 once closed */
  uint8_t readable[2]; /* edge-triggered readiness, cleared on EAGAIN */
  uint8_t writable[2];
  uint8_t ending[2];   /* a FIN, hang-up or error was reported: a short read is not the end */
  uint8_t state;
  uint8_t how;
  uint8_t queued; /* on the engine's run-again (1) or pipe-wait (2) list */
  int err;        /* errno that ended it, 0 if none */
  struct dir dir[2]; /* 0: client -> target, 1: target -> client */
  uint64_t id;
  uint64_t up, down;
  int64_t opened_ms, active_ms;
  struct listener *l;
  struct link all;     /* listener's connections */
  struct link tq;      /* one of the listener's timeout queues */
  struct conn *again;  /* run-again list */
  struct conn *next_free;
  struct conn *lnext; /* engine's table of target sockets' own addresses (loop detection) */
  struct sockaddr_storage peer;
  struct sockaddr_storage local; /* the target socket's own address; family 0 until known */
};

struct listener {
  uint8_t kind; /* K_LISTENER */
  uint8_t closing;
  uint8_t dead;
  uint8_t log_opened;
  uint8_t log_closed; /* send EV_CLOSED for every connection, not only failed connects */
  uint8_t accept_retry; /* accept again: 2 at once (burst budget spent), 1 after a pause */
  int fd;
  uint32_t id;
  struct sockaddr_storage target;
  socklen_t target_len;
  int64_t connect_ms, idle_ms, linger_ms;
  uint64_t max_conns, nconns;
  double *stats; /* ST_COUNT doubles in a JavaScript ArrayBuffer; written with atomic stores */
  struct link all;
  struct link q_connect, q_open, q_half; /* ordered by last activity: oldest first */
  struct listener *next;
};

struct ulistener;

/* flow is one UDP client: a socket connected to the target, and where its replies leave from. */
struct flow {
  uint8_t kind; /* K_FLOW */
  uint8_t dead;
  uint8_t queued; /* on the engine's flow run-again list */
  int fd;
  struct ulistener *u;
  struct sockaddr_storage client;
  socklen_t client_len;
  struct sockaddr_storage local;  /* the flow socket's own address (loop detection) */
  struct in_addr dst4;            /* the address the client sent to: the reply's source */
  struct in6_addr dst6;
  int ifindex;
  uint64_t id, up, down, dgrams_up, dgrams_down;
  int64_t opened_ms, active_ms, reply_ms;
  struct link lru;          /* listener's flows, least recently sent to the target first */
  struct flow *hnext;       /* listener's table, by client address */
  struct flow *lnext;       /* engine's table, by the flow socket's own address */
  struct flow *again, *next_free;
};

struct ulistener {
  uint8_t kind; /* K_ULISTENER */
  uint8_t closing, dead, log_flows, again;
  int fd, family;
  uint32_t id;
  struct sockaddr_storage target;
  socklen_t target_len;
  int64_t timeout_ms;
  uint64_t max_flows, nflows;
  double *stats; /* US_COUNT doubles, as struct listener's */
  struct link lru;
  struct flow **table;
  size_t nbuckets; /* a power of two */
  int64_t last_warn[D_COUNT];
  struct ulistener *next;
};

/* Which per-connection events a TCP listener sends (listen()'s logs argument). */
#define LOG_OPENED 1
#define LOG_CLOSED 2
/* TCP_SMALL: TCP reads up to this size are copied through the engine's buffer (tcp.c). */
#define TCP_SMALL 4096
/* POLL_SMALL: TCP reads and lone datagrams shorter than this are requests or replies, worth a
 * busy poll for the next event (engine.c). */
#define POLL_SMALL 2048
#define OWN_BUCKETS 4096
/* Buffers for batched datagrams, one set per engine (allocated with the first UDP listener). */
#define UDP_BATCH 32
#define UDP_MAX 65536

/* Busy-poll counters (struct engine's poll_stats): polls begun, polls that found an event. */
enum poll_stat { PS_POLLS, PS_HITS, PS_COUNT };

enum cmd_type { CMD_ADD = 1, CMD_CLOSE, CMD_DESTROY, CMD_STOP };

struct cmd {
  int type;
  uint32_t id;
  struct listener *l; /* CMD_ADD */
};

struct engine {
  int epfd, wakefd, spare_fd;
  pthread_t thread;
  int thread_started;
  pthread_mutex_t lock; /* held by the engine thread while it works; the main thread takes it
                           to read connections or post commands */
  /* commands from the main thread, under lock */
  struct cmd *cmds;
  size_t ncmds, cap_cmds;
  /* events for the main thread, under ev_lock */
  pthread_mutex_t ev_lock;
  struct event *evs, *evs_spare;
  size_t nevs, cap_evs, cap_spare;
  int call_pending;
  void *tsfn; /* napi_threadsafe_function */
  /* engine-thread state */
  struct listener *listeners;
  struct conn *again_head;
  struct conn *wait_head; /* connections waiting for a pipe (descriptors ran out) */
  int64_t wait_until;
  struct conn *free_conns;
  struct conn *graveyard;
  int pool[64][2]; /* idle pipes */
  int npool;
  uint64_t next_conn_id;
  int64_t now_ms;
  int stopping;
  /* UDP */
  struct ulistener *ulisteners;
  struct flow *flow_again, *free_flows, *flow_graveyard;
  struct flow *own[OWN_BUCKETS]; /* every flow socket's own address, for loop detection */
  struct conn *own_tcp[OWN_BUCKETS]; /* every TCP target socket's own address, likewise */
  unsigned char *ubuf;           /* UDP_BATCH * UDP_MAX bytes */
  unsigned char small[TCP_SMALL]; /* the copy buffer for small TCP reads (tcp.c) */
  uint64_t next_flow_id;
  int oom; /* events were lost for want of memory: reported once */
  /* busy polling (engine.c) */
  int64_t poll_ns;         /* how long to poll before sleeping; 0: never (set before the start) */
  int64_t poll_period;     /* mono_ns() when the current second of polling began */
  int poll_period_misses;  /* polls that found nothing in it */
  uint64_t poll_stats[PS_COUNT]; /* read by the main thread (pollStats), atomically */
  uint8_t moved_small;    /* the last batch moved a small read or a lone small datagram */
  uint8_t moved_bulk;     /* ... or a bulk read, or datagrams by the batch */
};

/* engine.c */
int engine_start(struct engine *e);
void engine_stop(struct engine *e);
void engine_post(struct engine *e, struct cmd c);
void engine_emit(struct engine *e, const struct event *ev);
int64_t mono_ms(void);
int64_t mono_ns(void);
double wall_ms(int64_t mono);
void list_init(struct link *h);
void list_remove(struct link *n);
void list_push_tail(struct link *h, struct link *n);
int list_empty(const struct link *h);
void stat_add(struct listener *l, int slot, double delta);
void format_addr(const struct sockaddr_storage *ss, char *out, size_t cap);
uint32_t addr_hash(const struct sockaddr_storage *ss);
int addr_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* tcp.c */
void tcp_on_listener(struct engine *e, struct listener *l);
void tcp_on_side(struct engine *e, struct side *s, uint32_t events);
void tcp_run(struct engine *e, struct conn *c);
void tcp_close_listener(struct engine *e, struct listener *l);
void tcp_destroy_listener(struct engine *e, struct listener *l);
int64_t tcp_timeouts(struct engine *e, struct listener *l); /* next deadline delay, -1 none */
void tcp_reap(struct engine *e);
void tcp_free_all(struct engine *e);
/* tcp_adopt serves a client Node accepted before the engine took the listener (fd is ours). */
void tcp_adopt(struct engine *e, struct listener *l, int fd);

/* udp.c */
int udp_init(struct engine *e); /* the buffers; 0 or -1 (errno) */
void udp_on_listener(struct engine *e, struct ulistener *u);
void udp_on_flow(struct engine *e, struct flow *f, uint32_t events);
void udp_run_again(struct engine *e);
int64_t udp_timeouts(struct engine *e, struct ulistener *u);
void udp_destroy_listener(struct engine *e, struct ulistener *u);
void udp_reap(struct engine *e);
void udp_free_all(struct engine *e);

#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))

#endif
