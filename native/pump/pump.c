/*
 * snigate byte pump: moves bytes between two connected, non-blocking TCP sockets on the libuv loop, so an
 * established passthrough connection costs no JavaScript per chunk.
 *
 * Connection fds live in the pump's own epoll set, which libuv polls as one fd (nested epoll). libuv's
 * uv_poll re-registers an fd on every start (EPOLL_CTL_DEL + ADD, the ADD failing with EEXIST first), which
 * cost ~13 epoll_ctl calls per proxied connection; here an fd is added once, interest is widened at once
 * and narrowed lazily (only when an unwanted event shows up), as HAProxy does: 3 per connection.
 *
 * Node-API (ABI-stable) plus libuv's stable 1.x uv_poll/uv_timer interfaces. One shared 64 KiB read buffer for
 * all connections (everything runs on the loop thread): a read is written to the other socket at once, and
 * only what the kernel does not take is copied into a per-direction buffer (malloc'd, freed once sent);
 * reading that direction stops until it is sent (backpressure). An idle connection holds no buffer. A read that
 * fills the whole buffer marks a bulk flow: its next bytes go through a pipe with splice(2), socket to pipe to
 * socket, without a copy through user space (~16% less CPU per GB on loopback; SNIGATE_SPLICE=0 turns it off).
 *
 * Two modes.
 * Borrowed fds (the JS sockets keep them; used after a Postgres SSLRequest exchange):
 *   start(fdClient, fdBackend, cb) -> handle | errno (number, negative) when the fds cannot be polled
 *   stop(handle)                   stops polling (idempotent); the sockets stay open, JS closes them
 * Owned fds (the whole passthrough connection after the ClientHello: no net.Socket is left alive, so an
 * idle connection costs a few hundred bytes and a new one skips Node's socket and connect machinery):
 *   open(fdClient, cb)             dups the client fd (the JS socket is then destroyed) -> handle | -errno
 *   connect(h, ip, port, timeoutMs, idleMs, prefix, head[, quietEpoch])
 *                                  one backend attempt: 0 (the result comes as kind 4 or 5) or -errno at
 *                                  once; once connected `prefix` (a PROXY header) then `head` (the client's
 *                                  bytes so far) are sent first. `head` is copied and kept for later
 *                                  attempts, which pass an empty one. With quietEpoch (the value of
 *                                  shared()[0] at the call), kind 4 is sent only if shared()[0] changed since.
 *   buffer() / shared()            views of the shared read buffer and of the shared Int32Array (made once)
 *   close(h, reset)                stops and closes both fds (reset: RST instead of FIN), no callback
 * Accepted in C (a passthrough-capable listener: no net.Server, no net.Socket unless a connection is
 * handed to Node's TLS/HTTP side):
 *   listen(ip, port, ipv6Only, onAccept, onEvent) -> listener | -errno (EADDRINUSE...)
 *   listenPort(l) / unlisten(l)    the bound port; stop accepting and close the socket
 *   onAccept(h, ip, port)          per accepted connection (an owned-fd handle, not reading yet); returns the
 *                                  object events of `h` are delivered to: onEvent.call(owner, kind, side, err, data)
 *   readStart(h, timeoutMs)        before connect: reads the client now; returns the byte count read into the
 *                                  shared read buffer (buffer(); valid until control returns to the loop), 0
 *                                  when nothing is there yet, UV_EOF, or -errno; later reads come as kind 7
 *                                  (err = byte count, in the shared buffer, valid only during the call); kind 9
 *                                  once if reading is not stopped within timeoutMs (0: no limit)
 *   readStop(h)
 *   write(h, buf)                  before connect: bytes written at once, or -errno (-EAGAIN if not all fit)
 *   release(h)                     gives the client fd to Node (new net.Socket({ fd })): no more events
 *   localAddress(h)                { address, port } of the client socket's local end
 * Both:
 *   bytes(handle, side)            bytes read from side (0 client, 1 backend) and written to the other
 *   cb(kind, side, err)            1: EOF read on side (borrowed fds only; the other side is shut down for
 *                                  writing once flushed); 2: error on side (err = -errno), stopped (owned: the
 *                                  other side was reset, both closed); 3: both directions finished, stopped
 *                                  (owned: closed; side = the side that ended first); 4: connected (owned);
 *                                  5: connect attempt failed, err = -errno
 *                                  (owned; the client fd stays open for another attempt); 6: idle timeout,
 *                                  stopped and closed (owned); 7: client data before connect (accepted;
 *                                  `data` is a view valid only during the call);
 *                                  listeners: 8: accept failed (err; EMFILE pauses accepting for 100 ms);
 *                                  9: read timeout (accepted, before connect; still open, JS decides).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "fastpath.h"

#define BUFSZ 65536
#define MAX_READS 8
/* Splice pipes: 256 KiB (F_SETPIPE_SZ; the 64 KiB default moved ~7% fewer MB/s than read/write on loopback). */
#define PIPESZ (256 * 1024)

enum {
  K_EOF = 1,
  K_ERROR = 2,
  K_DONE = 3,
  K_CONNECTED = 4,
  K_CONNECT_FAILED = 5,
  K_IDLE = 6,
  K_DATA = 7,
  K_ACCEPT_ERROR = 8,
  K_READ_TIMEOUT = 9
};
enum { S_OPEN = 0, S_CONNECTING = 1, S_PUMPING = 2, S_STOPPED = 3 };

static char g_buf[BUFSZ];
/*
 * [0]: the health failure epoch, bumped by JS on every endpoint failure (buffer() gives JS a view). A connect
 * made while its endpoint had no failure passes the epoch; if it is unchanged once connected, the success
 * report would change nothing and K_CONNECTED is not sent (one call into JS less per connection).
 */
static int32_t g_shared[4];

struct pump;

typedef struct side {
  struct pump *p;
  int idx;
  int fd;
  int solo;     /* the fd was made here (accept4/socket), never dup'ed: close(2) drops it from the epoll set */
  unsigned gen; /* bumped for every fd placed in this side: a stale event for an earlier fd is ignored */
  int reg;      /* epoll events registered, -1: not in the set */
  int want;     /* epoll events wanted now; reg may hold more until an unwanted event shows up */
  int narrow;   /* reported an unwanted event in this batch: narrowed at the batch's end */
  int rd_eof;
  int wr_shut;
  /* Bulk flows: a pipe holding bytes headed to this side, moved with splice(2) (no copy through user space). */
  int pipe_r;
  int pipe_w;
  size_t pipe_len;
  int nosplice; /* splice was refused for this flow: read/write from then on */
  char *pend;
  size_t pend_len;
  size_t pend_off;
} side;

/* A listening socket accepting in C. Kept until unlistened and every connection it accepted is freed. */
typedef struct listener {
  uv_poll_t poll;
  uv_timer_t backoff;
  int fd;
  int closed;
  int refs; /* 1 until unlisten, 1 per uv handle not yet closed, 1 per accepted pump alive */
  napi_env env;
  napi_ref on_accept;
  napi_ref on_event;
  struct fast_table *fast; /* the fast path's routes for new connections (NULL: every connection goes to JS) */
  struct pump *fast_list;  /* fast connections alive (not handed to JS), for fastClose and fastCount */
  long fast_live;
} listener;

typedef struct pump {
  side s[2];
  double bytes[2];
  napi_env env;
  napi_ref cb;
  napi_ref owner;    /* accepted: the object events are delivered to */
  listener *lst;     /* accepted: its listener (holds the shared event callback) */
  int reading;       /* accepted, before connect: client bytes are delivered as K_DATA */
  char *head;        /* client bytes to send first, kept across connect attempts until connected */
  size_t head_len;
  uv_loop_t *loop;
  uv_timer_t *timer; /* owned mode: connect timeout, then idle timeout */
  uint64_t idle_ms;
  uint64_t last; /* loop time of the last byte moved */
  int quiet;           /* connect: K_CONNECTED only if g_shared[0] moved from quiet_epoch (else always) */
  int32_t quiet_epoch;
  int owned;
  int state;
  int first_eof; /* owned: the side whose EOF came first (-1: none yet), reported with K_DONE */
  int refs;      /* 1 for the JS object, 1 per uv handle not yet closed, 1 per event batch holding it */
  /* Accepted: the client's address (for JS, for fast records). */
  union {
    struct sockaddr sa;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
  } peer;
  /* Fast path (see the "Fast path" section): set while C alone runs the connection. */
  struct fast_table *ft;
  struct pump *fnext, *fprev; /* in lst->fast_list */
  uint64_t t0;                /* uv_hrtime() at accept */
  double hello_ms;            /* -1: no ClientHello yet */
  double conn_id;             /* 0 until the open record */
  int32_t route, ep;          /* -1: not routed */
  int32_t sni_key;            /* the fast table key equal to the SNI (JS reuses its string), -1: none */
  int fast_wait;              /* waiting for the ClientHello to arrive */
  int fast_err;               /* the fast path's read result for JS (-errno, UV_EOF): readStart reports it */
  int opened;                 /* the open record was sent */
  char *info;                 /* SNI then the ALPN list bytes, for the records */
  uint16_t sni_len, alpn_len;
} pump;

static void on_side_event(side *s, uint32_t ev);
static void side_narrow(side *s);
/* Fast path (defined in its section below). */
struct fast_table;
static void fast_table_unref(struct fast_table *t);
static void fast_event(pump *p, int kind, int sidei, int err, int final, int reset);
static int fast_readable(pump *p);
static void fast_to_js(pump *p);
static void fast_flush(napi_env env);
static int g_nrec;

static void listener_unref(listener *l) {
  if (--l->refs > 0) return;
  napi_delete_reference(l->env, l->on_accept);
  napi_delete_reference(l->env, l->on_event);
  free(l);
}

static void unref(pump *p) {
  if (--p->refs > 0) return;
  for (int i = 0; i < 2; i++) free(p->s[i].pend);
  free(p->head);
  free(p->info);
  if (p->ft != NULL) fast_table_unref(p->ft);
  if (p->lst != NULL) listener_unref(p->lst);
  free(p);
}

static void on_timer_closed(uv_handle_t *h) {
  pump *p = (pump *)h->data;
  free(h);
  unref(p);
}

/* ---- The pump's epoll set (one per process: the main thread's loop) ---- */

static struct {
  uv_loop_t *loop;
  int epfd;
  uv_poll_t poll;
  long watched; /* fds in the set: the loop is kept alive while there are any, as uv_poll handles did */
} R; /* R.loop is NULL until the set is made */

static void batch_open(napi_env env);
static void batch_close(napi_env env);

#define TAG_PTR_BITS 48

static uint64_t side_tag(const side *s) {
  return (uint64_t)(uintptr_t)s | ((uint64_t)(s->gen & 0xffff) << TAG_PTR_BITS);
}

