/* Helpers the Node-API files share (napi.c, napi-udp.c). */
#ifndef PORTPUB_NAPI_UTIL_H
#define PORTPUB_NAPI_UTIL_H

#include <node_api.h>
#include <stdint.h>

#include "engine.h"

#define CHECK(env, call)                                                     \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      const napi_extended_error_info *info_ = NULL;                          \
      napi_get_last_error_info((env), &info_);                               \
      napi_throw_error((env), "ERR_PORTPUB_NATIVE",                          \
                       info_ && info_->error_message ? info_->error_message  \
                                                     : "Node-API call failed"); \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

napi_value throw_errno(napi_env env, const char *what, int err);
struct engine *engine_of(napi_env env);
/* get_args reads `want` arguments (throwing when fewer came); NULL when it threw. */
napi_value get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv);
int64_t int_arg(napi_env env, napi_value v);
napi_value str(napi_env env, const char *s);

/* napi-udp.c */
napi_value UdpListen(napi_env env, napi_callback_info info);
napi_value UdpDestroy(napi_env env, napi_callback_info info);
napi_value UdpFlows(napi_env env, napi_callback_info info);

#endif
