/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gr_test.h - the support library of the Check tests (girder_testsupport), in
 * the manner of nng's src/testing/nuts.h: what every test file would otherwise
 * write again.
 *
 *   - deadlines that scale with the build (sanitizers) and the machine's load,
 *     and waiting for a condition until such a deadline (never a fixed sleep);
 *   - running a suite (main) and declaring test cases with scaled timeouts;
 *   - terms: msgpack from JSON text, rpc argument arrays, map lookups, the
 *     ["error", Id] shape;
 *   - in gr_test_rt.h (link the runtime too): a runtime with N schedulers and
 *     a probe, calls to a process through the probe and their "$reply";
 *   - rpc answers captured from gr_rpc's reply hook, and waiting for one.
 *
 * Everything here runs on the test thread (Check's forked child) unless a
 * function says otherwise; failures are Check assertions, so a helper that
 * returns has succeeded. Tests assert orders of events and wide bounds, never
 * tight timings (docs/testing.md): a deadline here is only how long to wait
 * before calling the event lost.
 */
#ifndef GR_TEST_H
#define GR_TEST_H

#include <check.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- deadlines -------------------------------------------------------------------------- */

/* How much slower than an idle plain build this run may be: GR_TEST_SCALE
 * from the environment if set (1 to 100), else 3 under ASan/UBSan, 4 under
 * TSan, 1 otherwise, times the 1-minute load average per CPU rounded up
 * (at least 1, at most 4). Read again on every call. */
unsigned gr_test_scale(void);

/* base_ms times gr_test_scale(): how long to wait for an event that takes
 * well under base_ms on an idle machine. */
int gr_test_ms(int base_ms);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t gr_test_now_ms(void);

/* A deadline for a polling loop: gr_test_ms(base_ms) from now. */
typedef struct gr_test_deadline {
    int64_t end_ms; /* CLOCK_MONOTONIC */
    int pause_us;   /* the next pause, growing from 100 us to 10 ms */
} gr_test_deadline;

gr_test_deadline gr_test_deadline_in(int base_ms);

/* Pause briefly (growing back-off) and return true, or return false once the
 * deadline has passed. For conditions no event announces (a count another
 * thread updates); wait on the event itself when there is one. */
bool gr_test_deadline_wait(gr_test_deadline *dl);

/* Wait until `cond` holds, failing the test with the printf-style message
 * after gr_test_ms(base_ms). `cond` is evaluated again after every pause. */
#define gr_test_wait_until(cond, base_ms, ...)                                                     \
    do {                                                                                           \
        gr_test_deadline gr_dl_ = gr_test_deadline_in(base_ms);                                    \
        while (!(cond)) {                                                                          \
            ck_assert_msg(gr_test_deadline_wait(&gr_dl_), __VA_ARGS__);                            \
        }                                                                                          \
    } while (0)

/* ---- suites ---------------------------------------------------------------------------- */

/* Add to s a test case `name` with the fixture (either may be NULL) and a
 * timeout of timeout_s seconds (0: Check's default), which Check multiplies
 * by CK_TIMEOUT_MULTIPLIER (gr_test_run sets it from gr_test_scale). */
TCase *gr_test_tcase(Suite *s, const char *name, void (*setup)(void), void (*teardown)(void),
                     double timeout_s);

/* Add the tests (START_TEST names) to tc in order: gr_test_add(tc, a, b, c). */
#define gr_test_add(tc, ...) gr_test_add_list((tc), (const TTest *const[]){__VA_ARGS__, NULL})

/* Add each test of the NULL-terminated list to tc, in order. */
void gr_test_add_list(TCase *tc, const TTest *const *tests);

/* main(): set CK_TIMEOUT_MULTIPLIER to gr_test_scale() unless the environment
 * sets it, build the suite with make(), run it (CK_ENV: CK_VERBOSITY chooses, normal by default)
 * and free it. Returns EXIT_SUCCESS when no test failed, EXIT_FAILURE otherwise. */
int gr_test_run(Suite *(*make)(void));

/* ---- terms ----------------------------------------------------------------------------- */

/* Pack the JSON text (printf format) into sb as one msgpack term: objects
 * become maps, arrays arrays, strings str, integers int/uint, true/false/null
 * the same; no floats. Fails the test on bad JSON. */
void gr_test_sbuf_json(msgpack_sbuffer *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* An array of n arguments being packed (rpc args, requests). */
typedef struct gr_test_args {
    msgpack_sbuffer sb; /* the packed bytes */
    msgpack_packer pk;  /* packs into sb */
} gr_test_args;

/* A new builder holding the header of an n-element array; never NULL. */
gr_test_args *gr_test_args_new(uint32_t n);
void gr_test_args_str(gr_test_args *a, const char *s);
void gr_test_args_raw(gr_test_args *a, const msgpack_object *o);
/* NULL-safe; returns NULL. */
gr_test_args *gr_test_args_free(gr_test_args *a);

/* The value of key k in map o (o must be a map), or NULL. */
const msgpack_object *gr_test_map_get(const msgpack_object *o, const char *k);

/* o is ["error", id]. */
void gr_test_expect_error(const msgpack_object *o, const char *id);

/* ---- rpc answers ----------------------------------------------------------------------- */

#define GR_TEST_MAX_ANSWERS 4096

/* One answer gr_rpc gave through its reply hook. */
typedef struct gr_test_answer {
    uint64_t conn, ref; /* as dispatched */
    int status;         /* 0 or a negative error */
    uint8_t *term;      /* status 0: the result term (owned), else NULL */
    size_t len;         /* bytes of term */
} gr_test_answer;

/* The answers of one rpc instance, written by its worker threads under lock.
 * An entry never changes once counted in n, so a[i] may be read without the
 * lock for an i that was learnt under it (gr_test_answers_wait,
 * gr_test_answers_n); n itself only through those (a late answer may be
 * appended meanwhile). */
typedef struct gr_test_answers {
    pthread_mutex_t lock;                  /* guards a[] and n */
    pthread_cond_t cond;                   /* broadcast on every answer */
    gr_test_answer a[GR_TEST_MAX_ANSWERS]; /* in arrival order */
    size_t n;                              /* used entries of a[] */
} gr_test_answers;

#define GR_TEST_ANSWERS_INIT                                                                       \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {{0}}, 0                              \
    }

/* gr_rpc_config.reply_fn with reply_ud = the gr_test_answers: keeps a copy.
 * Any thread. */
int gr_test_answers_capture(void *ud, uint64_t conn, uint64_t ref, int status, const void *term,
                            size_t len);

/* Free the kept terms and forget every answer (a teardown). */
void gr_test_answers_clear(gr_test_answers *as);

/* Wait (gr_test_ms(base_ms)) for the answer to ref; returns its index. */
size_t gr_test_answers_wait(gr_test_answers *as, uint64_t ref, int base_ms);

/* How many answers there are so far, all refs. */
size_t gr_test_answers_n(gr_test_answers *as);

/* How many answers ref got so far. */
size_t gr_test_answers_count(gr_test_answers *as, uint64_t ref);

/* Unpack answer i (status must be 0) into up, which the caller destroys. */
const msgpack_object *gr_test_answers_term(gr_test_answers *as, size_t i, msgpack_unpacked *up);

#endif /* GR_TEST_H */