static side *tag_side(uint64_t tag) { return (side *)(uintptr_t)(tag & ((1ULL << TAG_PTR_BITS) - 1)); }

static void reactor_watched(long delta) {
  long before = R.watched;
  R.watched += delta;
  if (before == 0 && R.watched > 0) uv_ref((uv_handle_t *)&R.poll);
  else if (before > 0 && R.watched == 0) uv_unref((uv_handle_t *)&R.poll);
}

/*
 * Dispatches one batch of ready fds. Every pump of the batch is held first: a callback may stop and release
 * another pump of the same batch, whose memory must outlive the batch.
 */
static void on_reactor(uv_poll_t *h, int status, int events) {
  (void)h;
  (void)events;
  if (status < 0) return;
  struct epoll_event evs[128];
  int n;
  do n = epoll_wait(R.epfd, evs, 128, 0);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return;
  for (int k = 0; k < n; k++) tag_side(evs[k].data.u64)->p->refs++;
  napi_env env = tag_side(evs[0].data.u64)->p->env;
  batch_open(env);
  for (int k = 0; k < n; k++) {
    side *s = tag_side(evs[k].data.u64);
    if ((unsigned)(evs[k].data.u64 >> TAG_PTR_BITS) != (s->gen & 0xffff) || s->fd < 0 || s->reg < 0) continue;
    on_side_event(s, evs[k].events);
  }
  batch_close(env);
  /* Narrowed last: a connection that ended in this batch has closed its fds, and needs no epoll_ctl. */
  for (int k = 0; k < n; k++) {
    side *s = tag_side(evs[k].data.u64);
    if (!s->narrow) continue;
    s->narrow = 0;
    if (s->p->state != S_STOPPED) side_narrow(s);
  }
  for (int k = 0; k < n; k++) unref(tag_side(evs[k].data.u64)->p);
}

static void reactor_cleanup(void *arg) {
  (void)arg;
  if (R.loop == NULL) return;
  uv_close((uv_handle_t *)&R.poll, NULL);
  close(R.epfd);
  R.epfd = -1;
  R.loop = NULL;
}

/* The set is made on first use, on the loop of the first caller; another loop (a worker thread) gets ENOTSUP. */
static int reactor_init(napi_env env, uv_loop_t *loop) {
  if (R.loop == loop) return 0;
  if (R.loop != NULL) return UV_ENOTSUP;
  int fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return -errno;
  int r = uv_poll_init(loop, &R.poll, fd);
  if (r == 0) r = uv_poll_start(&R.poll, UV_READABLE, on_reactor);
  if (r != 0) {
    close(fd);
    return r;
  }
  uv_unref((uv_handle_t *)&R.poll);
  R.loop = loop;
  R.epfd = fd;
  R.watched = 0;
  napi_add_env_cleanup_hook(env, reactor_cleanup, NULL);
  return 0;
}

/* Places a fresh fd in side i (not watched yet). */
static void side_set_fd(pump *p, int i, int fd, int solo) {
  side *s = &p->s[i];
  s->p = p;
  s->idx = i;
  s->fd = fd;
  s->solo = solo;
  s->gen++;
  s->reg = -1;
  s->want = 0;
}

/* Wants `want` (EPOLLIN/EPOLLOUT) on side s: widening registers at once, narrowing waits for an unwanted event. */
static int side_watch(side *s, int want) {
  s->want = want;
  if (s->fd < 0) return 0;
  if (s->reg < 0 ? want == 0 : (want & ~s->reg) == 0) return 0;
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = (uint32_t)want;
  ev.data.u64 = side_tag(s);
  if (epoll_ctl(R.epfd, s->reg < 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, s->fd, &ev) < 0) return -errno;
  if (s->reg < 0) reactor_watched(1);
  s->reg = want;
  return 0;
}

/* An event arrived that side s no longer wants: narrow to what it wants (out of the set when nothing, as a
 * level-triggered hang-up would otherwise repeat on every loop turn). */
static void side_narrow(side *s) {
  if (s->fd < 0 || s->reg < 0 || s->reg == s->want) return;
  if (s->want == 0) {
    struct epoll_event ev;
    epoll_ctl(R.epfd, EPOLL_CTL_DEL, s->fd, &ev);
    s->reg = -1;
    reactor_watched(-1);
    return;
  }
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = (uint32_t)s->want;
  ev.data.u64 = side_tag(s);
  if (epoll_ctl(R.epfd, EPOLL_CTL_MOD, s->fd, &ev) == 0) s->reg = s->want;
}

/* Out of the set before the fd is closed or handed on (an fd shared with others stays open: DEL it). */
static void side_unwatch(side *s, int closing) {
  if (s->reg < 0) return;
  if (!(closing && s->solo)) {
    struct epoll_event ev;
    epoll_ctl(R.epfd, EPOLL_CTL_DEL, s->fd, &ev);
  }
  s->reg = -1;
  s->want = 0;
  reactor_watched(-1);
}

