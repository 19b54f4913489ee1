// snigate WAF addon: a thin, synchronous binding of libmodsecurity v3 through the N-API C interface
// (node_api.h only: no node-addon-api, no V8 headers, ABI-stable across Node versions >= the NAPI_VERSION below).
//
// C++ rather than C for one reason: the log callback is registered with RuleMessageLogProperty, so every matched
// rule arrives as a structured modsecurity::RuleMessage (rule id, msg, logdata, severity, phase, disruptive) instead
// of the Apache-style text line, whose [id "..."] fields sit next to attacker-controlled values and can be spoofed.
//
// JS surface (synchronous unless named *Async; every tx function returns a Step, see makeStep):
//   version() -> string
//   createEngine(parts: string[]) -> engine      parts = ['file', path, 'text', rules, ...], loaded in order
//   newTransaction(engine, id, deferred = false) -> tx
//       deferred: the ModSecurity transaction (~30+ us to construct) is created by beginAsync on the worker; until
//       then only beginAsync/finish/finishAsync accept the tx
//   processConnection(tx, clientIp, clientPort, serverIp, serverPort) -> Step
//   processUri(tx, uri, method, httpVersion) -> Step
//   processRequestHeaders(tx, headers: string[]) -> Step   headers = [name, value, name, value, ...]
//   appendRequestBody(tx, chunk: Buffer|Uint8Array) -> Step
//   processRequestBody(tx) -> Step
//   processResponseHeaders(tx, status, protocol, headers: string[]) -> Step
//   finish(tx) -> Step      logging phase + frees the ModSecurity transaction; idempotent
//
// Async variants run the ModSecurity work on libuv's threadpool (napi_create_async_work) so the event loop is not
// stalled by rule evaluation (~0.6 ms of CPU per request with the CRS), and a second core can be used:
//   beginAsync(tx, clientIp, clientPort, serverIp, serverPort, uri, method, httpVersion, headers) -> Promise<Step[]>
//       connection, URI, request headers in one work item; stops after the first disruptive step (like the sync
//       sequence the JS layer runs); one Step per ModSecurity call made
//   bodyAsync(tx, chunks: Uint8Array[], processBody: boolean) -> Promise<Step[]>
//       appends the chunks (copied on the main thread) then, unless a step was disruptive, phase 2
//   finishAsync(tx) -> Promise<Step>   logging phase + frees the ModSecurity transaction
// Thread rules: a transaction runs at most one work item at a time (tx->busy; every call on a busy tx throws), and
// the JS external is held by a napi_ref while its work runs so it cannot be finalized under the worker. The worker
// (execute) never touches N-API: the log callback only appends to tx->messages, and the steps are converted to JS in
// the complete callback, on the main thread. The RulesSet is shared read-only; libmodsecurity serializes its
// in-memory collections (CRS initcol) itself. Engine refcounts are only changed on the main thread.
//
// Step = { disruptive, status, ruleId, ruleMsg, messages: Msg[], dropped }   ruleId/ruleMsg: the disruptive rule (0/'')
// Msg  = { id, phase, severity, disruptive, msg, data }   (msg and data truncated to MAX_MSG / MAX_DATA bytes)

#define NAPI_VERSION 8
#include <node_api.h>

// Before the ModSecurity headers: intervention.h calls free() without including <cstdlib> itself.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <modsecurity/intervention.h>
#include <modsecurity/modsecurity.h>
#include <modsecurity/rule_message.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>

