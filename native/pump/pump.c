/*
 * snigate byte pump: moves bytes between two connected, non-blocking TCP sockets on the libuv loop
 * (uv_poll on both fds), so an established passthrough connection costs no JavaScript per chunk.
 *
 * Node-API (ABI-stable) plus libuv's stable 1.x uv_poll interface. One shared 64 KiB read buffer for all
 * connections (everything runs on the loop thread): a read is written to the other socket at once, and
 * only what the kernel does not take is copied into a per-direction buffer (malloc'd, freed once sent);
 * reading that direction stops until it is sent (backpressure). An idle connection holds no buffer.
 *
 * JS API:
 *   start(fdClient, fdBackend, cb) -> handle | errno (number, negative) when the fds cannot be polled
 *   stop(handle)                   stops polling (idempotent); the sockets stay open, JS closes them
 *   bytes(handle, side)            bytes read from side (0 client, 1 backend) and written to the other
 *   cb(kind, side, err)            kind 1: EOF read on side (the other side was shut down for writing once
 *                                  flushed); 2: error on side (err = -errno), already stopped;
 *                                  3: both directions finished, already stopped.
 */
#include <errno.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define BUFSZ 65536
#define MAX_READS 8

static char g_buf[BUFSZ];

struct pump;

typedef struct side {
  uv_poll_t poll;
  int fd;
  int events;
  int inited;
  int rd_eof;
  int wr_shut;
  char *pend;
  size_t pend_len;
  size_t pend_off;
  struct pump *p;
} side;

typedef struct pump {
  side s[2];
  double bytes[2];
  napi_env env;
  napi_ref cb;
  int stopped;
  int refs; /* 1 for the JS object, 1 per poll handle not yet closed */
} pump;

static void unref(pump *p) {
  if (--p->refs > 0) return;
  for (int i = 0; i < 2; i++) free(p->s[i].pend);
  free(p);
}

static void on_close(uv_handle_t *h) {
  side *s = (side *)h->data;
  unref(s->p);
}

static void stop(pump *p) {
  if (p->stopped) return;
  p->stopped = 1;
  for (int i = 0; i < 2; i++) {
    if (!p->s[i].inited) continue;
    uv_poll_stop(&p->s[i].poll);
    uv_close((uv_handle_t *)&p->s[i].poll, on_close);
  }
  if (p->cb != NULL) {
    napi_delete_reference(p->env, p->cb);
    p->cb = NULL;
  }
}

/* Calls cb(kind, side, err); a stopping event (error, done) stops first. */
static void emit(pump *p, int kind, int sidei, int err) {
  napi_env env = p->env;
  napi_handle_scope scope;
  napi_value cb, recv, argv[3], result;
  if (p->cb == NULL) return;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_get_reference_value(env, p->cb, &cb);
  if (kind != 1) stop(p);
  napi_get_global(env, &recv);
  napi_create_int32(env, kind, &argv[0]);
  napi_create_int32(env, sidei, &argv[1]);
  napi_create_int32(env, err, &argv[2]);
  if (cb != NULL && napi_make_callback(env, NULL, recv, cb, 3, argv, &result) == napi_pending_exception) {
    napi_value ex;
    napi_get_and_clear_last_exception(env, &ex);
    napi_fatal_exception(env, ex);
  }
  napi_close_handle_scope(env, scope);
}

static void on_poll(uv_poll_t *h, int status, int events);