static void fd_close(pump *p, int i, int reset) {
  side *s = &p->s[i];
  if (s->fd < 0) return;
  side_unwatch(s, 1);
  if (reset) {
    struct linger l = {1, 0};
    setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  close(s->fd);
  s->fd = -1;
}

static void drop_pend(side *s) {
  free(s->pend);
  s->pend = NULL;
  s->pend_len = s->pend_off = 0;
}

static void pipe_close(side *s) {
  if (s->pipe_r < 0) return;
  close(s->pipe_r);
  close(s->pipe_w);
  s->pipe_r = s->pipe_w = -1;
  s->pipe_len = 0;
}

/* Bytes waiting to be written to side d (its user-space buffer, then its pipe). */
static size_t queued(const side *d) { return d->pend_len + d->pipe_len; }

/* SNIGATE_SPLICE=0 keeps every flow on read/write (troubleshooting, A/B). */
static int g_splice = -1;

/*
 * A read filled the whole buffer: a bulk flow. Later bytes to d go through a pipe with splice(2); without a
 * pipe (EMFILE...) the flow stays on read/write.
 */
static void maybe_splice(side *d) {
  if (g_splice < 0) {
    const char *e = getenv("SNIGATE_SPLICE");
    g_splice = e == NULL || strcmp(e, "0") != 0;
  }
  if (!g_splice || d->nosplice || d->pipe_r >= 0 || d->pend_len > 0) return;
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return;
  fcntl(fds[1], F_SETPIPE_SZ, PIPESZ);
  d->pipe_r = fds[0];
  d->pipe_w = fds[1];
  d->pipe_len = 0;
}

/* Stops everything; owned fds are closed, `reset` (-1 none, 0/1 that side, 2 both) with an RST. */
static void stop(pump *p, int reset) {
  if (p->state == S_STOPPED) return;
  p->state = S_STOPPED;
  p->reading = 0;
  for (int i = 0; i < 2; i++) {
    if (p->owned) fd_close(p, i, reset == i || reset == 2);
    else side_unwatch(&p->s[i], 0);
    pipe_close(&p->s[i]);
  }
  if (p->owner != NULL) {
    napi_delete_reference(p->env, p->owner);
    p->owner = NULL;
  }
  if (p->timer != NULL) {
    uv_close((uv_handle_t *)p->timer, on_timer_closed);
    p->timer = NULL;
  }
  if (p->cb != NULL) {
    napi_delete_reference(p->env, p->cb);
    p->cb = NULL;
  }
}

/*
 * One callback scope per batch of events (a reactor wake, an accept loop): the calls into JS inside it are
 * plain function calls, and ticks and microtasks run once when the batch ends, instead of a MakeCallback
 * (async context switch, tick and microtask checkpoint) around every call. Main thread only, like R.
 */
static struct {
  napi_env env;
  napi_async_context ctx;
  napi_ref resource;
  napi_handle_scope hs;
  napi_callback_scope cs; /* NULL outside a batch, or when opening it failed (then MakeCallback per call) */
  int depth;
} B;

static void batch_cleanup(void *arg) {
  (void)arg;
  if (B.env == NULL) return;
  napi_async_destroy(B.env, B.ctx);
  napi_delete_reference(B.env, B.resource);
  B.env = NULL;
}

static void batch_open(napi_env env) {
  (void)env;
  if (B.depth++ > 0) return;
  B.cs = NULL;
  B.hs = NULL;
}

/*
 * Opened on a batch's first call into JS, not with the batch: with the fast path most batches never call JS,
 * and a callback scope costs ~1-2 us (async context, hooks) even when nothing runs in it. Called before any
 * other handle scope is opened (emit, give_js, fast_flush): handle scopes close in the reverse order.
 */
static void batch_scope(napi_env env) {
  if (B.depth == 0 || B.hs != NULL) return;
  if (napi_open_handle_scope(env, &B.hs) != napi_ok) {
    B.hs = NULL;
    return;
  }
  napi_value res, name;
  if (B.env == NULL) {
    if (napi_create_object(env, &res) != napi_ok ||
        napi_create_string_utf8(env, "snigate.pump", NAPI_AUTO_LENGTH, &name) != napi_ok ||
        napi_async_init(env, res, name, &B.ctx) != napi_ok)
      return;
    napi_create_reference(env, res, 1, &B.resource);
    B.env = env;
    napi_add_env_cleanup_hook(env, batch_cleanup, NULL);
  }
  if (B.env != env || napi_get_reference_value(env, B.resource, &res) != napi_ok ||
      napi_open_callback_scope(env, res, B.ctx, &B.cs) != napi_ok)
    B.cs = NULL;
}

static void batch_close(napi_env env) {
  /* Fast records of the batch go to JS in one call, inside the batch's callback scope. */
  if (B.depth == 1 && g_nrec > 0) fast_flush(env);
  if (--B.depth > 0) return;
  if (B.hs == NULL) return;
  if (B.cs != NULL) napi_close_callback_scope(env, B.cs);
  B.cs = NULL;
  if (B.hs != NULL) napi_close_handle_scope(env, B.hs);
  B.hs = NULL;
}

/*
 * Calls a JS function from a libuv callback: a plain call inside a batch, else MakeCallback (which runs ticks
 * and microtasks after it). A throw is an uncaught exception, as from any other event; `stop_first` (if set)
 * is stopped before it is raised. Returns 0, or -1 when the callback threw.
 */
static int call_js(napi_env env, napi_value cb, napi_value recv, size_t argc, napi_value *argv, napi_value *result,
                   pump *stop_first) {
  if (cb == NULL) return 0;
  napi_status st = B.cs != NULL && B.env == env ? napi_call_function(env, recv, cb, argc, argv, result)
                                                : napi_make_callback(env, NULL, recv, cb, argc, argv, result);
  if (st != napi_pending_exception) return 0;
  napi_value ex;
  napi_get_and_clear_last_exception(env, &ex);
  if (stop_first != NULL) stop(stop_first, -1);
  napi_fatal_exception(env, ex);
  return -1;
}

/*
 * Calls cb(kind, side, err[, data]) (accepted: the listener's onEvent with the owner as `this`).
 * `final`: stop first (with `reset`), the callback is the last one.
 */
static void emit(pump *p, int kind, int sidei, int err, int final, int reset) {
  if (p->ft != NULL) {
    fast_event(p, kind, sidei, err, final, reset);
    return;
  }
  napi_env env = p->env;
  batch_scope(env);
  napi_handle_scope scope;
  napi_value cb = NULL, recv = NULL, argv[3], result;
  napi_ref cbref = p->lst != NULL ? p->lst->on_event : p->cb;
  /* Stopped (cb released), or accepted and not owned yet: nobody to tell. */
  if (cbref == NULL || (p->lst != NULL && p->owner == NULL)) {
    if (final) stop(p, reset);
    return;
  }
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_get_reference_value(env, cbref, &cb);
  if (p->owner != NULL) napi_get_reference_value(env, p->owner, &recv);
  if (recv == NULL) napi_get_global(env, &recv);
  if (final) stop(p, reset);
  if (kind == K_DONE && p->first_eof >= 0) sidei = p->first_eof;
  napi_create_int32(env, kind, &argv[0]);
  napi_create_int32(env, sidei, &argv[1]);
  napi_create_int32(env, err, &argv[2]);
  call_js(env, cb, recv, 3, argv, &result, NULL);
  napi_close_handle_scope(env, scope);
}

/* An error on side i: in owned mode the other side is reset, as the JS pump does. */
static void fail(pump *p, int i, int err) { emit(p, K_ERROR, i, err, 1, p->owned ? 1 - i : -1); }

/* Returns 0, or -1 when registering failed (reported as an error on that side: stopped). */
static int update(pump *p) {
  if (p->state != S_PUMPING) return 0;
  for (int i = 0; i < 2; i++) {
    side *s = &p->s[i];
    side *o = &p->s[1 - i];
    int want = 0;
    if (!s->rd_eof && queued(o) == 0) want |= EPOLLIN;
    if (queued(s) > 0) want |= EPOLLOUT;
    int r = side_watch(s, want);
    if (r < 0) {
      fail(p, i, r);
      return -1;
    }
  }
  return 0;
}

/* Writes buf to side d; returns bytes written, or -errno on a hard error. */
static ssize_t write_some(side *d, const char *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(d->fd, buf + off, len - off, MSG_NOSIGNAL);
    if (n >= 0) {
      off += (size_t)n;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    return -errno;
  }
  return (ssize_t)off;
}

static int both_done(pump *p) {
  return p->s[0].rd_eof && p->s[1].rd_eof && p->s[0].wr_shut && p->s[1].wr_shut;
}

/* The source side i saw EOF and everything read from it was sent: FIN to the other side. */
static void shut(pump *p, int i) {
  side *d = &p->s[1 - i];
  if (d->wr_shut) return;
  d->wr_shut = 1;
  shutdown(d->fd, SHUT_WR);
}

/* Side i read EOF: FIN to the other side (nothing is queued for it: reads wait for the queue to drain). */
static int read_eof(pump *p, int i) {
  p->s[i].rd_eof = 1;
  shut(p, i);
  /* Owned: JS only needs to know which side ended first, and learns it with K_DONE (one call less). */
  if (!p->owned) emit(p, K_EOF, i, 0, 0, -1);
  else if (p->first_eof < 0) p->first_eof = i;
  if (p->state == S_STOPPED) return -1;
  if (both_done(p)) {
    emit(p, K_DONE, 0, 0, 1, -1);
    return -1;
  }
  return 0;
}

/*
 * Moves what is in d's pipe to d: 1 when the pipe is empty, 0 when d cannot take more now, -1 on an error
 * (failed: stopped).
 */
static int pipe_flush(pump *p, int j) {
  side *d = &p->s[j];
  while (d->pipe_len > 0) {
    ssize_t w = splice(d->pipe_r, NULL, d->fd, NULL, d->pipe_len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (w > 0) {
      d->pipe_len -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    fail(p, j, w < 0 ? -errno : UV_EPIPE);
    return -1;
  }
  return 1;
}

/* Bulk: source i to d through d's pipe. Returns as do_read; 1: splice cannot be used here (read/write instead). */
static int splice_read(pump *p, int i) {
  side *s = &p->s[i];
  side *d = &p->s[1 - i];
  /* 4 x 256 KiB per wake-up at most, about what 8 reads of 64 KiB move: other connections get their turn. */
  for (int k = 0; k < 4; k++) {
    ssize_t n = splice(s->fd, NULL, d->pipe_w, NULL, PIPESZ, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0) {
      if (errno == EINTR) continue;
      /* The pipe is empty when reading (reads wait for the queue to drain): EAGAIN is the socket's. */
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      if (errno == EINVAL || errno == ENOSYS) {
        pipe_close(d);
        d->nosplice = 1;
        return 1;
      }
      fail(p, i, -errno);
      return -1;
    }
    if (n == 0) return read_eof(p, i);
    p->bytes[i] += (double)n;
    p->last = uv_now(p->loop);
    d->pipe_len = (size_t)n;
    int r = pipe_flush(p, 1 - i);
    if (r <= 0) return r < 0 ? -1 : 0;
    if ((size_t)n < PIPESZ) return 0;
  }
  return 0;
}

/* Returns 0 to go on, -1 when the pump stopped (error or done emitted). */
static int do_read(pump *p, int i) {
  side *s = &p->s[i];
  side *d = &p->s[1 - i];
  if (d->pipe_r >= 0) {
    int r = splice_read(p, i);
    if (r <= 0) return r;
  }
  for (int k = 0; k < MAX_READS; k++) {
    ssize_t n = read(s->fd, g_buf, BUFSZ);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      fail(p, i, -errno);
      return -1;
    }
    if (n == 0) return read_eof(p, i);
    p->bytes[i] += (double)n;
    p->last = uv_now(p->loop);
    ssize_t w = write_some(d, g_buf, (size_t)n);
    if (w < 0) {
      fail(p, 1 - i, (int)w);
      return -1;
    }
    if ((size_t)w < (size_t)n) {
      size_t rest = (size_t)n - (size_t)w;
      d->pend = (char *)malloc(rest);
      if (d->pend == NULL) {
        fail(p, 1 - i, UV_ENOMEM);
        return -1;
      }
      memcpy(d->pend, g_buf + w, rest);
      d->pend_len = rest;
      d->pend_off = 0;
      return 0;
    }
    if ((size_t)n < BUFSZ) return 0;
    /* A full buffer: a bulk flow, whose next bytes go through a pipe. */
    maybe_splice(d);
    if (d->pipe_r >= 0) {
      int r = splice_read(p, i);
      if (r <= 0) return r;
    }
  }
  return 0;
}

static int do_write(pump *p, int j) {
  side *d = &p->s[j];
  if (queued(d) == 0) return 0;
  if (d->pend_len > 0) {
    ssize_t w = write_some(d, d->pend + d->pend_off, d->pend_len - d->pend_off);
    if (w < 0) {
      fail(p, j, (int)w);
      return -1;
    }
    d->pend_off += (size_t)w;
    if (d->pend_off < d->pend_len) return 0;
    drop_pend(d);
  }
  int r = pipe_flush(p, j);
  if (r <= 0) return r;
  /* The source of this data (the other side) may have ended meanwhile. */
  if (p->s[1 - j].rd_eof) {
    shut(p, 1 - j);
    if (both_done(p)) {
      emit(p, K_DONE, 0, 0, 1, -1);
      return -1;
    }
  }
  return 0;
}


/* libuv reports any POLLERR as UV_EBADF: the socket's pending error says what really happened. */
static int sock_error(int fd, int status) {
  int soerr = 0;
  socklen_t len = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) return -errno;
  return soerr != 0 ? -soerr : status;
}

/* Reads the client before connect into the shared buffer: bytes read, 0 at EOF, or -errno (-EAGAIN: none yet). */
static ssize_t read_client(pump *p) {
  for (;;) {
    ssize_t n = read(p->s[0].fd, g_buf, BUFSZ);
    if (n >= 0) {
      p->bytes[0] += (double)n;
      return n;
    }
    if (errno != EINTR) return -errno;
  }
}

/*
 * Accepted, before connect: one read delivered to JS (a ClientHello usually fits in one). Returns 1 when the
 * socket was read dry: its readable event is used up, and JS connecting meanwhile (no longer wanting to read
 * the client) needs no narrowing of its interest.
 */
static int read_open(pump *p, uint32_t ev) {
  side *s = &p->s[0];
  if (ev & EPOLLERR) {
    emit(p, K_ERROR, 0, sock_error(s->fd, UV_EBADF), 1, -1);
    return 0;
  }
  ssize_t n = read_client(p);
  if (n == -EAGAIN || n == -EWOULDBLOCK) return 1;
  if (n < 0) {
    emit(p, K_ERROR, 0, (int)n, 1, -1);
    return 0;
  }
  if (n == 0) {
    /* EOF before routing: JS closes. Stop reading so a level-triggered EOF does not repeat. */
    p->reading = 0;
    s->want = 0;
    side_narrow(s);
    emit(p, K_EOF, 0, 0, 0, -1);
    return 0;
  }
  /* The bytes are at the start of the shared read buffer (JS's view of it: buffer()), valid during the call. */
  emit(p, K_DATA, 0, (int)n, 0, -1);
  return n < BUFSZ;
}

/* Owned mode: one backend attempt failed; its fd is closed, the client stays for another attempt. */
static void connect_failed(pump *p, int err) {
  if (p->timer != NULL) uv_timer_stop(p->timer);
  fd_close(p, 1, 0);
  drop_pend(&p->s[1]);
  pipe_close(&p->s[1]);
  p->state = S_OPEN;
  emit(p, K_CONNECT_FAILED, 1, err, 0, -1);
}

static void on_timer(uv_timer_t *t) {
  pump *p = (pump *)t->data;
  p->refs++;
  if (p->state == S_OPEN && p->fast_wait) {
    fast_to_js(p); /* no ClientHello in time: JS times it out at once, with its reasons */
  } else if (p->state == S_OPEN && p->reading) {
    emit(p, K_READ_TIMEOUT, 0, UV_ETIMEDOUT, 0, -1);
  } else if (p->state == S_CONNECTING) {
    connect_failed(p, UV_ETIMEDOUT);
  } else if (p->state == S_PUMPING && p->idle_ms > 0) {
    uint64_t quiet = uv_now(p->loop) - p->last;
    if (quiet >= p->idle_ms) emit(p, K_IDLE, 0, 0, 1, -1);
    else uv_timer_start(p->timer, on_timer, p->idle_ms - quiet, 0);
  }
  unref(p);
}

/* The backend socket became writable or failed while connecting (writable without an error: connected, no
 * getsockopt needed). */
static void connect_done(pump *p, uint32_t ev) {
  int err = ev & (EPOLLERR | EPOLLHUP) ? sock_error(p->s[1].fd, UV_ECONNREFUSED) : 0;
  if (err != 0) {
    connect_failed(p, err);
    return;
  }
  p->state = S_PUMPING;
  p->last = uv_now(p->loop);
  if (p->timer != NULL) {
    if (p->idle_ms > 0) uv_timer_start(p->timer, on_timer, p->idle_ms, 0);
    else {
      /* Nothing left to time: an idle connection keeps no timer. */
      uv_close((uv_handle_t *)p->timer, on_timer_closed);
      p->timer = NULL;
    }
  }
  free(p->head);
  p->head = NULL;
  p->head_len = 0;
  if (!p->quiet || g_shared[0] != p->quiet_epoch) {
    emit(p, K_CONNECTED, 1, 0, 0, -1);
    if (p->state != S_PUMPING) return;
  }
  if (do_write(p, 1) < 0) return;
  update(p);
}

static void pumping_event(pump *p, int i, uint32_t ev) {
  side *s = &p->s[i];
  if (ev & EPOLLERR) {
    fail(p, i, sock_error(s->fd, UV_EBADF));
    return;
  }
  if ((ev & EPOLLOUT) && (s->want & EPOLLOUT) && do_write(p, i) < 0) return;
  if ((ev & (EPOLLIN | EPOLLHUP)) && (s->want & EPOLLIN) && !s->rd_eof && queued(&p->s[1 - i]) == 0 &&
      do_read(p, i) < 0)
    return;
  update(p);
}

static void on_side_event(side *s, uint32_t ev) {
  pump *p = s->p;
  int i = s->idx;
  unsigned gen = s->gen;
  if (p->state == S_OPEN && i == 0 && p->fast_wait) {
    if (fast_readable(p)) ev &= ~(uint32_t)EPOLLIN;
  } else if (p->state == S_OPEN && i == 0 && p->reading) {
    if (read_open(p, ev)) ev &= ~(uint32_t)EPOLLIN;
  }
  else if (p->state == S_CONNECTING && i == 1) connect_done(p, ev);
  else if (p->state == S_PUMPING) pumping_event(p, i, ev);
  /* Still the same fd, and it reported something it does not want (level-triggered: it would repeat). */
  if (s->gen == gen && s->fd >= 0 &&
      ((ev & (EPOLLIN | EPOLLOUT) & ~(uint32_t)s->want) || (s->want == 0 && (ev & (EPOLLHUP | EPOLLERR)))))
    s->narrow = 1;
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  pump *p = (pump *)data;
  stop(p, -1);
  unref(p);
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static napi_value int_value(napi_env env, int v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

/* A pump with no fds yet; NULL when out of memory or the epoll set cannot be made (*err says why). */
static pump *alloc_pump(napi_env env, int owned, int *err) {
  uv_loop_t *loop;
  *err = UV_ENOMEM;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  if ((*err = reactor_init(env, loop)) != 0) return NULL;
  *err = UV_ENOMEM;
  pump *p = (pump *)calloc(1, sizeof(pump));
  if (p == NULL) return NULL;
  p->env = env;
  p->loop = loop;
  p->refs = 1;
  p->owned = owned;
  p->first_eof = -1;
  for (int i = 0; i < 2; i++) {
    p->s[i].p = p;
    p->s[i].idx = i;
    p->s[i].fd = -1;
    p->s[i].reg = -1;
    p->s[i].pipe_r = p->s[i].pipe_w = -1;
  }
  return p;
}

static pump *new_pump(napi_env env, napi_value cb, int owned, int *err) {
  pump *p = alloc_pump(env, owned, err);
  if (p != NULL) napi_create_reference(env, cb, 1, &p->cb);
  return p;
}

static napi_value wrap(napi_env env, pump *p) {
  napi_value out;
  napi_create_external(env, p, finalize, NULL, &out);
  return out;
}

static int is_function(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && t == napi_function;
}

static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd0, fd1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) return throw_type(env, "start(fdClient, fdBackend, cb)");
  if (napi_get_value_int32(env, argv[0], &fd0) != napi_ok || napi_get_value_int32(env, argv[1], &fd1) != napi_ok)
    return throw_type(env, "fds must be numbers");
  if (!is_function(env, argv[2])) return throw_type(env, "cb must be a function");
  int err;
  pump *p = new_pump(env, argv[2], 0, &err);
  if (p == NULL) return int_value(env, err);
  side_set_fd(p, 0, fd0, 0);
  side_set_fd(p, 1, fd1, 0);
  p->state = S_PUMPING;
  for (int i = 0; i < 2; i++) {
    int r = side_watch(&p->s[i], EPOLLIN);
    if (r != 0) {
      stop(p, -1);
      unref(p);
      return int_value(env, r);
    }
  }
  return wrap(env, p);
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) return throw_type(env, "open(fdClient, cb)");
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok) return throw_type(env, "fd must be a number");
  if (!is_function(env, argv[1])) return throw_type(env, "cb must be a function");
  int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dupfd < 0) return int_value(env, -errno);
  int err;
  pump *p = new_pump(env, argv[1], 1, &err);
  if (p == NULL) {
    close(dupfd);
    return int_value(env, err);
  }
  /* Not solo: Node's fd shares the socket until the caller destroys it. */
  side_set_fd(p, 0, dupfd, 0);
  p->state = S_OPEN;
  return wrap(env, p);
}