namespace {

// Bounds: the addon never copies more than this per message / keeps more than this many messages per step.
constexpr size_t MAX_MSG = 512;
constexpr size_t MAX_DATA = 256;
constexpr size_t MAX_MESSAGES = 64;
constexpr uint32_t ENGINE_MAGIC = 0x57414645;  // "WAFE"
constexpr uint32_t TX_MAGIC = 0x57414654;      // "WAFT"

struct Engine {
  uint32_t magic;
  modsecurity::ModSecurity *msc;
  modsecurity::RulesSet *rules;
  int refs;  // the JS external + every live Tx
};

struct Msg {
  int id;
  int phase;
  int severity;
  bool disruptive;
  std::string msg;
  std::string data;
};

struct Tx {
  uint32_t magic;
  Engine *engine;
  modsecurity::Transaction *t;
  std::vector<Msg> messages;
  uint32_t dropped;
  bool busy;              // a work item owns the transaction (see the header)
  bool deferred;          // newTransaction(..., true): `t` is created by the first beginAsync, on the worker
  std::string pendingId;  // the transaction id for that creation
};

// A Step computed without N-API (worker thread or main thread), converted to JS by stepToJs on the main thread.
struct NStep {
  bool disruptive = false;
  int status = 0;
  int ruleId = 0;
  std::string ruleMsg;
  std::vector<Msg> messages;
  uint32_t dropped = 0;
};

void engineUnref(Engine *e) {
  if (--e->refs > 0) return;
  e->magic = 0;
  delete e->rules;
  delete e->msc;
  delete e;
}

void txRelease(Tx *tx) {
  if (tx->t != nullptr) {
    delete tx->t;
    tx->t = nullptr;
  }
  if (tx->engine != nullptr) {
    engineUnref(tx->engine);
    tx->engine = nullptr;
  }
}

// Truncates to at most max bytes without splitting a UTF-8 sequence; the JS side redacts further.
std::string clip(const std::string &s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) n--;
  return s.substr(0, n);
}

void logCallback(void *data, const void *message) {
  if (data == nullptr || message == nullptr) return;
  Tx *tx = static_cast<Tx *>(data);
  if (tx->magic != TX_MAGIC) return;
  const auto *rm = static_cast<const modsecurity::RuleMessage *>(message);
  if (tx->messages.size() >= MAX_MESSAGES) {
    tx->dropped++;
    return;
  }
  Msg m;
  m.id = rm->m_ruleId;
  m.phase = rm->m_phase;
  m.severity = rm->m_severity;
  m.disruptive = rm->m_isDisruptive;
  m.msg = clip(rm->m_message, MAX_MSG);
  m.data = clip(rm->m_data, MAX_DATA);
  tx->messages.push_back(std::move(m));
}

// ---- N-API helpers ---------------------------------------------------------------------------------------------

#define CHECK(call)                                             \
  do {                                                          \
    if ((call) != napi_ok) {                                    \
      throwLast(env, #call);                                    \
      return nullptr;                                           \
    }                                                           \
  } while (0)

void throwLast(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info *info = nullptr;
  napi_get_last_error_info(env, &info);
  std::string m = std::string("modsecurity addon: ") + what;
  if (info != nullptr && info->error_message != nullptr) m += std::string(": ") + info->error_message;
  napi_throw_error(env, nullptr, m.c_str());
}

napi_value fail(napi_env env, const std::string &message) {
  napi_throw_error(env, nullptr, message.c_str());
  return nullptr;
}

bool getArgs(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return false;
  if (argc < want) {
    napi_throw_type_error(env, nullptr, "modsecurity addon: missing arguments");
    return false;
  }
  return true;
}

bool getString(napi_env env, napi_value v, std::string *out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) {
    napi_throw_type_error(env, nullptr, "modsecurity addon: expected a string");
    return false;
  }
  out->resize(len + 1);
  size_t copied = 0;
  if (napi_get_value_string_utf8(env, v, &(*out)[0], len + 1, &copied) != napi_ok) return false;
  out->resize(copied);
  return true;
}

bool getInt(napi_env env, napi_value v, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, nullptr, "modsecurity addon: expected a number");
    return false;
  }
  return true;
}

