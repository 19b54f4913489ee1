// snigate WAF addon: a thin, synchronous binding of libmodsecurity v3 through the N-API C interface
// (node_api.h only: no node-addon-api, no V8 headers, ABI-stable across Node versions >= the NAPI_VERSION below).
//
// C++ rather than C for one reason: the log callback is registered with RuleMessageLogProperty, so every matched
// rule arrives as a structured modsecurity::RuleMessage (rule id, msg, logdata, severity, phase, disruptive) instead
// of the Apache-style text line, whose [id "..."] fields sit next to attacker-controlled values and can be spoofed.
//
// JS surface (all synchronous; every tx function returns a Step, see makeStep):
//   version() -> string
//   createEngine(parts: string[]) -> engine      parts = ['file', path, 'text', rules, ...], loaded in order
//   newTransaction(engine, id) -> tx
//   processConnection(tx, clientIp, clientPort, serverIp, serverPort) -> Step
//   processUri(tx, uri, method, httpVersion) -> Step
//   processRequestHeaders(tx, headers: string[]) -> Step   headers = [name, value, name, value, ...]
//   appendRequestBody(tx, chunk: Buffer|Uint8Array) -> Step
//   processRequestBody(tx) -> Step
//   processResponseHeaders(tx, status, protocol, headers: string[]) -> Step
//   finish(tx) -> Step      logging phase + frees the ModSecurity transaction; idempotent
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

// A Tx whose ModSecurity transaction was already finished is rejected too (use after finish).
Tx *getTx(napi_env env, napi_value v, bool allowFinished = false) {
  void *p = nullptr;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok ||
      p == nullptr || static_cast<Tx *>(p)->magic != TX_MAGIC) {
    napi_throw_type_error(env, nullptr, "modsecurity addon: not a transaction");
    return nullptr;
  }
  Tx *tx = static_cast<Tx *>(p);
  if (tx->t == nullptr && !allowFinished) {
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

// Reads the pending intervention (if any) and drains the collected rule messages into a Step object.
napi_value makeStep(napi_env env, Tx *tx) {
  bool disruptive = false;
  int status = 0;
  int disruptiveRuleId = 0;
  std::string disruptiveMsg;
  if (tx->t != nullptr) {
    modsecurity::ModSecurityIntervention it;
    it.status = 200;
    it.pause = 0;
    it.url = nullptr;
    it.log = nullptr;
    it.disruptive = 0;
    if (modsecurity::msc_intervention(tx->t, &it) != 0 && it.disruptive != 0) {
      disruptive = true;
      status = it.status;
      // In blocking mode the disruptive rule (e.g. CRS 949110) is not passed to the log callback; its message is
      // kept on the transaction, so it is read from there (structured, like the others).
      for (auto it2 = tx->t->m_rulesMessages.rbegin(); it2 != tx->t->m_rulesMessages.rend(); ++it2) {
        if (it2->m_isDisruptive) {
          disruptiveRuleId = it2->m_ruleId;
          disruptiveMsg = clip(it2->m_message, MAX_MSG);
          break;
        }
      }
    }
    std::free(it.url);
    std::free(it.log);
  }
  napi_value step, arr;
  CHECK(napi_create_object(env, &step));
  CHECK(napi_create_array_with_length(env, tx->messages.size(), &arr));
  for (size_t i = 0; i < tx->messages.size(); i++) {
    const Msg &m = tx->messages[i];
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
  if (!setBool(env, step, "disruptive", disruptive) || !setInt(env, step, "status", status) ||
      !setInt(env, step, "dropped", tx->dropped) || !setInt(env, step, "ruleId", disruptiveRuleId) ||
      !setString(env, step, "ruleMsg", disruptiveMsg)) {
    throwLast(env, "step");
    return nullptr;
  }
  tx->messages.clear();
  tx->dropped = 0;
  return step;
}

// ---- exported functions ----------------------------------------------------------------------------------------

void finalizeEngine(napi_env, void *data, void *) { engineUnref(static_cast<Engine *>(data)); }

void finalizeTx(napi_env, void *data, void *) {
  Tx *tx = static_cast<Tx *>(data);
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
  napi_value argv[2];
  if (!getArgs(env, info, 2, argv)) return nullptr;
  Engine *e = getEngine(env, argv[0]);
  if (e == nullptr) return nullptr;
  std::string id;
  if (!getString(env, argv[1], &id)) return nullptr;
  Tx *tx = new Tx{TX_MAGIC, e, nullptr, {}, 0};
  e->refs++;
  tx->t = modsecurity::msc_new_transaction_with_id(e->msc, e->rules, const_cast<char *>(id.c_str()), tx);
  napi_value ext;
  if (tx->t == nullptr || napi_create_external(env, tx, finalizeTx, nullptr, &ext) != napi_ok) {
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
  if (tx->t != nullptr) modsecurity::msc_process_logging(tx->t);
  napi_value step = makeStep(env, tx);
  txRelease(tx);
  return step;
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
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return nullptr;
  return exports;
}