static pump *get(napi_env env, napi_callback_info info, napi_value *argv, size_t *argc) {
  void *data = NULL;
  napi_get_cb_info(env, info, argc, argv, NULL, NULL);
  if (*argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, NULL, "not a pump handle");
    return NULL;
  }
  return (pump *)data;
}

/* A non-blocking TCP socket for an IP literal and its address; -errno (UV_EINVAL: not an IP literal). */
static int ip_socket(const char *ip, int port, struct sockaddr_storage *sa, socklen_t *salen) {
  memset(sa, 0, sizeof *sa);
  if (uv_ip4_addr(ip, port, (struct sockaddr_in *)sa) == 0) *salen = sizeof(struct sockaddr_in);
  else if (uv_ip6_addr(ip, port, (struct sockaddr_in6 *)sa) == 0) *salen = sizeof(struct sockaddr_in6);
  else return UV_EINVAL;
  int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  return fd < 0 ? -errno : fd;
}

static int ensure_timer(pump *p) {
  if (p->timer != NULL) return 0;
  p->timer = (uv_timer_t *)malloc(sizeof(uv_timer_t));
  if (p->timer == NULL) return UV_ENOMEM;
  uv_timer_init(p->loop, p->timer);
  p->timer->data = p;
  p->refs++;
  return 0;
}

static napi_value js_connect(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  char ip[64];
  size_t iplen = 0;
  int32_t port;
  double timeout_ms, idle_ms;
  void *prefix = NULL, *head = NULL;
  size_t prefix_len = 0, head_len = 0;
  pump *p = get(env, info, argv, &argc);
  if (p == NULL) return NULL;
  if (argc < 7) return throw_type(env, "connect(h, ip, port, timeoutMs, idleMs, prefix, head[, quietEpoch])");
  if (!p->owned || p->state != S_OPEN) return int_value(env, UV_EINVAL);
  if (ensure_timer(p) != 0) return int_value(env, UV_ENOMEM);
  /* The client is read by the pump from now on (its interest is narrowed lazily: usually nothing comes). */
  p->reading = 0;
  p->s[0].want = 0;
  if (napi_get_value_string_utf8(env, argv[1], ip, sizeof ip, &iplen) != napi_ok ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok ||
      napi_get_value_double(env, argv[3], &timeout_ms) != napi_ok ||
      napi_get_value_double(env, argv[4], &idle_ms) != napi_ok ||
      napi_get_buffer_info(env, argv[5], &prefix, &prefix_len) != napi_ok ||
      napi_get_buffer_info(env, argv[6], &head, &head_len) != napi_ok)
    return throw_type(env, "connect(h, ip, port, timeoutMs, idleMs, prefix: Buffer, head: Buffer)");
  /* A number: the failure epoch seen at connect (see g_shared); anything else: always report the connect. */
  p->quiet = argc > 7 && napi_get_value_int32(env, argv[7], &p->quiet_epoch) == napi_ok;
  /* Kept first, before anything can fail: later attempts pass an empty head and reuse this copy. */
  if (head_len > 0) {
    char *copy = (char *)malloc(head_len);
    if (copy == NULL) return int_value(env, UV_ENOMEM);
    memcpy(copy, head, head_len);
    free(p->head);
    p->head = copy;
    p->head_len = head_len;
  }
  struct sockaddr_storage sa;
  socklen_t salen;
  int fd = ip_socket(ip, port, &sa, &salen);
  if (fd < 0) return int_value(env, fd);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&sa, salen) < 0 && errno != EINPROGRESS) {
    int err = -errno;
    close(fd);
    return int_value(env, err);
  }
  side *b = &p->s[1];
  side_set_fd(p, 1, fd, 1);
  b->rd_eof = b->wr_shut = 0;
  int r = 0;
  size_t first = prefix_len + p->head_len;
  if (r == 0 && first > 0) {
    b->pend = (char *)malloc(first);
    if (b->pend == NULL) r = UV_ENOMEM;
    else {
      if (prefix_len > 0) memcpy(b->pend, prefix, prefix_len);
      if (p->head_len > 0) memcpy(b->pend + prefix_len, p->head, p->head_len);
      b->pend_len = first;
      b->pend_off = 0;
    }
  }
  if (r == 0) r = side_watch(b, EPOLLOUT);
  if (r != 0) {
    fd_close(p, 1, 0);
    drop_pend(b);
    return int_value(env, r);
  }
  p->idle_ms = idle_ms > 0 ? (uint64_t)idle_ms : 0;
  p->state = S_CONNECTING;
  if (timeout_ms > 0) uv_timer_start(p->timer, on_timer, (uint64_t)timeout_ms, 0);
  return int_value(env, 0);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  bool reset = false;
  pump *p = get(env, info, argv, &argc);
  if (p == NULL) return NULL;
  if (argc > 1) napi_get_value_bool(env, argv[1], &reset);
  stop(p, reset ? 2 : -1);
  return NULL;
}

static napi_value js_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  pump *p = get(env, info, argv, &argc);
  if (p != NULL) stop(p, -1);
  return NULL;
}

static napi_value js_bytes(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  int32_t i = 0;
  pump *p = get(env, info, argv, &argc);
  if (p == NULL) return NULL;
  if (argc > 1) napi_get_value_int32(env, argv[1], &i);
  napi_create_double(env, p->bytes[i == 1 ? 1 : 0], &out);
  return out;
}


