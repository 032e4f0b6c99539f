/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist.c - the distribution layer's public API (dist.h): creating and freeing a
 * gr_dist, the dist thread and its event loop, the command queue through which
 * other threads reach it, nodeup/nodedown notifications, counters, and the
 * graceful stop.
 *
 * Design notes
 * - Other threads never touch the event base. They append a dist_cmd to a
 *   mutex-protected FIFO and write an eventfd that the dist thread watches (a
 *   plain fd needs no libevent thread support, which would be process-global
 *   state). Every accepted command is completed exactly once: by the dist thread,
 *   or - when it arrives after the loop ended - by gr_dist_stop, which drains the
 *   queue after joining the thread (calls and joins answered GR_ESTOPPED).
 * - The member snapshot and the monitor list are copies under pub_lock, so
 *   gr_dist_members and gr_dist_monitor_nodes never wait on the loop.
 * - Counters are relaxed atomics: each is exact, a snapshot across them is not.
 * - The loop has three priorities: commands, then I/O and timers, then one flush
 *   event that seals each link's batches once per iteration and frees closed
 *   connections (never inside their own callbacks).
 * - libevent runs every active callback of a priority before it looks at the
 *   timers again, and a timer (the detector's tick) becomes active only then:
 *   a node with 99 new links ready at once would run all of their handshake
 *   steps and member lists - each little, all of them long on a loaded
 *   machine - before its heartbeats. The
 *   base is therefore made to look again after DIST_DISPATCH_MAX_CB I/O
 *   callbacks or DIST_DISPATCH_MAX_US (event_config_set_max_dispatch_interval):
 *   the tick, at the commands' priority, then runs next.
 * - Graceful stop: close the listener, answer outgoing calls GR_ESTOPPED, queue a
 *   Leave on every member link, flush, half-close each link once its output is
 *   written and wait for the peer's close - or for the deadline, whichever comes
 *   first - then close everything and leave the loop.
 */
#include "dist/dist_int.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/runnable.h"
#include "util/slice.h"

#include <errno.h>
#include <msgpack.h>
#include <signal.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

uint64_t gr_dist_now_us(void)
{
    return gr_clock_us();
}

uint64_t gr_dist_now_ms(void)
{
    return gr_clock_ms();
}

/* ---- messages to pids ---------------------------------------------------------- */

/* Send the packed buffer to `to`. 0 or the send error. */
static int send_sbuf(gr_dist *d, girder_pid to, msgpack_sbuffer *sb)
{
    girder_msg *m = girder_msg_new(sb->data, sb->size);
    int r;

    msgpack_sbuffer_destroy(sb);
    if (m == NULL) {
        return -ENOMEM;
    }
    if ((r = gr_rt_send(d->rt, to, m)) < 0) {
        girder_msg_unref(m);
    }
    return r;
}

static void monitors_drop(gr_dist *d, girder_pid pid)
{
    pthread_mutex_lock(&d->pub_lock);
    for (size_t i = 0; i < d->nmonitors; i++) {
        if (girder_pid_eq(d->monitors[i], pid)) {
            d->monitors[i] = d->monitors[--d->nmonitors];
            break;
        }
    }
    pthread_mutex_unlock(&d->pub_lock);
}

/* ["nodeup", node] or ["nodedown", node, reason] to every subscriber. */
static void notify(gr_dist *d, const char *what, const char *node, const char *reason)
{
    girder_pid *pids;
    size_t n;

    pthread_mutex_lock(&d->pub_lock);
    n = d->nmonitors;
    pids = n ? malloc(n * sizeof(*pids)) : NULL;
    if (pids) {
        memcpy(pids, d->monitors, n * sizeof(*pids));
    }
    pthread_mutex_unlock(&d->pub_lock);
    if (pids == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, reason ? 3 : 2);
        gr_term_pack_cstr(&pk, what);
        gr_term_pack_cstr(&pk, node);
        if (reason) {
            gr_term_pack_cstr(&pk, reason);
        }
        if (send_sbuf(d, pids[i], &sb) < 0) {
            monitors_drop(d, pids[i]);
        }
    }
    free(pids);
}

void gr_dist_notify_up(gr_dist *d, const char *node)
{
    gr_log_fields(GR_LOG_INFO, DIST_LOG, (gr_log_field[]){{"event", "nodeup"}, {"peer", node}}, 2,
                  "nodeup %s", node);
    notify(d, "nodeup", node, NULL);
}

void gr_dist_notify_down(gr_dist *d, const char *node, const char *reason)
{
    gr_log_fields(GR_LOG_INFO, DIST_LOG,
                  (gr_log_field[]){{"event", "nodedown"}, {"peer", node}, {"reason", reason}}, 3,
                  "nodedown %s (%s)", node, reason);
    DIST_CTR_ADD(d, nodedowns, 1);
    notify(d, "nodedown", node, reason);
}

/* ["$join", tag, status] */
static void answer_join(gr_dist *d, girder_pid to, uint64_t tag, int status)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    gr_term_pack_cstr(&pk, "$join");
    msgpack_pack_uint64(&pk, tag);
    msgpack_pack_int(&pk, status);
    (void)send_sbuf(d, to, &sb);
}

void gr_dist_answer_join(gr_dist *d, girder_pid to, uint64_t tag, int status)
{
    answer_join(d, to, tag, status);
}

/* ["$forget", tag, status] */
void gr_dist_answer_forget(gr_dist *d, girder_pid to, uint64_t tag, int status)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    gr_term_pack_cstr(&pk, "$forget");
    msgpack_pack_uint64(&pk, tag);
    msgpack_pack_int(&pk, status);
    (void)send_sbuf(d, to, &sb);
}