bool getStringArray(napi_env env, napi_value v, std::vector<std::string> *out) {
  bool isArray = false;
  if (napi_is_array(env, v, &isArray) != napi_ok || !isArray) {
    napi_throw_type_error(env, nullptr, "modsecurity addon: expected an array of strings");
    return false;
  }
  uint32_t n = 0;
  napi_get_array_length(env, v, &n);
  out->reserve(n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    if (napi_get_element(env, v, i, &el) != napi_ok) return false;
    std::string s;
    if (!getString(env, el, &s)) return false;
    out->push_back(std::move(s));
  }
  return true;
}

Engine *getEngine(napi_env env, napi_value v) {
  void *p = nullptr;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok ||
      p == nullptr || static_cast<Engine *>(p)->magic != ENGINE_MAGIC) {
    napi_throw_type_error(env, nullptr, "modsecurity addon: not an engine");
    return nullptr;
  }
  return static_cast<Engine *>(p);
}

// A Tx whose ModSecurity transaction was already finished is rejected too (use after finish), and so is a deferred
// one not begun yet unless allowDeferred (beginAsync) or allowFinished (finish: the never-begun tx is just freed).
Tx *getTx(napi_env env, napi_value v, bool allowFinished = false, bool allowDeferred = false) {
  void *p = nullptr;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok ||
      p == nullptr || static_cast<Tx *>(p)->magic != TX_MAGIC) {
    napi_throw_type_error(env, nullptr, "modsecurity addon: not a transaction");
    return nullptr;
  }
  Tx *tx = static_cast<Tx *>(p);
  if (tx->busy) {
    napi_throw_error(env, nullptr, "modsecurity addon: transaction busy (a work item is running)");
    return nullptr;
  }
  if (tx->deferred && !allowDeferred && !allowFinished) {
    napi_throw_error(env, nullptr, "modsecurity addon: deferred transaction not begun (beginAsync first)");
    return nullptr;
  }
  if (tx->t == nullptr && !allowFinished && !(tx->deferred && allowDeferred)) {
    napi_throw_error(env, nullptr, "modsecurity addon: transaction already finished");
    return nullptr;
  }
  return tx;
}

napi_value setString(napi_env env, napi_value obj, const char *key, const std::string &s) {
  napi_value v;
  if (napi_create_string_utf8(env, s.data(), s.size(), &v) != napi_ok) return nullptr;
  if (napi_set_named_property(env, obj, key, v) != napi_ok) return nullptr;
  return v;
}

napi_value setInt(napi_env env, napi_value obj, const char *key, int64_t n) {
  napi_value v;
  if (napi_create_int64(env, n, &v) != napi_ok) return nullptr;
  if (napi_set_named_property(env, obj, key, v) != napi_ok) return nullptr;
  return v;
}

napi_value setBool(napi_env env, napi_value obj, const char *key, bool b) {
  napi_value v;
  if (napi_get_boolean(env, b, &v) != napi_ok) return nullptr;
  if (napi_set_named_property(env, obj, key, v) != napi_ok) return nullptr;
  return v;
}

// Reads the pending intervention (if any) and drains the collected rule messages. No N-API: runs on workers too.
NStep takeStep(Tx *tx) {
  NStep s;
  if (tx->t != nullptr) {
    modsecurity::ModSecurityIntervention it;
    it.status = 200;
    it.pause = 0;
    it.url = nullptr;
    it.log = nullptr;
    it.disruptive = 0;
    if (modsecurity::msc_intervention(tx->t, &it) != 0 && it.disruptive != 0) {
      s.disruptive = true;
      s.status = it.status;
      // In blocking mode the disruptive rule (e.g. CRS 949110) is not passed to the log callback; its message is
      // kept on the transaction, so it is read from there (structured, like the others).
      for (auto it2 = tx->t->m_rulesMessages.rbegin(); it2 != tx->t->m_rulesMessages.rend(); ++it2) {
        if (it2->m_isDisruptive) {
          s.ruleId = it2->m_ruleId;
          s.ruleMsg = clip(it2->m_message, MAX_MSG);
          break;
        }
      }
    }
    std::free(it.url);
    std::free(it.log);
  }
  s.messages = std::move(tx->messages);
  tx->messages.clear();
  s.dropped = tx->dropped;
  tx->dropped = 0;
  return s;
}