/* ---- Accepting in C ---- */

static void on_listener_handle_closed(uv_handle_t *h) { listener_unref((listener *)h->data); }

static void on_listen_poll(uv_poll_t *h, int status, int events);

static void on_backoff(uv_timer_t *t) {
  listener *l = (listener *)t->data;
  if (!l->closed) uv_poll_start(&l->poll, UV_READABLE, on_listen_poll);
}

static void listener_error(listener *l, int err) {
  napi_env env = l->env;
  napi_handle_scope scope;
  napi_value cb, recv, argv[3], result;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_get_reference_value(env, l->on_event, &cb);
  napi_get_global(env, &recv);
  napi_create_int32(env, K_ACCEPT_ERROR, &argv[0]);
  napi_create_int32(env, 0, &argv[1]);
  napi_create_int32(env, err, &argv[2]);
  call_js(env, cb, recv, 3, argv, &result, NULL);
  napi_close_handle_scope(env, scope);
}

static void addr_name(const struct sockaddr_storage *ss, char *ip, size_t iplen, int *port) {
  ip[0] = '\0';
  *port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    uv_ip4_name(a, ip, iplen);
    *port = ntohs(a->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    uv_ip6_name(a, ip, iplen);
    *port = ntohs(a->sin6_port);
  }
}

/*
 * Hands an accepted connection to JS: onAccept(h, ip, port, waitedMs[, failedEndpoint, err]); the owner object
 * it returns receives the connection's events. `waited_ms`: how long C held it first (the fast path waiting for
 * the ClientHello); `failed`: the fast path's backend attempt that failed (its endpoint and -errno).
 */
static void give_js(pump *p, double waited_ms, const char *failed, int err) {
  listener *l = p->lst;
  napi_env env = p->env;
  char ip[INET6_ADDRSTRLEN + 8];
  int port;
  addr_name((const struct sockaddr_storage *)&p->peer, ip, sizeof ip, &port);
  batch_scope(env);
  napi_handle_scope scope;
  napi_value cb, recv, argv[6], result = NULL;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    stop(p, -1);
    unref(p);
    return;
  }
  size_t argc = 4;
  napi_create_external(env, p, finalize, NULL, &argv[0]);
  napi_create_string_utf8(env, ip, NAPI_AUTO_LENGTH, &argv[1]);
  napi_create_int32(env, port, &argv[2]);
  napi_create_double(env, waited_ms, &argv[3]);
  if (failed != NULL) {
    napi_create_string_utf8(env, failed, NAPI_AUTO_LENGTH, &argv[4]);
    napi_create_int32(env, err, &argv[5]);
    argc = 6;
  }
  napi_get_reference_value(env, l->on_accept, &cb);
  napi_get_global(env, &recv);
  if (call_js(env, cb, recv, argc, argv, &result, p) == 0 && p->state != S_STOPPED) {
    napi_valuetype t = napi_undefined;
    if (result != NULL) napi_typeof(env, result, &t);
    if (t == napi_object) napi_create_reference(env, result, 1, &p->owner);
    else stop(p, -1); /* nobody to tell: close it */
  }
  napi_close_handle_scope(env, scope);
}

static int fast_accept(listener *l, pump *p);

/* One accepted fd: the fast path takes it when it can (no JavaScript at all), else JS does. */
static void accepted(listener *l, int fd, const struct sockaddr_storage *ss, socklen_t sslen) {
  int one = 1, err;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  pump *p = alloc_pump(l->env, 1, &err);
  if (p == NULL) {
    close(fd);
    return;
  }
  p->lst = l;
  l->refs++;
  side_set_fd(p, 0, fd, 1);
  p->state = S_OPEN;
  p->route = p->ep = p->sni_key = -1;
  p->hello_ms = -1;
  memcpy(&p->peer, ss, sslen < sizeof p->peer ? sslen : sizeof p->peer);
  if (l->fast != NULL && fast_accept(l, p)) return;
  give_js(p, 0, NULL, 0);
}

/* ---- Fast path: a plain passthrough connection decided and carried in C, no JavaScript per connection ---- */
/*
 * A listener given a fast table (fastTable, from src/dataplane/fast-path.ts) reads each accepted connection's
 * first bytes and keeps them (p->head). When they hold a whole ClientHello that the
 * JavaScript reader would accept too (fastpath.c), its SNI maps to a fast route (a plain passthrough route
 * whose only backend has IP endpoints, no PROXY, no lifetime limit, no rate limits: JS decides which), and the
 * round-robin endpoint is clean in the shared health array, C connects and sends the ClientHello first once
 * connected. Anything else, and a backend attempt that fails, is handed to JS as an ordinary accepted
 * connection (readStart gives it the bytes read so far), which decides it with the full rules:
 * a failed attempt comes with its endpoint and error so that JS reports it and retries from there.
 * JS hears of fast connections through records, batched per event-loop batch: open (connected) and close
 * (the connection record's fields), which it turns into the same metrics, logs and health reports.
 */
typedef struct fast_ep {
  union {
    struct sockaddr sa;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
  } addr;
  socklen_t salen;
  int32_t health; /* slot in g_health (1: clean), -1: none, never fast */
} fast_ep;

typedef struct fast_route {
  uint32_t first, count, cursor;
  double connect_ms, idle_ms;
} fast_route;

typedef struct fast_table {
  int refs; /* 1 while installed on a listener, 1 per fast connection using it */
  double id;
  fp_hosts *hosts;
  int32_t catch_all; /* route for a name no key matches, -1: JS */
  size_t hello_max;
  double hello_timeout_ms;
  fast_route *routes;
  uint32_t n_routes;
  fast_ep *eps;
  uint32_t n_eps;
} fast_table;

enum { FAST_GO = 0, FAST_WAIT = 1, FAST_JS = 2, FAST_FAILED = 3 };
enum { REC_OPEN = 1, REC_CLOSE = 2, REC_TABLE_FREED = 3 };

/* Endpoint cleanliness written by JS (HealthRegistry): 1 = healthy with no failure counted. */
static uint8_t g_health[65536];
/* [0]: the last connection id handed out (JS's Connection ids come from the same counter). */
static double g_ids[2];

#define REC_STRIDE 20
#define REC_MAX 512
#define REC_STR_MAX 1100 /* client address + SNI + ALPN (at most 512) */
#define STR_MAX (REC_MAX * 640)
static double g_rec[REC_MAX * REC_STRIDE];
static char g_str[STR_MAX];
static int g_nrec;
static size_t g_nstr;
static int g_flushing;
static napi_ref g_on_records;
static uv_timer_t g_flush_timer;
static int g_flush_timer_on;
static napi_env g_rec_env;

/* v in decimal at out; returns the length. */
static size_t put_uint(char *out, unsigned v) {
  char digits[12];
  size_t d = 0, n = 0;
  do digits[d++] = (char)('0' + v % 10);
  while ((v /= 10) > 0);
  while (d > 0) out[n++] = digits[--d];
  return n;
}

/* "ip:port" or "[ip]:port" (hostPort / endpointKey) into out (room for 64); returns the length. */
static int host_port(const struct sockaddr_storage *ss, char *out) {
  size_t n = 0;
  int port;
  if (ss->ss_family == AF_INET) {
    /* By hand: libuv's formatter goes through snprintf, measurable once per connection. */
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    const uint8_t *b = (const uint8_t *)&a->sin_addr;
    for (int i = 0; i < 4; i++) {
      n += put_uint(out + n, b[i]);
      out[n++] = i < 3 ? '.' : ':';
    }
    port = ntohs(a->sin_port);
  } else {
    char ip[INET6_ADDRSTRLEN + 8];
    addr_name(ss, ip, sizeof ip, &port);
    size_t len = strlen(ip);
    if (len > 46) return 0;
    int v6 = ss->ss_family == AF_INET6;
    if (v6) out[n++] = '[';
    memcpy(out + n, ip, len);
    n += len;
    if (v6) out[n++] = ']';
    out[n++] = ':';
  }
  n += put_uint(out + n, (unsigned)port);
  out[n] = '\0';
  return (int)n;
}

static void on_flush_timer(uv_timer_t *t) {
  (void)t;
  if (g_rec_env == NULL) return;
  batch_open(g_rec_env);
  batch_close(g_rec_env); /* flushes */
}

/* Records made outside an event batch (a JS call, a timer) are flushed on the next loop turn. */
static void schedule_flush(void) {
  if (B.depth > 0 || R.loop == NULL) return;
  if (!g_flush_timer_on) {
    uv_timer_init(R.loop, &g_flush_timer);
    g_flush_timer_on = 1;
  }
  if (!uv_is_active((uv_handle_t *)&g_flush_timer)) uv_timer_start(&g_flush_timer, on_flush_timer, 0, 0);
}

/* Calls onRecords(n) for the records made so far; the ones made during the call are kept for the next round. */
static void fast_flush(napi_env env) {
  if (g_flushing) return;
  g_flushing = 1;
  batch_scope(env);
  while (g_nrec > 0) {
    int n = g_nrec;
    size_t ns = g_nstr;
    if (g_on_records != NULL) {
      napi_handle_scope scope;
      if (napi_open_handle_scope(env, &scope) == napi_ok) {
        napi_value cb, recv, argv[1], result;
        napi_get_reference_value(env, g_on_records, &cb);
        napi_get_global(env, &recv);
        napi_create_int32(env, n, &argv[0]);
        call_js(env, cb, recv, 1, argv, &result, NULL);
        napi_close_handle_scope(env, scope);
      }
    }
    int rest = g_nrec - n;
    if (rest > 0) {
      memmove(g_rec, g_rec + (size_t)n * REC_STRIDE, (size_t)rest * REC_STRIDE * sizeof(double));
      for (int k = 0; k < rest; k++) g_rec[k * REC_STRIDE + 12] -= (double)ns;
      memmove(g_str, g_str + ns, g_nstr - ns);
    }
    g_nrec = rest;
    g_nstr -= ns;
  }
  g_flushing = 0;
}

/* A free record slot (flushing first when full); NULL when none (full during a flush: dropped, counted). */
static double *rec_slot(napi_env env) {
  if (g_nrec >= REC_MAX || g_nstr + REC_STR_MAX > STR_MAX) fast_flush(env);
  if (g_nrec >= REC_MAX || g_nstr + REC_STR_MAX > STR_MAX) {
    g_shared[2]++;
    return NULL;
  }
  double *r = &g_rec[(size_t)g_nrec * REC_STRIDE];
  memset(r, 0, REC_STRIDE * sizeof(double));
  g_nrec++;
  schedule_flush();
  return r;
}