/* ---- command queue -------------------------------------------------------------- */

void gr_dist_cmd_free(dist_cmd *c)
{
    if (c) {
        girder_msg_unref(c->payload);
        free(c->module);
        free(c->function);
        free(c);
    }
}

dist_cmd *gr_dist_cmd_new(int kind, size_t len)
{
    /* only the header is zeroed: data may be large (a 64 MiB signal) */
    dist_cmd *c = malloc(sizeof(*c) + len);

    if (c) {
        memset(c, 0, sizeof(*c));
        c->kind = kind;
        c->len = len;
    }
    return c;
}

void gr_dist_wake(gr_dist *d)
{
    uint64_t one = 1;
    ssize_t w;

    /* The loop polls the queues while it spins (see dist_main): only a loop that
     * may block needs the eventfd. The exchange pairs with dist_main's store of
     * sleeping = 1 and re-check of the queues, so a push is never missed. */
    if (atomic_load_explicit(&d->self, memory_order_relaxed) == (unsigned long)pthread_self()) {
        return; /* the loop itself (an inline rpc's reply): it runs the queue next pass */
    }
    if (atomic_exchange(&d->sleeping, 0) == 0) {
        return;
    }
    do {
        w = write(d->wake_fd, &one, sizeof(one));
    } while (w < 0 && errno == EINTR);
    /* EAGAIN: the counter is already non-zero, the loop will wake */
}

/* Queue c (taken). force: even after stop was requested (the stop itself).
 * 0 or GR_ESTOPPED (c freed). */
static int cmd_push(gr_dist *d, dist_cmd *c, bool force)
{
    pthread_mutex_lock(&d->cmd_lock);
    if (!force && atomic_load(&d->stopped)) {
        pthread_mutex_unlock(&d->cmd_lock);
        gr_dist_cmd_free(c);
        return GR_ESTOPPED;
    }
    if (d->cmd_tail) {
        d->cmd_tail->next = c;
    } else {
        d->cmd_head = c;
    }
    d->cmd_tail = c;
    pthread_mutex_unlock(&d->cmd_lock);
    gr_dist_wake(d);
    return 0;
}

int gr_dist_cmd_push(gr_dist *d, dist_cmd *c)
{
    return cmd_push(d, c, false);
}

static dist_cmd *cmd_take_all(gr_dist *d)
{
    dist_cmd *c;

    pthread_mutex_lock(&d->cmd_lock);
    c = d->cmd_head;
    d->cmd_head = d->cmd_tail = NULL;
    pthread_mutex_unlock(&d->cmd_lock);
    return c;
}

/* Complete a command the loop will never run. */
static void cmd_abandon(gr_dist *d, dist_cmd *c)
{
    if (c->kind == CMD_CALL) {
        gr_dist_rpc_answer_err(d, c->reply_to, c->tag, GR_ESTOPPED);
    } else if (c->kind == CMD_JOIN) {
        answer_join(d, c->reply_to, c->tag, GR_ESTOPPED);
    } else if (c->kind == CMD_FORGET) {
        gr_dist_answer_forget(d, c->reply_to, c->tag, GR_ESTOPPED);
    }
    gr_dist_cmd_free(c);
}

static void stop_begin(gr_dist *d, unsigned deadline_ms);

static void pause_wait(gr_dist *d)
{
    pthread_mutex_lock(&d->pub_lock);
    d->pause_held = true;
    pthread_cond_broadcast(&d->pub_cond); /* gr_dist_test_pause waits for it */
    while (d->paused) {
        pthread_cond_wait(&d->pub_cond, &d->pub_lock);
    }
    d->pause_held = false;
    pthread_mutex_unlock(&d->pub_lock);
}

static bool cmd_pending(gr_dist *d)
{
    bool r;

    pthread_mutex_lock(&d->cmd_lock);
    r = d->cmd_head != NULL || gr_dist_sigq_pending_locked(d);
    pthread_mutex_unlock(&d->cmd_lock);
    return r;
}

static void run_cmds(gr_dist *d)
{
    dist_cmd *c, *next;

    /* signals first, a slice of them (sigq.c): those queued before a stop go
     * out before its Leave (CMD_STOP takes the rest) */
    gr_dist_sigq_run(d, false);
    d->activity++;
    d->work++;
    for (c = cmd_take_all(d); c; c = next) {
        next = c->next;
        switch (c->kind) {
        case CMD_REPLY:
            gr_dist_rpc_reply_cmd(d, c);
            break;
        case CMD_CALL:
            if (d->stopping) {
                gr_dist_rpc_answer_err(d, c->reply_to, c->tag, GR_ESTOPPED);
            } else {
                gr_dist_rpc_call_cmd(d, c);
            }
            break;
        case CMD_JOIN:
            if (d->stopping) {
                answer_join(d, c->reply_to, c->tag, GR_ESTOPPED);
            } else {
                gr_dist_mem_join(d, c);
            }
            break;
        case CMD_FORGET:
            gr_dist_answer_forget(d, c->reply_to, c->tag,
                                  d->stopping ? GR_ESTOPPED : gr_dist_mem_forget(d, c->node));
            break;
        case CMD_STOP:
            gr_dist_sigq_run(d, true);
            stop_begin(d, c->timeout_ms);
            break;
        case CMD_PAUSE:
            pause_wait(d);
            break;
        case CMD_SIGNAL:
            if (gr_dist_signal_cmd(d, c)) {
                continue; /* the large lane keeps it */
            }
            break;
        }
        gr_dist_cmd_free(c);
    }
    /* What the commands queued goes out now, not after another poll of the
     * sockets: one syscall less between a process's send and the wire. The
     * flush event still runs (and finds little to do). */
    if (d->flush_pending) {
        gr_dist_conn_flush_all(d);
    }
}

