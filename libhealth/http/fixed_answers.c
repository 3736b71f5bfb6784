/*
 * The fixed answers of the health port (http/server.c): errors and OPTIONS, made
 * once at start, never cached per state.
 */
#include "health_int.h"

#include <microhttpd.h>
#include <string.h>

#define CONTENT_TYPE "application/health+json"

/* An error or OPTIONS answer: never cached, a short body (none for 204)
 * in the endpoints' own format, {"status":"fail","output":...}, so it
 * says health+json like them; for 405 and OPTIONS the methods allowed. */
#define ALLOWED "GET, HEAD, OPTIONS"

static struct MHD_Response *static_response(const char *body, unsigned code) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
  if (!r) return NULL;
  if (*body && MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE) != MHD_YES) {
    MHD_destroy_response(r);
    return NULL;
  }
  if (MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
      ((code == 405 || code == 204) &&
       MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, ALLOWED) != MHD_YES)) {
    MHD_destroy_response(r);
    return NULL;
  }
  return r;
}

int health__http_fixed_new(health_t *h) {
  h->http.resp_400 = static_response(
      "{\"status\":\"fail\",\"output\":\"bad request: a header name with white space, or not exactly one Host\"}\n",
      400);
  h->http.resp_404 = static_response("{\"status\":\"fail\",\"output\":\"not found\"}\n", 404);
  h->http.resp_405 = static_response(
      "{\"status\":\"fail\",\"output\":\"method not allowed: use GET or HEAD\"}\n", 405);
  h->http.resp_413 =
      static_response("{\"status\":\"fail\",\"output\":\"request body not allowed\"}\n", 413);
  h->http.resp_501 =
      static_response("{\"status\":\"fail\",\"output\":\"method not implemented\"}\n", 501);
  h->http.resp_options = static_response("", 204);
  return h->http.resp_400 && h->http.resp_404 && h->http.resp_405 && h->http.resp_413 &&
                 h->http.resp_501 && h->http.resp_options
             ? 0
             : -1;
}

void health__http_fixed_free(health_t *h) {
  struct MHD_Response **fixed[] = {&h->http.resp_400, &h->http.resp_404, &h->http.resp_405,
                                   &h->http.resp_413, &h->http.resp_501, &h->http.resp_options};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    if (*fixed[i]) MHD_destroy_response(*fixed[i]);
    *fixed[i] = NULL;
  }
}