/*
 * Record layout (doubles): 0 type, 1 connection id, 2 table id, 3 route (-1), 4 endpoint (-1), 5 bytes from
 * the client, 6 bytes to it, 7 duration ms, 8 ClientHello ms (-1), 9 end (K_DONE, K_ERROR, K_IDLE, or the
 * code fastClose was given), 10 side, 11 -errno, 12 string offset, 13 client address length, 14 SNI length,
 * 15 ALPN list length, 16 opened (a close record whose open record was sent), 17 an endpoint failed somewhere
 * since this connection's endpoint was picked (clean then: JS need not look at its health otherwise), 18 the
 * fast table key equal to the SNI (-1: none; the SNI bytes are there either way).
 */
static void fast_record(pump *p, int type, int end, int sidei, int err) {
  double *r = rec_slot(p->env);
  if (r == NULL) return;
  r[0] = type;
  r[1] = p->conn_id;
  r[2] = p->ft != NULL ? p->ft->id : -1;
  r[3] = p->route;
  r[4] = p->ep;
  r[5] = p->bytes[0];
  r[6] = p->bytes[1];
  r[7] = (double)(uv_hrtime() - p->t0) / 1e6;
  r[8] = p->hello_ms;
  r[9] = end;
  r[10] = sidei;
  r[11] = err;
  r[12] = (double)g_nstr;
  r[16] = p->opened;
  r[17] = g_shared[0] != p->quiet_epoch;
  r[18] = p->sni_key;
  /* The client's address only on close records (open records do not use it). */
  int n = type == REC_CLOSE ? host_port((const struct sockaddr_storage *)&p->peer, g_str + g_nstr) : 0;
  g_nstr += (size_t)n;
  r[13] = n;
  if (p->info != NULL) {
    memcpy(g_str + g_nstr, p->info, (size_t)p->sni_len + p->alpn_len);
    g_nstr += (size_t)p->sni_len + p->alpn_len;
    r[14] = p->sni_len;
    r[15] = p->alpn_len;
  }
}

static void fast_table_unref(fast_table *t) {
  if (--t->refs > 0) return;
  if (g_rec_env != NULL) {
    double *r = rec_slot(g_rec_env);
    if (r != NULL) {
      r[0] = REC_TABLE_FREED;
      r[2] = t->id;
      r[12] = (double)g_nstr;
    }
  }
  fp_hosts_free(t->hosts);
  free(t->routes);
  free(t->eps);
  free(t);
}

/* Out of its listener's fast list; the table is dropped when `drop_table` (the connection goes to JS). */
static void fast_detach(pump *p, int drop_table) {
  listener *l = p->lst;
  if (p->fprev != NULL) p->fprev->fnext = p->fnext;
  else if (l->fast_list == p) l->fast_list = p->fnext;
  if (p->fnext != NULL) p->fnext->fprev = p->fprev;
  p->fnext = p->fprev = NULL;
  l->fast_live--;
  if (drop_table) {
    fast_table_unref(p->ft);
    p->ft = NULL;
    free(p->info);
    p->info = NULL;
    p->route = p->ep = p->sni_key = -1;
  }
}

/* The connection ended (stopped already): its close record, and C's hold on it is dropped. */
static void fast_end(pump *p, int end, int sidei, int err) {
  fast_detach(p, 0);
  if (p->conn_id == 0) p->conn_id = ++g_ids[0];
  fast_record(p, REC_CLOSE, end, sidei, err);
  unref(p);
}

static double since_accept_ms(const pump *p) { return (double)(uv_hrtime() - p->t0) / 1e6; }


/* The fast attempt at p->ep failed with err: JS takes the connection from here (report, retry or reject). */
static void fast_failed_to_js(pump *p, int err) {
  char key[64];
  host_port((const struct sockaddr_storage *)&p->ft->eps[p->ep].addr, key);
  double waited = since_accept_ms(p);
  fast_detach(p, 1);
  give_js(p, waited, key, err);
}

static void fast_to_js(pump *p) {
  double waited = since_accept_ms(p);
  p->fast_wait = 0;
  if (p->timer != NULL) uv_timer_stop(p->timer);
  fast_detach(p, 1);
  give_js(p, waited, NULL, 0);
}

/* Reads the client's first bytes and connects when the connection is a fast one (see the section head). */
static int fast_try(pump *p, int *fail_err) {
  fast_table *t = p->ft;
  /*
   * Read, not peeked (one syscall less per connection): the bytes are kept in p->head, which a connect sends
   * first and keeps for another attempt, and which readStart hands to JS if JS takes the connection.
   */
  ssize_t n = read_client(p);
  if (n == -EAGAIN || n == -EWOULDBLOCK) return FAST_WAIT;
  if (n < 0) {
    p->fast_err = (int)n;
    return FAST_JS;
  }
  if (n == 0) {
    p->fast_err = UV_EOF;
    return FAST_JS;
  }
  p->head = (char *)malloc((size_t)n);
  if (p->head == NULL) {
    p->fast_err = UV_ENOMEM;
    return FAST_JS;
  }
  memcpy(p->head, g_buf, (size_t)n);
  p->head_len = (size_t)n;
  fp_hello h;
  if (!fp_hello_parse((const uint8_t *)g_buf, (size_t)n, t->hello_max, &h) || h.alpn_len > 512) return FAST_JS;
  int32_t exact;
  int32_t ri = fp_hosts_lookup(t->hosts, h.sni, (size_t)h.sni_len, t->catch_all, &exact);
  if (ri < 0 || (uint32_t)ri >= t->n_routes) return FAST_JS;
  fast_route *r = &t->routes[ri];
  if (r->count == 0) return FAST_JS;
  uint32_t k = r->cursor % r->count;
  fast_ep *e = &t->eps[r->first + k];
  /* Not clean (failing, ejected, or unknown): JS's balancer skips or heals it by its own rules. */
  if (e->health < 0 || g_health[e->health] != 1) return FAST_JS;
  char *info = (char *)malloc((size_t)h.sni_len + h.alpn_len + 1);
  if (info == NULL) return FAST_JS;
  memcpy(info, h.sni, (size_t)h.sni_len);
  if (h.alpn_len > 0) memcpy(info + h.sni_len, g_buf + h.alpn_off, h.alpn_len);
  if (ensure_timer(p) != 0) {
    free(info);
    return FAST_JS;
  }
  r->cursor = k + 1;
  p->info = info;
  p->sni_len = (uint16_t)h.sni_len;
  p->alpn_len = (uint16_t)h.alpn_len;
  p->hello_ms = since_accept_ms(p);
  p->quiet_epoch = g_shared[0]; /* the open record says whether an endpoint failed since this pick */
  p->route = ri;
  p->sni_key = exact;
  p->ep = (int32_t)(r->first + k);
  p->fast_wait = 0;
  p->s[0].want = 0; /* nothing more is read until connected (a registered fd is narrowed lazily) */
  int fd = socket(e->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *fail_err = -errno;
    return FAST_FAILED;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, &e->addr.sa, e->salen) < 0 && errno != EINPROGRESS) {
    *fail_err = -errno;
    close(fd);
    return FAST_FAILED;
  }
  side *b = &p->s[1];
  side_set_fd(p, 1, fd, 1);
  b->rd_eof = b->wr_shut = 0;
  /* The ClientHello goes first once connected (p->head stays for another attempt, as js_connect keeps it). */
  b->pend = (char *)malloc(p->head_len);
  int rc = b->pend == NULL ? UV_ENOMEM : side_watch(b, EPOLLOUT);
  if (rc != 0) {
    fd_close(p, 1, 0);
    drop_pend(b);
    *fail_err = rc;
    return FAST_FAILED;
  }
  memcpy(b->pend, p->head, p->head_len);
  b->pend_len = p->head_len;
  b->pend_off = 0;
  p->idle_ms = r->idle_ms > 0 ? (uint64_t)r->idle_ms : 0;
  p->state = S_CONNECTING;
  if (r->connect_ms > 0) uv_timer_start(p->timer, on_timer, (uint64_t)r->connect_ms, 0);
  else uv_timer_stop(p->timer);
  return FAST_GO;
}

static int fast_accept(listener *l, pump *p) {
  fast_table *t = l->fast;
  p->ft = t;
  t->refs++;
  p->t0 = uv_hrtime();
  p->fnext = l->fast_list;
  if (l->fast_list != NULL) l->fast_list->fprev = p;
  l->fast_list = p;
  l->fast_live++;
  int err = 0;
  int r = fast_try(p, &err);
  if (r == FAST_GO) return 1;
  if (r == FAST_FAILED) {
    fast_failed_to_js(p, err);
    return 1;
  }
  if (r == FAST_WAIT && ensure_timer(p) == 0 && side_watch(&p->s[0], EPOLLIN) == 0) {
    p->fast_wait = 1;
    if (t->hello_timeout_ms > 0) uv_timer_start(p->timer, on_timer, (uint64_t)t->hello_timeout_ms, 0);
    return 1;
  }
  fast_detach(p, 1);
  return 0;
}

/* The waited-for client bytes arrived. Returns 1 when they were consumed (JS read them). */
static int fast_readable(pump *p) {
  int err = 0;
  int r = fast_try(p, &err);
  if (r == FAST_WAIT || r == FAST_GO) return 0;
  if (r == FAST_FAILED) {
    fast_failed_to_js(p, err);
    return 0;
  }
  fast_to_js(p);
  return 1;
}

static void fast_event(pump *p, int kind, int sidei, int err, int final, int reset) {
  if (kind == K_CONNECTED) {
    p->opened = 1;
    p->conn_id = ++g_ids[0];
    fast_record(p, REC_OPEN, 0, 0, 0);
    return;
  }
  if (kind == K_CONNECT_FAILED) {
    fast_failed_to_js(p, err);
    return;
  }
  if (!final) return;
  if (kind == K_DONE && p->first_eof >= 0) sidei = p->first_eof;
  stop(p, reset);
  fast_end(p, kind, sidei, err);
}

static void on_listen_poll(uv_poll_t *h, int status, int events) {
  (void)events;
  listener *l = (listener *)h->data;
  if (l->closed) return;
  if (status < 0) {
    listener_error(l, status);
    return;
  }
  l->refs++; /* JS may unlisten from a callback */
  napi_env env = l->env;
  batch_open(env);
  for (int k = 0; k < 64 && !l->closed; k++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      accepted(l, fd, &ss, len);
      continue;
    }
    int e = errno;
    if (e == EINTR || e == ECONNABORTED) continue;
    if (e == EAGAIN || e == EWOULDBLOCK) break;
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
      /* Out of fds: the pending connection stays queued; back off instead of spinning on it. */
      uv_poll_stop(&l->poll);
      uv_timer_start(&l->backoff, on_backoff, 100, 0);
    }
    listener_error(l, -e);
    break;
  }
  batch_close(env);
  listener_unref(l);
}