static void update(pump *p) {
  if (p->stopped) return;
  for (int i = 0; i < 2; i++) {
    side *s = &p->s[i];
    side *o = &p->s[1 - i];
    int want = 0;
    if (!s->rd_eof && o->pend_len == 0) want |= UV_READABLE;
    if (s->pend_len > 0) want |= UV_WRITABLE;
    if (want == s->events) continue;
    s->events = want;
    if (want == 0) uv_poll_stop(&s->poll);
    else uv_poll_start(&s->poll, want, on_poll);
  }
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

/* Returns 0 to go on, -1 when the pump stopped (error or done emitted). */
static int do_read(pump *p, int i) {
  side *s = &p->s[i];
  side *d = &p->s[1 - i];
  for (int k = 0; k < MAX_READS; k++) {
    ssize_t n = read(s->fd, g_buf, BUFSZ);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      emit(p, 2, i, -errno);
      return -1;
    }
    if (n == 0) {
      s->rd_eof = 1;
      shut(p, i);
      emit(p, 1, i, 0);
      if (p->stopped) return -1;
      if (both_done(p)) {
        emit(p, 3, 0, 0);
        return -1;
      }
      return 0;
    }
    p->bytes[i] += (double)n;
    ssize_t w = write_some(d, g_buf, (size_t)n);
    if (w < 0) {
      emit(p, 2, 1 - i, (int)w);
      return -1;
    }
    if ((size_t)w < (size_t)n) {
      size_t rest = (size_t)n - (size_t)w;
      d->pend = (char *)malloc(rest);
      if (d->pend == NULL) {
        emit(p, 2, 1 - i, -ENOMEM);
        return -1;
      }
      memcpy(d->pend, g_buf + w, rest);
      d->pend_len = rest;
      d->pend_off = 0;
      return 0;
    }
    if ((size_t)n < BUFSZ) return 0;
  }
  return 0;
}

static int do_write(pump *p, int j) {
  side *d = &p->s[j];
  if (d->pend_len == 0) return 0;
  ssize_t w = write_some(d, d->pend + d->pend_off, d->pend_len - d->pend_off);
  if (w < 0) {
    emit(p, 2, j, (int)w);
    return -1;
  }
  d->pend_off += (size_t)w;
  if (d->pend_off < d->pend_len) return 0;
  free(d->pend);
  d->pend = NULL;
  d->pend_len = d->pend_off = 0;
  /* The source of this data (the other side) may have ended meanwhile. */
  if (p->s[1 - j].rd_eof) {
    shut(p, 1 - j);
    if (both_done(p)) {
      emit(p, 3, 0, 0);
      return -1;
    }
  }
  return 0;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  side *s = (side *)h->data;
  pump *p = s->p;
  int i = (int)(s - p->s);
  if (p->stopped) return;
  p->refs++; /* the JS callback may drop the last JS reference */
  if (status < 0) {
    emit(p, 2, i, status);
  } else {
    if ((events & UV_WRITABLE) && do_write(p, i) < 0) goto out;
    if ((events & UV_READABLE) && !s->rd_eof && p->s[1 - i].pend_len == 0 && do_read(p, i) < 0) goto out;
    update(p);
  }
out:
  unref(p);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  pump *p = (pump *)data;
  stop(p);
  unref(p);
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out;
  int32_t fd0, fd1;
  napi_valuetype t;
  uv_loop_t *loop;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) return throw_type(env, "start(fdClient, fdBackend, cb)");
  if (napi_get_value_int32(env, argv[0], &fd0) != napi_ok || napi_get_value_int32(env, argv[1], &fd1) != napi_ok)
    return throw_type(env, "fds must be numbers");
  napi_typeof(env, argv[2], &t);
  if (t != napi_function) return throw_type(env, "cb must be a function");
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_type(env, "no event loop");
  pump *p = (pump *)calloc(1, sizeof(pump));
  if (p == NULL) return throw_type(env, "out of memory");
  p->env = env;
  p->refs = 1;
  int fds[2] = {fd0, fd1};
  for (int i = 0; i < 2; i++) {
    side *s = &p->s[i];
    s->fd = fds[i];
    s->p = p;
    int r = uv_poll_init_socket(loop, &s->poll, s->fd);
    if (r != 0) {
      stop(p);
      unref(p);
      napi_create_int32(env, r, &out);
      return out;
    }
    s->poll.data = s;
    s->inited = 1;
    p->refs++;
  }
  napi_create_reference(env, argv[2], 1, &p->cb);
  update(p);
  napi_create_external(env, p, finalize, NULL, &out);
  return out;
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

static napi_value js_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  pump *p = get(env, info, argv, &argc);
  if (p != NULL) stop(p);
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

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
      {"stop", NULL, js_stop, NULL, NULL, NULL, napi_default, NULL},
      {"bytes", NULL, js_bytes, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