napi_value stepToJs(napi_env env, const NStep &s) {
  napi_value step, arr;
  CHECK(napi_create_object(env, &step));
  CHECK(napi_create_array_with_length(env, s.messages.size(), &arr));
  for (size_t i = 0; i < s.messages.size(); i++) {
    const Msg &m = s.messages[i];
    napi_value o;
    CHECK(napi_create_object(env, &o));
    if (!setInt(env, o, "id", m.id) || !setInt(env, o, "phase", m.phase) ||
        !setInt(env, o, "severity", m.severity) || !setBool(env, o, "disruptive", m.disruptive) ||
        !setString(env, o, "msg", m.msg) || !setString(env, o, "data", m.data)) {
      throwLast(env, "message");
      return nullptr;
    }
    CHECK(napi_set_element(env, arr, static_cast<uint32_t>(i), o));
  }
  CHECK(napi_set_named_property(env, step, "messages", arr));
  if (!setBool(env, step, "disruptive", s.disruptive) || !setInt(env, step, "status", s.status) ||
      !setInt(env, step, "dropped", s.dropped) || !setInt(env, step, "ruleId", s.ruleId) ||
      !setString(env, step, "ruleMsg", s.ruleMsg)) {
    throwLast(env, "step");
    return nullptr;
  }
  return step;
}

napi_value makeStep(napi_env env, Tx *tx) { return stepToJs(env, takeStep(tx)); }

// ---- exported functions ----------------------------------------------------------------------------------------

void finalizeEngine(napi_env, void *data, void *) { engineUnref(static_cast<Engine *>(data)); }

void finalizeTx(napi_env, void *data, void *) {
  Tx *tx = static_cast<Tx *>(data);
  // Cannot happen while the work item's napi_ref holds the external, except at environment teardown with work still
  // queued: then leaking the transaction beats freeing it under a worker.
  if (tx->busy) return;
  txRelease(tx);
  tx->magic = 0;
  delete tx;
}

napi_value Version(napi_env env, napi_callback_info) {
  modsecurity::ModSecurity *m = modsecurity::msc_init();
  std::string who = modsecurity::msc_who_am_i(m);
  modsecurity::msc_cleanup(m);
  napi_value v;
  CHECK(napi_create_string_utf8(env, who.data(), who.size(), &v));
  return v;
}

napi_value CreateEngine(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!getArgs(env, info, 1, argv)) return nullptr;
  std::vector<std::string> parts;
  if (!getStringArray(env, argv[0], &parts)) return nullptr;
  if (parts.size() % 2 != 0) return fail(env, "modsecurity addon: parts must be [kind, value] pairs");

  Engine *e = new Engine{ENGINE_MAGIC, modsecurity::msc_init(), modsecurity::msc_create_rules_set(), 1};
  modsecurity::msc_set_connector_info(e->msc, "snigate");
  e->msc->setServerLogCb(logCallback, modsecurity::RuleMessageLogProperty);
  for (size_t i = 0; i < parts.size(); i += 2) {
    const char *err = nullptr;
    int rc;
    if (parts[i] == "file") {
      rc = modsecurity::msc_rules_add_file(e->rules, parts[i + 1].c_str(), &err);
    } else if (parts[i] == "text") {
      rc = modsecurity::msc_rules_add(e->rules, parts[i + 1].c_str(), &err);
    } else {
      engineUnref(e);
      return fail(env, "modsecurity addon: unknown part kind " + parts[i]);
    }
    if (rc < 0) {
      std::string m = "modsecurity: cannot load rules (" + parts[i] + " " +
                      (parts[i] == "file" ? parts[i + 1] : std::string("#") + std::to_string(i / 2)) +
                      "): " + (err != nullptr ? err : "unknown error");
      std::free(const_cast<char *>(err));
      engineUnref(e);
      return fail(env, m);
    }
    std::free(const_cast<char *>(err));
  }
  napi_value ext;
  if (napi_create_external(env, e, finalizeEngine, nullptr, &ext) != napi_ok) {
    engineUnref(e);
    throwLast(env, "napi_create_external");
    return nullptr;
  }
  return ext;
}