static void listener_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  listener_unref((listener *)data);
}

static napi_value js_listen(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], out;
  char ip[64];
  size_t iplen = 0;
  int32_t port;
  bool v6only = false;
  uv_loop_t *loop;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5 || napi_get_value_string_utf8(env, argv[0], ip, sizeof ip, &iplen) != napi_ok ||
      napi_get_value_int32(env, argv[1], &port) != napi_ok || napi_get_value_bool(env, argv[2], &v6only) != napi_ok ||
      !is_function(env, argv[3]) || !is_function(env, argv[4]))
    return throw_type(env, "listen(ip, port, ipv6Only, onAccept, onEvent)");
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_type(env, "no event loop");
  struct sockaddr_storage sa;
  socklen_t salen;
  int fd = ip_socket(ip, port, &sa, &salen);
  if (fd < 0) return int_value(env, fd);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (sa.ss_family == AF_INET6) {
    int v = v6only ? 1 : 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v);
  }
  if (bind(fd, (struct sockaddr *)&sa, salen) < 0 || listen(fd, 511) < 0) {
    int err = -errno;
    close(fd);
    return int_value(env, err);
  }
  listener *l = (listener *)calloc(1, sizeof(listener));
  if (l == NULL) {
    close(fd);
    return int_value(env, UV_ENOMEM);
  }
  l->fd = fd;
  l->env = env;
  l->refs = 1;
  int r = uv_poll_init_socket(loop, &l->poll, fd);
  if (r != 0) {
    close(fd);
    free(l);
    return int_value(env, r);
  }
  l->poll.data = l;
  uv_timer_init(loop, &l->backoff);
  l->backoff.data = l;
  l->refs += 2;
  napi_create_reference(env, argv[3], 1, &l->on_accept);
  napi_create_reference(env, argv[4], 1, &l->on_event);
  uv_poll_start(&l->poll, UV_READABLE, on_listen_poll);
  /* One more for the JS handle: the listener outlives unlisten while JS can still pass it (fastCount...). */
  l->refs++;
  napi_create_external(env, l, listener_finalize, NULL, &out);
  return out;
}

static listener *get_listener(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, NULL, "not a listener handle");
    return NULL;
  }
  return (listener *)data;
}

static napi_value js_listen_port(napi_env env, napi_callback_info info) {
  listener *l = get_listener(env, info);
  if (l == NULL) return NULL;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char ip[INET6_ADDRSTRLEN + 8];
  int port = 0;
  if (!l->closed && getsockname(l->fd, (struct sockaddr *)&ss, &len) == 0) addr_name(&ss, ip, sizeof ip, &port);
  return int_value(env, port);
}

/* Stops accepting; the listener struct lives on while its JS handle or a connection it accepted does. */
static napi_value js_unlisten(napi_env env, napi_callback_info info) {
  listener *l = get_listener(env, info);
  if (l == NULL || l->closed) return NULL;
  l->closed = 1;
  if (l->fast != NULL) {
    fast_table_unref(l->fast);
    l->fast = NULL;
  }
  uv_close((uv_handle_t *)&l->poll, on_listener_handle_closed);
  uv_close((uv_handle_t *)&l->backoff, on_listener_handle_closed);
  close(l->fd);
  l->fd = -1;
  listener_unref(l);
  return NULL;
}

static napi_value js_read_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  double timeout_ms = 0;
  pump *p = get(env, info, argv, &argc);
  if (p == NULL) return NULL;
  if (argc > 1) napi_get_value_double(env, argv[1], &timeout_ms);
  if (p->state != S_OPEN || p->s[0].fd < 0) return int_value(env, UV_EINVAL);
  if (p->fast_err != 0) {
    int e = p->fast_err;
    p->fast_err = 0;
    return int_value(env, e);
  }
  if (timeout_ms > 0) {
    if (ensure_timer(p) != 0) return int_value(env, UV_ENOMEM);
    uv_timer_start(p->timer, on_timer, (uint64_t)timeout_ms, 0);
  }
  p->reading = 1;
  int r = side_watch(&p->s[0], EPOLLIN);
  if (r != 0) return int_value(env, r);
  /* Bytes the fast path read before giving the connection to JS come first. */
  if (p->head != NULL && p->head_len > 0 && p->head_len <= BUFSZ) {
    int n = (int)p->head_len;
    memcpy(g_buf, p->head, p->head_len);
    free(p->head);
    p->head = NULL;
    p->head_len = 0;
    return int_value(env, n);
  }
  /*
   * The ClientHello is usually there already (the client sends it with the handshake's last ACK): read it
   * now, which spares a loop turn and a call into JS per connection.
   */
  ssize_t n = read_client(p);
  if (n == -EAGAIN || n == -EWOULDBLOCK) return int_value(env, 0);
  if (n <= 0) {
    p->reading = 0;
    p->s[0].want = 0;
    return int_value(env, n == 0 ? UV_EOF : (int)n);
  }
  return int_value(env, (int)n);
}

static napi_value js_read_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  pump *p = get(env, info, argv, &argc);
  if (p == NULL) return NULL;
  if (p->state == S_OPEN && p->s[0].fd >= 0) {
    p->reading = 0;
    p->s[0].want = 0; /* narrowed if the client sends more before connect */
    if (p->timer != NULL) uv_timer_stop(p->timer);
  }
  return NULL;
}

static napi_value js_write(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *buf;
  size_t len;
  pump *p = get(env, info, argv, &argc);
  if (p == NULL) return NULL;
  if (argc < 2 || napi_get_buffer_info(env, argv[1], &buf, &len) != napi_ok) return throw_type(env, "write(h, buf)");
  if (p->state != S_OPEN || p->s[0].fd < 0) return int_value(env, UV_EINVAL);
  ssize_t w = write_some(&p->s[0], (const char *)buf, len);
  if (w < 0) return int_value(env, (int)w);
  if ((size_t)w < len) return int_value(env, UV_EAGAIN);
  return int_value(env, (int)w);
}

/* Gives the client fd to the caller (who wraps it in a net.Socket): out of the epoll set, no more events. */
static napi_value js_release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  pump *p = get(env, info, argv, &argc);
  if (p == NULL) return NULL;
  if (!p->owned || p->state != S_OPEN || p->s[0].fd < 0 || p->s[1].fd >= 0) return int_value(env, UV_EINVAL);
  int fd = p->s[0].fd;
  side_unwatch(&p->s[0], 0); /* out of the pump's epoll set before Node registers it */
  p->s[0].fd = -1;
  stop(p, -1);
  return int_value(env, fd);
}

/* JS's views of the shared read buffer (where K_DATA and readStart bytes are) and of g_shared: made once. */
static napi_value js_buffer(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  if (napi_create_external_buffer(env, BUFSZ, g_buf, NULL, NULL, &out) != napi_ok) return NULL;
  return out;
}

static napi_value js_shared(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value ab, out;
  if (napi_create_external_arraybuffer(env, g_shared, sizeof g_shared, NULL, NULL, &ab) != napi_ok) return NULL;
  if (napi_create_typedarray(env, napi_int32_array, sizeof g_shared / sizeof g_shared[0], ab, 0, &out) != napi_ok)
    return NULL;
  return out;
}

static napi_value js_local_address(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  pump *p = get(env, info, argv, &argc);
  if (p == NULL) return NULL;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char ip[INET6_ADDRSTRLEN + 8];
  int port = 0;
  ip[0] = '\0';
  if (p->s[0].fd >= 0 && getsockname(p->s[0].fd, (struct sockaddr *)&ss, &len) == 0)
    addr_name(&ss, ip, sizeof ip, &port);
  napi_create_object(env, &out);
  napi_create_string_utf8(env, ip, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, out, "address", v);
  napi_create_int32(env, port, &v);
  napi_set_named_property(env, out, "port", v);
  return out;
}


/* ---- Fast path: JS's side ---- */

/* fastSetup(onRecords) -> { records: Float64Array, strings: Buffer, ids: Float64Array, health: Uint8Array } */
static napi_value js_fast_setup(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, ab, v;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !is_function(env, argv[0])) return throw_type(env, "fastSetup(onRecords)");
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || reactor_init(env, loop) != 0) return NULL;
  if (g_on_records != NULL) napi_delete_reference(env, g_on_records);
  napi_create_reference(env, argv[0], 1, &g_on_records);
  g_rec_env = env;
  napi_create_object(env, &out);
  napi_create_external_arraybuffer(env, g_rec, sizeof g_rec, NULL, NULL, &ab);
  napi_create_typedarray(env, napi_float64_array, sizeof g_rec / sizeof(double), ab, 0, &v);
  napi_set_named_property(env, out, "records", v);
  napi_create_external_buffer(env, STR_MAX, g_str, NULL, NULL, &v);
  napi_set_named_property(env, out, "strings", v);
  napi_create_external_arraybuffer(env, g_ids, sizeof g_ids, NULL, NULL, &ab);
  napi_create_typedarray(env, napi_float64_array, 2, ab, 0, &v);
  napi_set_named_property(env, out, "ids", v);
  napi_create_external_arraybuffer(env, g_health, sizeof g_health, NULL, NULL, &ab);
  napi_create_typedarray(env, napi_uint8_array, sizeof g_health, ab, 0, &v);
  napi_set_named_property(env, out, "health", v);
  return out;
}

static int prop(napi_env env, napi_value o, const char *name, napi_value *v) {
  bool has = false;
  return napi_has_named_property(env, o, name, &has) == napi_ok && has &&
         napi_get_named_property(env, o, name, v) == napi_ok;
}

static int prop_double(napi_env env, napi_value o, const char *name, double *out) {
  napi_value v;
  return prop(env, o, name, &v) && napi_get_value_double(env, v, out) == napi_ok;
}

/* A typed array's data and element count, when it is one of type `want`. */
static int typed_array(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  napi_value ab;
  napi_typedarray_type type;
  size_t off;
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  if (napi_get_typedarray_info(env, v, &type, len, data, &ab, &off) != napi_ok) return 0;
  return type == want;
}

static int prop_array(napi_env env, napi_value o, const char *name, napi_typedarray_type want, void **data,
                      size_t *len) {
  napi_value v;
  return prop(env, o, name, &v) && typed_array(env, v, want, data, len);
}

/* A string copied out (latin1; NUL separators survive); the caller frees it. NULL: not a string, no memory. */
static char *string_copy(napi_env env, napi_value v, size_t *len) {
  if (napi_get_value_string_latin1(env, v, NULL, 0, len) != napi_ok) return NULL;
  char *s = (char *)malloc(*len + 1);
  if (s != NULL && napi_get_value_string_latin1(env, v, s, *len + 1, len) != napi_ok) {
    free(s);
    return NULL;
  }
  return s;
}