/* wake_fd is watched edge-triggered and never read, as a scheduler's
 * (runtime/sched.c, on_wake): each write is an edge, one syscall less. */
static void on_cmd(evutil_socket_t fd, short what, void *arg)
{
    gr_dist *d = arg;

    (void)fd;
    (void)what;
    run_cmds(d);
}

/* ---- flush ------------------------------------------------------------------------ */

void gr_dist_schedule_flush(gr_dist *d)
{
    if (!d->flush_pending) {
        d->flush_pending = true;
        event_active(d->flush_ev, EV_TIMEOUT, 0);
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    gr_dist *d = arg;

    (void)fd;
    (void)what;
    d->flush_pending = false;
    gr_dist_conn_flush_all(d);
}

/* Large lanes: one more chunk each, at I/O priority, so that the small frames
 * and commands that arrived since the last chunk are flushed first. */
static void on_pump(evutil_socket_t fd, short what, void *arg)
{
    gr_dist *d = arg;

    (void)fd;
    (void)what;
    for (dist_conn *c = d->conns; c; c = c->next) {
        if (c->state == CONN_UP && gr_dist_large_pending(c)) {
            c->dirty = true;
        }
    }
    gr_dist_schedule_flush(d);
}

/* ---- graceful stop ---------------------------------------------------------------- */

static void stop_finish(gr_dist *d)
{
    dist_conn *c;

    while ((c = d->conns) != NULL) {
        gr_dist_conn_close(c, 0, NULL);
    }
    d->quit = true;
    event_base_loopbreak(d->base);
}

void gr_dist_stop_progress(gr_dist *d)
{
    if (d->stopping && d->conns == NULL) {
        d->quit = true;
        event_base_loopbreak(d->base);
    }
}

static void on_stop_deadline(evutil_socket_t fd, short what, void *arg)
{
    gr_dist *d = arg;

    (void)fd;
    (void)what;
    if (d->conns) {
        gr_info(DIST_LOG, "stop deadline reached: closing remaining links");
    }
    stop_finish(d);
}

static void stop_begin(gr_dist *d, unsigned deadline_ms)
{
    struct timeval tv = {deadline_ms / 1000, (deadline_ms % 1000) * 1000};
    dist_conn *c, *next;

    if (d->stopping) {
        return;
    }
    d->stopping = true;
    gr_dist_listen_stop(d);
    gr_dist_mem_fail_joins(d, GR_ESTOPPED);
    gr_dist_mem_stop_timers(d);
    gr_dist_disc_stop(d);
    for (c = d->conns; c; c = next) {
        next = c->next;
        gr_dist_rpc_conn_closed(c, GR_ESTOPPED);
        if (c->state != CONN_UP) {
            gr_dist_conn_close(c, 0, NULL);
        } else if (c->hidden) {
            /* answers already queued (node.leave's "ok") go out first; then
             * the client sees the end of the stream */
            gr_dist_conn_drain_close(c);
        }
    }
    gr_dist_mem_leave_all(d); /* marks the member links drained_close */
    d->stop_timer = evtimer_new(d->base, on_stop_deadline, d);
    if (d->stop_timer == NULL) {
        stop_finish(d);
        return;
    }
    evtimer_add(d->stop_timer, &tv);
    gr_dist_schedule_flush(d);
    gr_dist_stop_progress(d);
}

/* ---- the thread ------------------------------------------------------------------- */

bool gr_dist_spin_allowed(dist_spin *s, uint64_t now_us, uint64_t nivcsw, unsigned runnable)
{
    if (DIST_SPIN_US == 0 || now_us < s->off_until) {
        return false;
    }
    if (s->rebase || nivcsw == s->nivcsw || (runnable != 0 && runnable <= s->runnable_max)) {
        s->rebase = false;
        s->nivcsw = nivcsw;
        return true;
    }
    s->off_until = now_us + DIST_SPIN_OFF_US;
    s->rebase = true;
    s->offs++;
    return false;
}

/* The thread's involuntary context switches, or `dflt` if unknown. */
static uint64_t thread_nivcsw(uint64_t dflt)
{
    struct rusage ru;

    return getrusage(RUSAGE_THREAD, &ru) == 0 ? (uint64_t)ru.ru_nivcsw : dflt;
}

/* gr_dist_spin_allowed with the thread's figures: /proc/loadavg is read
 * (load_fd, util/runnable.h) only when the thread was preempted. */
static bool spin_allowed(gr_dist *d, int load_fd, uint64_t now)
{
    uint64_t nivcsw = thread_nivcsw(d->spin.nivcsw);
    unsigned runnable = 0;

    if (nivcsw != d->spin.nivcsw && load_fd >= 0) {
        (void)gr_runnable_read(load_fd, &runnable); /* left 0 on failure: unknown */
    }
    return gr_dist_spin_allowed(&d->spin, now, nivcsw, runnable);
}

static void *dist_main(void *arg)
{
    gr_dist *d = arg;
    dist_conn *c;
    int load_fd = gr_runnable_open(); /* < 0: any preemption turns the spin off */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    atomic_store_explicit(&d->self, (unsigned long)pthread_self(), memory_order_relaxed);
    d->spin.rebase = true;
    d->spin.runnable_max = (unsigned)(cpus > 0 ? cpus : 1) + DIST_SPIN_OWN;
    (void)gr_thread_slice_set(GR_THREAD_SLICE_NS); /* see util/slice.h */
    for (dist_member *m = d->members; m; m = m->next) {
        gr_dist_mem_dial(d, m);
    }
    /* The loop spins for a short while after any work before it blocks: a
     * request/answer exchange then finds the thread awake, which saves the
     * eventfd write of the producer and the wake-up of this thread (tens of
     * microseconds each on a virtual machine), the same trade Erlang's
     * schedulers make with their busy wait. An idle node blocks.
     * Two refinements, each measured on 2 vCPUs with two nodes (remote
     * ping-pong, docs/benchmarks.md):
     * - The spin stops as soon as the loop has woken a sleeping scheduler
     *   (gr_rt_wakeups moved): the work is handed over, and a spinner then
     *   only holds a CPU the woken thread may need - the kernel places a
     *   wakee beside a spinner when no CPU is idle, and every wake-up then
     *   costs an interprocessor interrupt and a preemption. With the spin
     *   kept, round trips were bimodal (about half the runs at 90-190 us
     *   instead of 40); without it they hold at 39-47 us.
     * - It does not sched_yield: under the kernel's EEVDF scheduler the
     *   yielding spinner made the slow mode more frequent (even yielding
     *   every 8th or 32nd idle pass did). Every pass makes a syscall (the
     *   non-blocking poll), and a thread woken onto this CPU preempts the
     *   spinner.
     * - Except while a large message is sent or reassembled on some link:
     *   then every idle pass yields. The loop then idles in short gaps
     *   (waiting for fragment acknowledgements) between long stretches of
     *   work, and on a loaded machine a spinner that never yields there kept
     *   the small messages' threads waiting: cluster test l_bigmsg with both
     *   CPUs also busy compiling saw small round trips of 165-183 ms on the
     *   big message's link (bound 100 ms); yielding there: 17-29 ms.
     * - Not at all while the CPU is contended by others: once the thread
     *   has been preempted (its involuntary context switches moved since
     *   the last check) while more than CPUs + DIST_SPIN_OWN threads are
     *   runnable on the machine, now or on the one-minute average
     *   (util/runnable.h, read only then; gr_dist_spin_allowed), it blocks
     *   without spinning for DIST_SPIN_OFF_US, then tries again (counter
     *   spin_offs). A preemption with fewer runnable is the round trip's
     *   own: with two nodes on two CPUs the scheduler a spinner wakes
     *   preempts it at every round trip, and a gate on any preemption keeps
     *   the spin off on an idle machine too (there remote ping-pong ran at
     *   171 us, against 50 for a build from before that gate;
     *   docs/benchmarks.md, "Latency tails"). A spinner
     *   on a machine with more runnable threads than CPUs takes the CPU
     *   from the very threads it hands work to, and under the kernel's
     *   EEVDF scheduler its spent time also makes it wait longer when it
     *   is woken: with two nodes beside a parallel build (load 14-20 on 2
     *   CPUs) the remote ping-pong median was 262-498 us per round with the
     *   spin and 56-229 us with this gate, in the same runs (Erlang: 40-73;
     *   docs/benchmarks.md, "latency tails").
     * - Only after work: a wakeup that only read heartbeats or ran the
     *   detector's tick (d->work did not move) blocks at once. An idle node
     *   with 99 links hears about 400 heartbeats a second; a spin after each
     *   cost 40 ms of CPU a second (detect.c, docs/scaling.md). */
    uint64_t work_seen = d->work;

    while (!d->quit) {
        uint64_t now = gr_dist_now_us(), seen = d->activity, until = now;
        uint64_t wakeups = gr_rt_wakeups(d->rt);
        bool worked = d->work != work_seen;

        if (!worked) {
            /* liveness only: block (above) */
        } else if (now >= d->spin.off_until && spin_allowed(d, load_fd, now)) {
            until = now + DIST_SPIN_US;
        } else {
            __atomic_store_n(&d->ctr.spin_offs, d->spin.offs, __ATOMIC_RELAXED);
        }

        while (now < until && !d->quit) {
            if (cmd_pending(d)) {
                run_cmds(d);
            }
            event_base_loop(d->base, EVLOOP_NONBLOCK);
            now = gr_dist_now_us();
            if (gr_rt_wakeups(d->rt) != wakeups) {
                break; /* handed over: block (above) */
            }
            if (d->activity != seen) {
                seen = d->activity;
                until = now + DIST_SPIN_US;
            } else if (gr_dist_large_any(d)) {
                sched_yield(); /* see above: a fragment stream */
            }
        }
        if (d->quit) {
            break;
        }
        atomic_store(&d->sleeping, 1);
        if (cmd_pending(d)) {
            /* pushed while we were deciding to sleep, without a wake-up */
            atomic_store(&d->sleeping, 0);
            run_cmds(d);
            continue;
        }
        work_seen = d->work;
        event_base_loop(d->base, EVLOOP_ONCE);
        atomic_store(&d->sleeping, 0);
    }

    /* Loop over: whatever is left is closed quietly and freed here, on the
     * thread that owns it. */
    d->stopping = true;
    gr_dist_listen_stop(d);
    while ((c = d->conns) != NULL) {
        gr_dist_conn_close(c, 0, NULL);
    }
    gr_dist_conn_flush_all(d); /* frees d->dead */
    gr_dist_mem_fail_joins(d, GR_ESTOPPED);
    gr_dist_mem_stop_timers(d);
    gr_dist_disc_stop(d);
    gr_dist_mem_publish(d);
    if (load_fd >= 0) {
        close(load_fd);
    }
    return NULL;
}

/* ---- public API ------------------------------------------------------------------- */

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

int gr_dist_new(const gr_dist_config *cfg, gr_dist **ret_d)
{
    gr_dist *d;
    const char *at;
    int r;

    if (cfg == NULL || cfg->rt == NULL || cfg->name == NULL || cfg->cookie == NULL ||
        cfg->cookie->len == 0 || cfg->cookie->len > GR_COOKIE_MAX ||
        (cfg->observer_key != NULL && cfg->observer_key->len > GR_COOKIE_MAX) ||
        cfg->n_accept > GR_HANDSHAKE_ACCEPT_MAX || (cfg->n_accept && cfg->accept == NULL) ||
        (cfg->nseeds && cfg->seeds == NULL)) {
        return -EINVAL;
    }
    if ((r = gr_nodename_check(cfg->name, strlen(cfg->name))) < 0) {
        return r;
    }
    if (cfg->detection_ms != 0 && cfg->detection_ms < GR_DIST_DETECTION_MIN_MS) {
        return -EINVAL;
    }
    if (cfg->listen_host && strlen(cfg->listen_host) > GR_DIST_HOST_MAX) {
        return -EINVAL;
    }
    for (size_t i = 0; i < cfg->nseeds; i++) {
        const gr_dist_seed *s = &cfg->seeds[i];

        if (s->node == NULL || gr_nodename_check(s->node, strlen(s->node)) < 0) {
            return GR_EBADNODE;
        }
        if (s->host == NULL || s->host[0] == '\0' || strlen(s->host) > GR_DIST_HOST_MAX ||
            s->port == 0) {
            return -EINVAL;
        }
    }
    if ((d = calloc(1, sizeof(*d))) == NULL) {
        return -ENOMEM;
    }
    d->rt = cfg->rt;
    strcpy(d->name, cfg->name);
    d->creation = cfg->creation;
    d->cookie = *cfg->cookie;
    if (cfg->observer_key != NULL) {
        d->observer_key = *cfg->observer_key;
    }
    at = strchr(d->name, '@');
    snprintf(d->listen_host, sizeof(d->listen_host), "%s",
             cfg->listen_host && cfg->listen_host[0] ? cfg->listen_host : at + 1);
    if (strcmp(d->listen_host, "0.0.0.0") == 0 || strcmp(d->listen_host, "::") == 0) {
        snprintf(d->adv_host, sizeof(d->adv_host), "%s", at + 1);
    } else {
        snprintf(d->adv_host, sizeof(d->adv_host), "%s", d->listen_host);
    }
    d->listen_port = cfg->listen_port;
    d->detection_ms = cfg->detection_ms ? cfg->detection_ms : GR_DIST_DETECTION_DEFAULT_MS;
    gr_fd_params_init(&d->fd, d->detection_ms);
    d->ciphers = cfg->chacha_only ? 0 : 1u << GR_CIPHER_AES128_OCB;
    d->out_high = cfg->out_high_bytes ? cfg->out_high_bytes : GR_DIST_OUT_HIGH_DEFAULT;
    d->rpc_fn = cfg->rpc_fn;
    d->rpc_ud = cfg->rpc_ud;
    gr_dist_admit_init(d, cfg);
    d->listen_fd = -1;
    d->wake_fd = -1;
    d->next_conn_id = 1;
    d->next_ref = 1;
    pthread_mutex_init(&d->cmd_lock, NULL);
    pthread_mutex_init(&d->pub_lock, NULL);
    pthread_mutex_init(&d->cookie_lock, NULL);
    pthread_cond_init(&d->pub_cond, NULL);
    if ((r = gr_dist_set_cookies(d, cfg->cookie, cfg->accept, cfg->n_accept)) < 0) {
        gr_dist_free(d);
        return r;
    }
    if ((r = gr_dist_protos_init(d)) < 0) {
        gr_dist_free(d);
        return r;
    }
    if (cfg->nseeds) {
        d->seeds = calloc(cfg->nseeds, sizeof(*d->seeds));
        if (d->seeds == NULL) {
            gr_dist_free(d);
            return -ENOMEM;
        }
        d->nseeds = cfg->nseeds;
        for (size_t i = 0; i < cfg->nseeds; i++) {
            d->seeds[i].port = cfg->seeds[i].port;
            d->seeds[i].node = dupstr(cfg->seeds[i].node);
            d->seeds[i].host = dupstr(cfg->seeds[i].host);
            if (d->seeds[i].node == NULL || d->seeds[i].host == NULL) {
                gr_dist_free(d);
                return -ENOMEM;
            }
        }
    }
    if ((r = gr_dist_disc_new(d, cfg->discover, cfg->ndiscover, cfg->discover_ms)) < 0) {
        gr_dist_free(d);
        return r;
    }
    if ((d->stop_cmd = gr_dist_cmd_new(CMD_STOP, 0)) == NULL ||
        (d->rbuf = malloc(DIST_READ_CHUNK)) == NULL) {
        gr_dist_free(d);
        return -ENOMEM;
    }
    if ((r = gr_dist_mem_init(d)) < 0) {
        gr_dist_free(d);
        return r;
    }
    *ret_d = d;
    return 0;
}

struct event_base *gr_dist_base_new(void)
{
    struct timeval most = {0, DIST_DISPATCH_MAX_US};
    struct event_config *cfg = event_config_new();
    struct event_base *b = NULL;

    if (cfg == NULL) {
        return NULL;
    }
    if (event_config_set_max_dispatch_interval(cfg, &most, DIST_DISPATCH_MAX_CB, DIST_PRIO_IO) ==
        0) {
        b = event_base_new_with_config(cfg);
    }
    event_config_free(cfg);
    if (b != NULL && event_base_priority_init(b, DIST_NPRIO) < 0) {
        event_base_free(b);
        b = NULL;
    }
    return b;
}

int gr_dist_start(gr_dist *d)
{
    sigset_t all, old;
    int r;

    if (d == NULL || atomic_load(&d->started) || atomic_load(&d->stopped)) {
        return -EINVAL;
    }
    if ((r = gr_dist_listen_bind(d)) < 0) {
        return r;
    }
    if ((d->base = gr_dist_base_new()) == NULL) {
        r = -ENOMEM;
        goto fail;
    }
    if ((d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        r = -errno;
        goto fail;
    }
    d->cmd_ev = event_new(d->base, d->wake_fd, EV_READ | EV_PERSIST | EV_ET, on_cmd, d);
    d->flush_ev = event_new(d->base, -1, 0, on_flush, d);
    d->pump_ev = event_new(d->base, -1, 0, on_pump, d);
    if (d->cmd_ev == NULL || d->flush_ev == NULL || d->pump_ev == NULL) {
        r = -ENOMEM;
        goto fail;
    }
    event_priority_set(d->cmd_ev, DIST_PRIO_CMD);
    event_priority_set(d->flush_ev, DIST_PRIO_FLUSH);
    event_priority_set(d->pump_ev, DIST_PRIO_IO);
    event_add(d->cmd_ev, NULL);
    /* No resolv.conf (a bare container) still leaves IP literals working. */
    d->dns = evdns_base_new(d->base,
                            EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (d->dns == NULL) {
        d->dns = evdns_base_new(d->base, 0);
    }
    if ((r = gr_dist_listen_start(d)) < 0 || (r = gr_dist_disc_start(d)) < 0) {
        goto fail;
    }
    gr_dist_mem_publish(d);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits: SIGPIPE stays blocked */
    r = -pthread_create(&d->thread, NULL, dist_main, d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r < 0) {
        goto fail;
    }
    (void)pthread_setname_np(d->thread, "gr-dist"); /* ps -L, top -H, perf */
    atomic_store(&d->started, true);
    gr_info(DIST_LOG, "listening on %s:%u as %s", d->listen_host, (unsigned)atomic_load(&d->port),
            d->name);
    return 0;
fail:
    gr_dist_listen_stop(d);
    return r;
}

uint16_t gr_dist_port(const gr_dist *d)
{
    return atomic_load(&((gr_dist *)d)->port);
}

void gr_dist_stop(gr_dist *d, unsigned deadline_ms)
{
    dist_cmd *c, *next;

    if (d == NULL || atomic_exchange(&d->stopped, true)) {
        return;
    }
    if (!atomic_load(&d->started)) {
        return;
    }
    c = d->stop_cmd; /* allocated by gr_dist_new: stopping cannot fail */
    d->stop_cmd = NULL;
    c->timeout_ms = deadline_ms;
    cmd_push(d, c, true);
    gr_dist_test_pause(d, false);
    pthread_join(d->thread, NULL);
    atomic_store(&d->started, false);
    for (c = cmd_take_all(d); c; c = next) {
        next = c->next;
        cmd_abandon(d, c);
    }
    gr_info(DIST_LOG, "stopped");
}

gr_dist *gr_dist_free(gr_dist *d)
{
    dist_cmd *c, *next;

    if (d == NULL) {
        return NULL;
    }
    if (atomic_load(&d->started)) {
        gr_dist_stop(d, 0);
    }
    for (c = cmd_take_all(d); c; c = next) {
        next = c->next;
        cmd_abandon(d, c);
    }
    gr_dist_cmd_free(d->stop_cmd);
    gr_dist_sigq_free(d);
    gr_dist_listen_stop(d);
    gr_dist_mem_free_all(d);
    if (d->stop_timer) {
        event_free(d->stop_timer);
    }
    if (d->cmd_ev) {
        event_free(d->cmd_ev);
    }
    if (d->flush_ev) {
        event_free(d->flush_ev);
    }
    if (d->pump_ev) {
        event_free(d->pump_ev);
    }
    gr_dist_admit_free(d);
    gr_dist_repl_free(d);
    gr_dist_fd_free(d);
    gr_dist_disc_free(d);
    if (d->dns) {
        evdns_base_free(d->dns, 1);
    }
    if (d->base) {
        event_base_free(d->base);
    }
    if (d->wake_fd >= 0) {
        close(d->wake_fd);
    }
    for (size_t i = 0; i < d->nseeds; i++) {
        free((char *)d->seeds[i].node);
        free((char *)d->seeds[i].host);
    }
    free(d->seeds);
    free(d->pub_members);
    free(d->monitors);
    free(d->rbuf);
    gr_cookie_wipe(&d->cookie);
    gr_cookie_wipe(&d->observer_key);
    for (size_t i = 0; i < GR_HANDSHAKE_ACCEPT_MAX; i++) {
        gr_cookie_wipe(&d->accept[i]);
    }
    pthread_mutex_destroy(&d->cookie_lock);
    pthread_cond_destroy(&d->pub_cond);
    pthread_mutex_destroy(&d->pub_lock);
    pthread_mutex_destroy(&d->cmd_lock);
    free(d);
    return NULL;
}

int gr_dist_reply(gr_dist *d, uint64_t conn, uint64_t ref, int status, const void *result,
                  size_t len)
{
    dist_cmd *c;

    if (status > 0) {
        return -EINVAL;
    }
    if (status < 0 || result == NULL) {
        len = 0;
    }
    if ((c = gr_dist_cmd_new(CMD_REPLY, len)) == NULL) {
        return -ENOMEM;
    }
    c->conn = conn;
    c->ref = ref;
    c->status = status;
    if (len) {
        memcpy(c->data, result, len);
    }
    return cmd_push(d, c, false) == 0 ? 0 : GR_ENOCONN;
}

int gr_dist_call(gr_dist *d, const char *node, const char *module, const char *function,
                 const void *args, size_t len, unsigned timeout_ms, girder_pid reply_to,
                 uint64_t tag)
{
    dist_cmd *c;

    if (node == NULL || gr_nodename_check(node, strlen(node)) < 0) {
        return GR_EBADNODE;
    }
    if (module == NULL || function == NULL || module[0] == '\0' || function[0] == '\0' ||
        (len && args == NULL)) {
        return -EINVAL;
    }
    if (atomic_load(&d->stopped) || !atomic_load(&d->started)) {
        return GR_ESTOPPED;
    }
    if ((c = gr_dist_cmd_new(CMD_CALL, len)) == NULL) {
        return -ENOMEM;
    }
    strcpy(c->node, node);
    c->module = strdup(module);
    c->function = strdup(function);
    if (c->module == NULL || c->function == NULL) {
        gr_dist_cmd_free(c);
        return -ENOMEM;
    }
    if (len) {
        memcpy(c->data, args, len);
    }
    c->timeout_ms = timeout_ms;
    c->reply_to = reply_to;
    c->tag = tag;
    return cmd_push(d, c, false);
}

int gr_dist_join(gr_dist *d, const char *node, const char *host, uint16_t port, unsigned timeout_ms,
                 girder_pid reply_to, uint64_t tag)
{
    dist_cmd *c;

    if (node == NULL || gr_nodename_check(node, strlen(node)) < 0) {
        return GR_EBADNODE;
    }
    if (host == NULL || host[0] == '\0' || strlen(host) > GR_DIST_HOST_MAX || port == 0) {
        return -EINVAL;
    }
    if (atomic_load(&d->stopped) || !atomic_load(&d->started)) {
        return GR_ESTOPPED;
    }
    if ((c = gr_dist_cmd_new(CMD_JOIN, 0)) == NULL) {
        return -ENOMEM;
    }
    strcpy(c->node, node);
    strcpy(c->host, host);
    c->port = port;
    c->timeout_ms = timeout_ms;
    c->reply_to = reply_to;
    c->tag = tag;
    return cmd_push(d, c, false);
}

int gr_dist_forget(gr_dist *d, const char *node, girder_pid reply_to, uint64_t tag)
{
    dist_cmd *c;

    if (node == NULL || gr_nodename_check(node, strlen(node)) < 0) {
        return GR_EBADNODE;
    }
    if (atomic_load(&d->stopped) || !atomic_load(&d->started)) {
        return GR_ESTOPPED;
    }
    if ((c = gr_dist_cmd_new(CMD_FORGET, 0)) == NULL) {
        return -ENOMEM;
    }
    strcpy(c->node, node);
    c->reply_to = reply_to;
    c->tag = tag;
    return cmd_push(d, c, false);
}

static int bad_cookie(const gr_cookie *c)
{
    return c == NULL || c->len == 0 || c->len > GR_COOKIE_MAX;
}

int gr_dist_set_cookies(gr_dist *d, const gr_cookie *cookie, const gr_cookie *accept,
                        size_t n_accept)
{
    if (bad_cookie(cookie) || n_accept > GR_HANDSHAKE_ACCEPT_MAX ||
        (n_accept > 0 && accept == NULL)) {
        return -EINVAL;
    }
    for (size_t i = 0; i < n_accept; i++) {
        if (bad_cookie(&accept[i])) {
            return -EINVAL;
        }
    }
    pthread_mutex_lock(&d->cookie_lock);
    d->cookie = *cookie;
    for (size_t i = 0; i < GR_HANDSHAKE_ACCEPT_MAX; i++) {
        if (i < n_accept) {
            d->accept[i] = accept[i];
        } else {
            gr_cookie_wipe(&d->accept[i]);
        }
    }
    d->n_accept = n_accept;
    pthread_mutex_unlock(&d->cookie_lock);
    return 0;
}

void gr_dist_limits_get(gr_dist *d, gr_dist_limits *ret)
{
    uint64_t qmax = 0;

    memset(ret, 0, sizeof(*ret));
    pthread_mutex_lock(&d->pub_lock);
    ret->members = d->pub_nmembers;
    for (size_t i = 0; i < d->pub_nmembers; i++) {
        uint32_t idx = 0;
        uint64_t q;

        if (d->pub_members[i].state != GR_DIST_UP ||
            gr_rt_node_intern_member(d->rt, d->pub_members[i].name, strlen(d->pub_members[i].name),
                                     &idx) < 0 ||
            idx >= GR_DIST_NODES_MAX) {
            continue;
        }
        q = atomic_load_explicit(&d->link_queued[idx], memory_order_relaxed) & ~DIST_QUEUED_BUSY;
        qmax = q > qmax ? q : qmax;
    }
    pthread_mutex_unlock(&d->pub_lock);
    ret->members_max = DIST_MEMBERS_MAX;
    ret->link_queued_max = qmax;
    ret->link_high = d->out_high;
}

const char *gr_dist_state_name(int state)
{
    switch (state) {
    case GR_DIST_SELF:
        return "self";
    case GR_DIST_UP:
        return "up";
    case GR_DIST_DOWN:
        return "down";
    default:
        return "left";
    }
}

int gr_dist_members(gr_dist *d, gr_dist_member **ret_members, size_t *ret_n)
{
    gr_dist_member *m;
    size_t n;

    pthread_mutex_lock(&d->pub_lock);
    n = d->pub_nmembers;
    m = malloc((n ? n : 1) * sizeof(*m));
    if (m && n) {
        memcpy(m, d->pub_members, n * sizeof(*m));
    }
    pthread_mutex_unlock(&d->pub_lock);
    if (m == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t idx = 0;
        uint64_t q;

        if (m[i].state != GR_DIST_UP ||
            gr_rt_node_intern_member(d->rt, m[i].name, strlen(m[i].name), &idx) < 0 ||
            idx >= GR_DIST_NODES_MAX) {
            continue;
        }
        q = atomic_load_explicit(&d->link_queued[idx], memory_order_relaxed);
        m[i].queued_bytes = q & ~DIST_QUEUED_BUSY;
        m[i].busy = (q & DIST_QUEUED_BUSY) != 0;
        m[i].max_rx_gap_ms = atomic_load_explicit(&d->rx_gap_max[idx], memory_order_relaxed);
        {
            dist_link_stats *ls = &d->link_stats[idx];
            uint64_t now = gr_dist_now_ms(),
                     heard = atomic_load_explicit(&ls->last_in_ms, memory_order_relaxed);

            m[i].bytes_in = atomic_load_explicit(&ls->bytes_in, memory_order_relaxed);
            m[i].bytes_out = atomic_load_explicit(&ls->bytes_out, memory_order_relaxed);
            m[i].frames_in = atomic_load_explicit(&ls->frames_in, memory_order_relaxed);
            m[i].frames_out = atomic_load_explicit(&ls->frames_out, memory_order_relaxed);
            m[i].rtt_us = atomic_load_explicit(&ls->rtt_us, memory_order_relaxed);
            m[i].srtt_us = atomic_load_explicit(&ls->srtt_us, memory_order_relaxed);
            m[i].heard_ms_ago = heard != 0 && now > heard ? now - heard : 0;
        }
    }
    *ret_members = m;
    *ret_n = n;
    return 0;
}

int gr_dist_monitor_nodes(gr_dist *d, girder_pid pid, bool on)
{
    int r = 0;

    pthread_mutex_lock(&d->pub_lock);
    if (on) {
        bool have = false;

        for (size_t i = 0; i < d->nmonitors; i++) {
            have |= girder_pid_eq(d->monitors[i], pid);
        }
        if (!have && d->nmonitors == d->capmonitors) {
            size_t cap = d->capmonitors ? d->capmonitors * 2 : 8;
            girder_pid *p = realloc(d->monitors, cap * sizeof(*p));

            if (p == NULL) {
                r = -ENOMEM;
            } else {
                d->monitors = p;
                d->capmonitors = cap;
            }
        }
        if (!have && r == 0) {
            d->monitors[d->nmonitors++] = pid;
        }
    } else {
        for (size_t i = 0; i < d->nmonitors; i++) {
            if (girder_pid_eq(d->monitors[i], pid)) {
                d->monitors[i] = d->monitors[--d->nmonitors];
                break;
            }
        }
    }
    pthread_mutex_unlock(&d->pub_lock);
    return r;
}

void gr_dist_counters_get(gr_dist *d, gr_dist_counters *ret)
{
#define LOAD(f) ret->f = __atomic_load_n(&d->ctr.f, __ATOMIC_RELAXED)
    LOAD(conns_accepted);
    LOAD(conns_dialled);
    LOAD(handshakes_ok);
    LOAD(handshakes_failed);
    LOAD(frames_in);
    LOAD(frames_out);
    LOAD(records_in);
    LOAD(records_out);
    LOAD(bytes_in);
    LOAD(bytes_out);
    LOAD(rpc_in);
    LOAD(rpc_out);
    LOAD(rpc_timeouts);
    LOAD(signals_in);
    LOAD(signals_out);
    LOAD(signals_lost);
    LOAD(large_queued_bytes);
    LOAD(sigq_bytes);
    LOAD(out_queued_bytes);
    LOAD(links_busy);
    LOAD(overloads);
    LOAD(overload_closes);
    LOAD(sigq_peak);
    LOAD(handshakes_refused);
    LOAD(handshakes_evicted);
    LOAD(spin_offs);
    LOAD(suspects);
    LOAD(suspects_cleared);
    LOAD(probe_reqs);
    LOAD(vouches);
    LOAD(dials_paced);
    LOAD(links_retired);
    LOAD(trims);
    LOAD(repl_skipped_busy);
    LOAD(nodedowns);
    LOAD(members_up);
#undef LOAD
}

void gr_dist_test_deaf(gr_dist *d, const char *node)
{
    gr_dist_test_pause(d, true); /* the thread holds: the name is not being read */
    snprintf(d->test_deaf, sizeof(d->test_deaf), "%s", node ? node : "");
    atomic_store(&d->test_deaf_on, node != NULL);
    gr_dist_test_pause(d, false);
}

void gr_dist_test_pause(gr_dist *d, bool on)
{
    dist_cmd *c;

    pthread_mutex_lock(&d->pub_lock);
    d->paused = on;
    if (!on) {
        pthread_cond_broadcast(&d->pub_cond);
    }
    pthread_mutex_unlock(&d->pub_lock);
    if (on && (c = gr_dist_cmd_new(CMD_PAUSE, 0)) != NULL) {
        cmd_push(d, c, true);
        /* returns once the thread holds: nothing it would have done after
         * this call (hand out signals, account a link) happens until resumed */
        pthread_mutex_lock(&d->pub_lock);
        while (d->paused && !d->pause_held && atomic_load(&d->started)) {
            pthread_cond_wait(&d->pub_cond, &d->pub_lock);
        }
        pthread_mutex_unlock(&d->pub_lock);
    }
}