napi_value NewTransaction(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2) {
    napi_throw_type_error(env, nullptr, "modsecurity addon: missing arguments");
    return nullptr;
  }
  Engine *e = getEngine(env, argv[0]);
  if (e == nullptr) return nullptr;
  std::string id;
  if (!getString(env, argv[1], &id)) return nullptr;
  bool deferred = false;
  if (argc >= 3) {
    napi_valuetype vt;
    if (napi_typeof(env, argv[2], &vt) == napi_ok && vt == napi_boolean) napi_get_value_bool(env, argv[2], &deferred);
  }
  Tx *tx = new Tx{TX_MAGIC, e, nullptr, {}, 0, false, deferred, {}};
  e->refs++;
  if (deferred) {
    tx->pendingId = std::move(id);
  } else {
    tx->t = modsecurity::msc_new_transaction_with_id(e->msc, e->rules, const_cast<char *>(id.c_str()), tx);
  }
  napi_value ext;
  if ((tx->t == nullptr && !deferred) || napi_create_external(env, tx, finalizeTx, nullptr, &ext) != napi_ok) {
    txRelease(tx);
    delete tx;
    return fail(env, "modsecurity addon: cannot create a transaction");
  }
  return ext;
}

napi_value ProcessConnection(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!getArgs(env, info, 5, argv)) return nullptr;
  Tx *tx = getTx(env, argv[0]);
  if (tx == nullptr) return nullptr;
  std::string cip, sip;
  int32_t cport, sport;
  if (!getString(env, argv[1], &cip) || !getInt(env, argv[2], &cport) || !getString(env, argv[3], &sip) ||
      !getInt(env, argv[4], &sport))
    return nullptr;
  modsecurity::msc_process_connection(tx->t, cip.c_str(), cport, sip.c_str(), sport);
  return makeStep(env, tx);
}

napi_value ProcessUri(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!getArgs(env, info, 4, argv)) return nullptr;
  Tx *tx = getTx(env, argv[0]);
  if (tx == nullptr) return nullptr;
  std::string uri, method, version;
  if (!getString(env, argv[1], &uri) || !getString(env, argv[2], &method) || !getString(env, argv[3], &version))
    return nullptr;
  modsecurity::msc_process_uri(tx->t, uri.c_str(), method.c_str(), version.c_str());
  return makeStep(env, tx);
}

napi_value ProcessRequestHeaders(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!getArgs(env, info, 2, argv)) return nullptr;
  Tx *tx = getTx(env, argv[0]);
  if (tx == nullptr) return nullptr;
  std::vector<std::string> h;
  if (!getStringArray(env, argv[1], &h)) return nullptr;
  for (size_t i = 0; i + 1 < h.size(); i += 2) {
    modsecurity::msc_add_n_request_header(tx->t, reinterpret_cast<const unsigned char *>(h[i].data()), h[i].size(),
                                          reinterpret_cast<const unsigned char *>(h[i + 1].data()),
                                          h[i + 1].size());
  }
  modsecurity::msc_process_request_headers(tx->t);
  return makeStep(env, tx);
}

