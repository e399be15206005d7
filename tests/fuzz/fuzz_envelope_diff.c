/* libFuzzer driver: the envelope scanner (src/event.c) against jansson,
 * the parser it replaced (tests/tools/envelope_ref.c). For every input both
 * must accept or both refuse, and agree on the five fields byte for byte;
 * any difference aborts with both answers. */
#include "hb/fmacros.h"

#include "hb/event.h"
#include "envelope_ref.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void disagree(const char *what, const char *got, const char *want)
{
    fprintf(stderr, "envelope scanner and jansson disagree on %s: scanner %s%s%s, jansson %s%s%s\n",
            what, got ? "'" : "", got ? got : "NULL", got ? "'" : "", want ? "'" : "",
            want ? want : "NULL", want ? "'" : "");
    abort();
}

static void same_text(const char *what, const char *got, size_t got_len, const char *want)
{
    if (!got != !want || (got && (strcmp(got, want) != 0 || strlen(got) != got_len)))
        disagree(what, got, want);
}

static void same_int(const char *what, int64_t got, int64_t want)
{
    if (got != want) {
        char g[32], w[32];
        snprintf(g, sizeof(g), "%" PRId64, got);
        snprintf(w, sizeof(w), "%" PRId64, want);
        disagree(what, g, w);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hb_envelope_t env;
    ref_envelope_t ref;
    char why[256], ref_why[256];
    int rc = hb_envelope_parse((const char *)data, size, &env, why, sizeof(why));
    int ref_rc = ref_envelope_parse((const char *)data, size, &ref, ref_why, sizeof(ref_why));
    if (rc != ref_rc)
        disagree("accepting the body", rc ? why : "accepts", ref_rc ? ref_why : "accepts");
    if (rc == 0) {
        same_text("topic", env.topic, env.topic_len, ref.topic);
        same_text("app_id", env.app_id, env.app_id_len, ref.app_id);
        same_text("id", env.id, env.id_len, ref.id);
        same_int("delivery_attempts", env.delivery_attempts, ref.delivery_attempts);
        same_int("created_at", env.created_at, ref.created_at);
    } else if (env.topic || env.app_id || env.id || why[0] == '\0') {
        disagree("a refusal", "leaves fields set or gives no reason", ref_why);
    }
    hb_envelope_clear(&env);
    ref_envelope_clear(&ref);
    return 0;
}