static char *prop_string(napi_env env, napi_value o, const char *name, size_t *len) {
  napi_value v;
  return prop(env, o, name, &v) ? string_copy(env, v, len) : NULL;
}

/*
 * fastTable(l, spec | null): the fast routes for the listener's next connections (null: none, all go to JS).
 * spec: { id, keys: NUL-joined names, values: Int32Array (route per key, -1: JS), catchAll, helloMax,
 * helloTimeoutMs, routes: Float64Array (first endpoint, count, connect ms, idle ms per route),
 * epIps: NUL-joined IP literals, epPorts: Int32Array, epHealth: Int32Array (g_health slot, -1 none) }.
 * The previous table is dropped first: whatever goes wrong after, the listener has none (JS takes everything).
 * Returns 0, or -errno (UV_ENOMEM; UV_EINVAL: an endpoint that is not an IP literal, a route out of range);
 * throws on a spec of the wrong shape.
 */
static napi_value js_fast_table(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *data = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || napi_get_value_external(env, argv[0], &data) != napi_ok)
    return throw_type(env, "fastTable(listener, spec | null)");
  listener *l = (listener *)data;
  napi_valuetype st;
  napi_typeof(env, argv[1], &st);
  fast_table *old = l->fast;
  l->fast = NULL;
  if (old != NULL) fast_table_unref(old);
  if (st != napi_object || l->closed) return int_value(env, 0);
  napi_value spec = argv[1];
  double id, catch_all, hello_max, hello_timeout;
  int32_t *values, *ports, *health;
  double *routes;
  size_t nvalues, nroutes, nports, nhealth, keys_len = 0, ips_len = 0;
  if (!prop_double(env, spec, "id", &id) || !prop_double(env, spec, "catchAll", &catch_all) ||
      !prop_double(env, spec, "helloMax", &hello_max) ||
      !prop_double(env, spec, "helloTimeoutMs", &hello_timeout) ||
      !prop_array(env, spec, "values", napi_int32_array, (void **)&values, &nvalues) ||
      !prop_array(env, spec, "routes", napi_float64_array, (void **)&routes, &nroutes) ||
      !prop_array(env, spec, "epPorts", napi_int32_array, (void **)&ports, &nports) ||
      !prop_array(env, spec, "epHealth", napi_int32_array, (void **)&health, &nhealth) || nroutes % 4 != 0 ||
      nports != nhealth)
    return throw_type(env, "fastTable: bad spec");
  char *keys = prop_string(env, spec, "keys", &keys_len);
  char *ips = prop_string(env, spec, "epIps", &ips_len);
  fast_table *t = (fast_table *)calloc(1, sizeof *t);
  int err = UV_ENOMEM;
  if (keys == NULL || ips == NULL || t == NULL) goto fail;
  t->refs = 1;
  t->id = id;
  t->catch_all = (int32_t)catch_all;
  t->hello_max = hello_max > 0 ? (size_t)hello_max : 0;
  t->hello_timeout_ms = hello_timeout;
  t->n_routes = (uint32_t)(nroutes / 4);
  t->n_eps = (uint32_t)nports;
  t->routes = (fast_route *)calloc(t->n_routes + 1, sizeof(fast_route));
  t->eps = (fast_ep *)calloc(t->n_eps + 1, sizeof(fast_ep));
  t->hosts = fp_hosts_new(keys, keys_len, values, (uint32_t)nvalues);
  if (t->routes == NULL || t->eps == NULL || t->hosts == NULL) goto fail;
  err = UV_EINVAL;
  for (uint32_t i = 0; i < t->n_routes; i++) {
    fast_route *r = &t->routes[i];
    double first = routes[i * 4], count = routes[i * 4 + 1];
    if (first < 0 || count < 0 || first + count > t->n_eps) goto fail;
    r->first = (uint32_t)first;
    r->count = (uint32_t)count;
    r->connect_ms = routes[i * 4 + 2];
    r->idle_ms = routes[i * 4 + 3];
  }
  const char *ip = ips;
  for (uint32_t i = 0; i < t->n_eps; i++) {
    fast_ep *e = &t->eps[i];
    if (ip >= ips + ips_len + 1) goto fail;
    if (uv_ip4_addr(ip, ports[i], &e->addr.v4) == 0) e->salen = sizeof(struct sockaddr_in);
    else if (uv_ip6_addr(ip, ports[i], &e->addr.v6) == 0) e->salen = sizeof(struct sockaddr_in6);
    else goto fail;
    e->health = health[i] >= 0 && health[i] < (int32_t)sizeof g_health ? health[i] : -1;
    ip += strlen(ip) + 1;
  }
  free(keys);
  free(ips);
  l->fast = t;
  return int_value(env, 0);
fail:
  free(keys);
  free(ips);
  if (t != NULL) {
    fp_hosts_free(t->hosts);
    free(t->routes);
    free(t->eps);
    free(t);
  }
  return int_value(env, err);
}

/*
 * fastClose(l, tableId, routes: Uint8Array | null, end): closes the listener's fast connections of that table
 * (tableId < 0: of any table) whose route is marked in `routes` (null: all, unrouted ones too), each with a
 * close record whose end is `end`. Returns how many.
 */
static napi_value js_fast_close(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  void *data = NULL;
  double table_id = -1;
  int32_t end = 0;
  uint8_t *mask = NULL;
  size_t mask_len = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4 || napi_get_value_external(env, argv[0], &data) != napi_ok ||
      napi_get_value_double(env, argv[1], &table_id) != napi_ok || napi_get_value_int32(env, argv[3], &end) != napi_ok)
    return throw_type(env, "fastClose(listener, tableId, routes, end)");
  bool is = false;
  if (napi_is_typedarray(env, argv[2], &is) == napi_ok && is) {
    napi_typedarray_type type;
    napi_value ab;
    size_t off;
    napi_get_typedarray_info(env, argv[2], &type, &mask_len, (void **)&mask, &ab, &off);
    if (type != napi_uint8_array) return throw_type(env, "fastClose: routes must be a Uint8Array");
  }
  listener *l = (listener *)data;
  int n = 0;
  pump *next;
  for (pump *p = l->fast_list; p != NULL; p = next) {
    next = p->fnext;
    if (table_id >= 0 && p->ft->id != table_id) continue;
    if (is && (p->route < 0 || (size_t)p->route >= mask_len || !mask[p->route])) continue;
    stop(p, -1);
    fast_end(p, end, 0, 0);
    n++;
  }
  /* The records now, so the caller sees them when this returns (shutdown waits for nothing else). */
  if (n > 0) fast_flush(env);
  return int_value(env, n);
}

/* Test hooks for the pure parts. fastParse(buf, maxBytes) -> { sni, alpn: Buffer } | null */
static napi_value js_fast_parse(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out, v;
  void *buf;
  size_t len;
  double max = 65536;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_buffer_info(env, argv[0], &buf, &len) != napi_ok) return throw_type(env, "fastParse(buf)");
  if (argc > 1) napi_get_value_double(env, argv[1], &max);
  fp_hello h;
  if (!fp_hello_parse((const uint8_t *)buf, len, (size_t)max, &h)) {
    napi_get_null(env, &out);
    return out;
  }
  napi_create_object(env, &out);
  napi_create_string_latin1(env, h.sni, (size_t)h.sni_len, &v);
  napi_set_named_property(env, out, "sni", v);
  napi_create_buffer_copy(env, h.alpn_len, (const char *)buf + h.alpn_off, NULL, &v);
  napi_set_named_property(env, out, "alpn", v);
  return out;
}

/* fastLookup(keys: NUL-joined, values: Int32Array, names: string[]) -> Int32Array (-1: no key matches) */
static napi_value js_fast_lookup(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out, ab;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) return throw_type(env, "fastLookup(keys, values, names)");
  size_t keys_len, nvalues;
  int32_t *values;
  char *keys = string_copy(env, argv[0], &keys_len);
  if (keys == NULL || !typed_array(env, argv[1], napi_int32_array, (void **)&values, &nvalues)) {
    free(keys);
    return throw_type(env, "fastLookup: keys must be a string, values an Int32Array");
  }
  fp_hosts *t = fp_hosts_new(keys, keys_len, values, (uint32_t)nvalues);
  free(keys);
  uint32_t n = 0;
  napi_get_array_length(env, argv[2], &n);
  int32_t *res;
  napi_create_arraybuffer(env, n * sizeof(int32_t), (void **)&res, &ab);
  napi_create_typedarray(env, napi_int32_array, n, ab, 0, &out);
  for (uint32_t i = 0; i < n; i++) {
    napi_value name;
    char buf[300];
    size_t len = 0;
    napi_get_element(env, argv[2], i, &name);
    napi_get_value_string_latin1(env, name, buf, sizeof buf, &len);
    res[i] = t == NULL ? -2 : fp_hosts_lookup(t, buf, len, -1, NULL);
  }
  fp_hosts_free(t);
  return out;
}

/* fastCount(l): the listener's fast connections alive (waiting, connecting or pumping). */
static napi_value js_fast_count(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) return throw_type(env, "fastCount(l)");
  return int_value(env, (int)((listener *)data)->fast_live);
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"stop", NULL, js_stop, NULL, NULL, NULL, napi_default, NULL},
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"connect", NULL, js_connect, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"bytes", NULL, js_bytes, NULL, NULL, NULL, napi_default, NULL},
      {"listen", NULL, js_listen, NULL, NULL, NULL, napi_default, NULL},
      {"listenPort", NULL, js_listen_port, NULL, NULL, NULL, napi_default, NULL},
      {"unlisten", NULL, js_unlisten, NULL, NULL, NULL, napi_default, NULL},
      {"readStart", NULL, js_read_start, NULL, NULL, NULL, napi_default, NULL},
      {"readStop", NULL, js_read_stop, NULL, NULL, NULL, napi_default, NULL},
      {"write", NULL, js_write, NULL, NULL, NULL, napi_default, NULL},
      {"release", NULL, js_release, NULL, NULL, NULL, napi_default, NULL},
      {"localAddress", NULL, js_local_address, NULL, NULL, NULL, napi_default, NULL},
      {"buffer", NULL, js_buffer, NULL, NULL, NULL, napi_default, NULL},
      {"shared", NULL, js_shared, NULL, NULL, NULL, napi_default, NULL},
      {"fastSetup", NULL, js_fast_setup, NULL, NULL, NULL, napi_default, NULL},
      {"fastTable", NULL, js_fast_table, NULL, NULL, NULL, napi_default, NULL},
      {"fastClose", NULL, js_fast_close, NULL, NULL, NULL, napi_default, NULL},
      {"fastCount", NULL, js_fast_count, NULL, NULL, NULL, napi_default, NULL},
      {"fastParse", NULL, js_fast_parse, NULL, NULL, NULL, napi_default, NULL},
      {"fastLookup", NULL, js_fast_lookup, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