napi_value AppendRequestBody(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!getArgs(env, info, 2, argv)) return nullptr;
  Tx *tx = getTx(env, argv[0]);
  if (tx == nullptr) return nullptr;
  bool isTyped = false;
  napi_is_typedarray(env, argv[1], &isTyped);
  if (!isTyped) {
    napi_throw_type_error(env, nullptr, "modsecurity addon: body chunk must be a Buffer/Uint8Array");
    return nullptr;
  }
  napi_typedarray_type type;
  size_t length = 0;
  void *data = nullptr;
  napi_value ab;
  size_t offset = 0;
  CHECK(napi_get_typedarray_info(env, argv[1], &type, &length, &data, &ab, &offset));
  if (type != napi_uint8_array) {
    napi_throw_type_error(env, nullptr, "modsecurity addon: body chunk must be a Buffer/Uint8Array");
    return nullptr;
  }
  if (length > 0) modsecurity::msc_append_request_body(tx->t, static_cast<const unsigned char *>(data), length);
  return makeStep(env, tx);
}

napi_value ProcessRequestBody(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!getArgs(env, info, 1, argv)) return nullptr;
  Tx *tx = getTx(env, argv[0]);
  if (tx == nullptr) return nullptr;
  modsecurity::msc_process_request_body(tx->t);
  return makeStep(env, tx);
}

napi_value ProcessResponseHeaders(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!getArgs(env, info, 4, argv)) return nullptr;
  Tx *tx = getTx(env, argv[0]);
  if (tx == nullptr) return nullptr;
  int32_t status;
  std::string proto;
  std::vector<std::string> h;
  if (!getInt(env, argv[1], &status) || !getString(env, argv[2], &proto) || !getStringArray(env, argv[3], &h))
    return nullptr;
  for (size_t i = 0; i + 1 < h.size(); i += 2) {
    modsecurity::msc_add_n_response_header(tx->t, reinterpret_cast<const unsigned char *>(h[i].data()),
                                           h[i].size(), reinterpret_cast<const unsigned char *>(h[i + 1].data()),
                                           h[i + 1].size());
  }
  modsecurity::msc_process_response_headers(tx->t, status, proto.c_str());
  return makeStep(env, tx);
}

napi_value Finish(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!getArgs(env, info, 1, argv)) return nullptr;
  Tx *tx = getTx(env, argv[0], true);
  if (tx == nullptr) return nullptr;
  tx->deferred = false;
  if (tx->t != nullptr) modsecurity::msc_process_logging(tx->t);
  napi_value step = makeStep(env, tx);
  txRelease(tx);
  return step;
}


// ---- async work (libuv threadpool) ------------------------------------------------------------------------------

enum class Op { Begin, Body, Finish };

// Everything a work item needs, copied from JS on the main thread so the worker reads no JS memory.
struct Work {
  Op op;
  Tx *tx = nullptr;
  napi_ref txRef = nullptr;  // keeps the tx external (hence Tx) alive while the worker uses it
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  std::string cip, sip, uri, method, version;
  int32_t cport = 0, sport = 0;
  std::vector<std::string> headers;
  std::vector<std::string> chunks;
  bool processBody = false;
  std::vector<NStep> steps;  // filled by the worker
  const char *failed = nullptr;  // set by the worker: the promise rejects with it
};

// Worker thread: ModSecurity only, no N-API (the env must not be used here).
void executeWork(napi_env, void *data) {
  Work *w = static_cast<Work *>(data);
  Tx *tx = w->tx;
  if (w->op == Op::Begin && tx->deferred) {
    // Reads the shared engine and rules only (as every concurrent connector's transaction creation does).
    tx->t = modsecurity::msc_new_transaction_with_id(tx->engine->msc, tx->engine->rules,
                                                     const_cast<char *>(tx->pendingId.c_str()), tx);
    tx->deferred = false;
    if (tx->t == nullptr) {
      w->failed = "modsecurity addon: cannot create a transaction";
      return;
    }
  }
  modsecurity::Transaction *t = tx->t;
  if (t == nullptr) return;  // finished (or never begun): nothing to run (finishAsync is idempotent)
  auto step = [&]() -> bool {
    w->steps.push_back(takeStep(tx));
    return w->steps.back().disruptive;
  };
  switch (w->op) {
    case Op::Begin:
      modsecurity::msc_process_connection(t, w->cip.c_str(), w->cport, w->sip.c_str(), w->sport);
      if (step()) return;
      modsecurity::msc_process_uri(t, w->uri.c_str(), w->method.c_str(), w->version.c_str());
      if (step()) return;
      for (size_t i = 0; i + 1 < w->headers.size(); i += 2) {
        const std::string &n = w->headers[i], &v = w->headers[i + 1];
        modsecurity::msc_add_n_request_header(t, reinterpret_cast<const unsigned char *>(n.data()), n.size(),
                                              reinterpret_cast<const unsigned char *>(v.data()), v.size());
      }
      modsecurity::msc_process_request_headers(t);
      step();
      return;
    case Op::Body:
      for (const std::string &c : w->chunks) {
        if (!c.empty())
          modsecurity::msc_append_request_body(t, reinterpret_cast<const unsigned char *>(c.data()), c.size());
        if (step()) return;
      }
      if (w->processBody) {
        modsecurity::msc_process_request_body(t);
        step();
      }
      return;
    case Op::Finish:
      modsecurity::msc_process_logging(t);
      step();
      // The ModSecurity transaction is freed here (it is the worker's until complete); the engine reference is
      // dropped in complete, on the main thread, where every other refcount change happens.
      delete t;
      tx->t = nullptr;
      return;
  }
}

// Main thread: converts the steps to JS, settles the promise and gives the transaction back.
void completeWork(napi_env env, napi_status status, void *data) {
  Work *w = static_cast<Work *>(data);
  Tx *tx = w->tx;
  tx->busy = false;
  if (w->op == Op::Finish && tx->t == nullptr && tx->engine != nullptr) {
    engineUnref(tx->engine);
    tx->engine = nullptr;
  }
  napi_value result = nullptr;
  if (status == napi_ok && w->failed == nullptr) {
    if (w->op == Op::Finish) {
      result = w->steps.empty() ? stepToJs(env, NStep{}) : stepToJs(env, w->steps.front());
    } else if (napi_create_array_with_length(env, w->steps.size(), &result) == napi_ok) {
      for (size_t i = 0; i < w->steps.size() && result != nullptr; i++) {
        napi_value st = stepToJs(env, w->steps[i]);
        if (st == nullptr || napi_set_element(env, result, static_cast<uint32_t>(i), st) != napi_ok)
          result = nullptr;
      }
    } else {
      result = nullptr;
    }
  }
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (result != nullptr && !pending) {
    napi_resolve_deferred(env, w->deferred, result);
  } else {
    napi_value err = nullptr;
    if (pending) napi_get_and_clear_last_exception(env, &err);
    if (err == nullptr) {
      napi_value msg;
      const char *text = w->failed != nullptr          ? w->failed
                         : status == napi_cancelled ? "modsecurity addon: work cancelled"
                                                    : "modsecurity addon: async step failed";
      napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
      napi_create_error(env, nullptr, msg, &err);
    }
    napi_reject_deferred(env, w->deferred, err);
  }
  napi_delete_reference(env, w->txRef);
  napi_delete_async_work(env, w->work);
  delete w;
}

// Takes the transaction for a work item and queues it; returns the promise (nullptr with an exception pending).
napi_value queueWork(napi_env env, napi_value txValue, Work *w, const char *name) {
  napi_value promise, resource;
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource) != napi_ok ||
      napi_create_async_work(env, nullptr, resource, executeWork, completeWork, w, &w->work) != napi_ok) {
    delete w;
    throwLast(env, "napi_create_async_work");
    return nullptr;
  }
  if (napi_create_reference(env, txValue, 1, &w->txRef) != napi_ok) {
    napi_delete_async_work(env, w->work);
    delete w;
    throwLast(env, "napi_create_reference");
    return nullptr;
  }
  w->tx->busy = true;
  if (napi_queue_async_work(env, w->work) != napi_ok) {
    w->tx->busy = false;
    napi_delete_reference(env, w->txRef);
    napi_delete_async_work(env, w->work);
    delete w;
    throwLast(env, "napi_queue_async_work");
    return nullptr;
  }
  return promise;
}

napi_value BeginAsync(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  if (!getArgs(env, info, 9, argv)) return nullptr;
  Tx *tx = getTx(env, argv[0], false, true);
  if (tx == nullptr) return nullptr;
  Work *w = new Work();
  w->op = Op::Begin;
  w->tx = tx;
  if (!getString(env, argv[1], &w->cip) || !getInt(env, argv[2], &w->cport) || !getString(env, argv[3], &w->sip) ||
      !getInt(env, argv[4], &w->sport) || !getString(env, argv[5], &w->uri) ||
      !getString(env, argv[6], &w->method) || !getString(env, argv[7], &w->version) ||
      !getStringArray(env, argv[8], &w->headers)) {
    delete w;
    return nullptr;
  }
  return queueWork(env, argv[0], w, "snigate:waf:begin");
}

napi_value BodyAsync(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!getArgs(env, info, 3, argv)) return nullptr;
  Tx *tx = getTx(env, argv[0]);
  if (tx == nullptr) return nullptr;
  bool isArray = false;
  if (napi_is_array(env, argv[1], &isArray) != napi_ok || !isArray) {
    napi_throw_type_error(env, nullptr, "modsecurity addon: expected an array of Uint8Array chunks");
    return nullptr;
  }
  bool process = false;
  if (napi_get_value_bool(env, argv[2], &process) != napi_ok) {
    napi_throw_type_error(env, nullptr, "modsecurity addon: expected a boolean");
    return nullptr;
  }
  Work *w = new Work();
  w->op = Op::Body;
  w->tx = tx;
  w->processBody = process;
  uint32_t n = 0;
  napi_get_array_length(env, argv[1], &n);
  w->chunks.reserve(n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    bool isTyped = false;
    napi_typedarray_type type = napi_int8_array;
    size_t length = 0;
    void *data = nullptr;
    if (napi_get_element(env, argv[1], i, &el) != napi_ok || napi_is_typedarray(env, el, &isTyped) != napi_ok ||
        !isTyped || napi_get_typedarray_info(env, el, &type, &length, &data, nullptr, nullptr) != napi_ok ||
        type != napi_uint8_array) {
      delete w;
      napi_throw_type_error(env, nullptr, "modsecurity addon: body chunk must be a Buffer/Uint8Array");
      return nullptr;
    }
    // Copied: the worker must not read JS-owned memory the main thread could reuse meanwhile.
    w->chunks.emplace_back(static_cast<const char *>(data), length);
  }
  return queueWork(env, argv[0], w, "snigate:waf:body");
}

napi_value FinishAsync(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!getArgs(env, info, 1, argv)) return nullptr;
  Tx *tx = getTx(env, argv[0], true);
  if (tx == nullptr) return nullptr;
  tx->deferred = false;  // never begun: nothing to create any more
  Work *w = new Work();
  w->op = Op::Finish;
  w->tx = tx;
  return queueWork(env, argv[0], w, "snigate:waf:finish");
}

}  // namespace

NAPI_MODULE_INIT() {
  const napi_property_descriptor props[] = {
      {"version", nullptr, Version, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"createEngine", nullptr, CreateEngine, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"newTransaction", nullptr, NewTransaction, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"processConnection", nullptr, ProcessConnection, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"processUri", nullptr, ProcessUri, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"processRequestHeaders", nullptr, ProcessRequestHeaders, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"appendRequestBody", nullptr, AppendRequestBody, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"processRequestBody", nullptr, ProcessRequestBody, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"processResponseHeaders", nullptr, ProcessResponseHeaders, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"finish", nullptr, Finish, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"beginAsync", nullptr, BeginAsync, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bodyAsync", nullptr, BodyAsync, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"finishAsync", nullptr, FinishAsync, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return nullptr;
  return exports;
}
