/* SPDX-License-Identifier: Apache-2.0 */
/*
 * port.c - ports (port.h): the behaviour "port" that makes an external program
 * a Girder process, the spawner thread that forks, kills and reaps programs,
 * and the rpc module `port` (list).
 *
 * Design notes
 * - A port's I/O lives on its process's scheduler: the program's stdout,
 *   stderr, stdin and pidfd are libevent events on that scheduler's base, so
 *   they run on the same thread as the process's callbacks and share its state
 *   without locks. An event callback has no girder_ctx, so work that needs one
 *   (sending what a frame asks) is handed to the process as a message to
 *   itself: "$port_io" (frames are waiting in the buffer), "$port_exit" (the
 *   program ended). While "$port_io" is pending, stdout is not read: a port
 *   that floods its stdout fills a pipe and its own buffer (one frame at most,
 *   max_frame + 64 KiB), not the node's memory.
 * - Bounded: a frame's length is checked against max_frame from its header
 *   before anything is buffered for it (frame.c); bytes queued for stdin are
 *   capped at GR_PORT_QUEUE_MAX (a program that stops reading is stopped, with
 *   reason "port_overflow"); outstanding calls each way at GR_PORT_CALLS_MAX.
 * - Spawning: fork from the spawner thread only. PR_SET_PDEATHSIG fires when
 *   the thread that forked ends, so that thread lives as long as gr_ports;
 *   the child sets it, then checks getppid() (the parent may already be gone),
 *   makes its own process group, unblocks every signal (girderd blocks
 *   SIGTERM & co. in all threads) and execs. An exec failure comes back
 *   through a close-on-exec pipe as errno.
 * - A child record is shared by the port process and the spawner (refcount,
 *   ps->lock): if the port process dies before its program is started, the
 *   spawner finds `orphaned` and kills what it started.
 * - Per message, bytes are copied, not unpacked and packed again: a message
 *   for the program is validated and queued behind the 12-byte head of
 *   [2, "message", [...]] (maybe_tagged sends what might be the port's own
 *   "$call", "$reply", "DOWN"... the general way), and a [2, "send", [Pid,
 *   Term]] frame becomes one message of Term's bytes (send_pid_frame). A
 *   msgpack zone and an 8 KiB sbuffer each way per message were a third of
 *   girderd's time in bench/run --ports (docs/benchmarks.md).
 * - Ending: the port process closes the program's stdin and hands its pidfd
 *   to the spawner's dying list: SIGTERM to the group at kill_timeout / 2,
 *   SIGKILL at kill_timeout, reaped as soon as the pidfd is readable; then
 *   SIGKILL to the group, for anything the program left behind.
 */
#include "port/port.h"

#include "port/frame.h"
#include "proto/err.h"
#include "proto/term.h"
#include "pubsub/pubsub.h"
#include "rpc/rpc_int.h"
#include "runtime/rt.h"
#include "util/log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define IO_ATOM "$port_io"
#define STARTED_ATOM "$port_started"
#define FLUSH_ATOM "$port_flush" /* write what send_frame queued (one write per batch) */
#define EXIT_TAG "$port_exit"
#define CALL_TIMEOUT_TAG "$port_call_timeout"
#define READ_CHUNK 65536
#define FRAMES_PER_TURN 256 /* frames handled per message turn, then yield */
#define BYTES_PER_TURN                                                                             \
    (256u << 10)          /* payload bytes handled per turn, then yield (a turn that               \
                             sends to a busy port sends at most this much) */
#define ERR_LINE_MAX 4096 /* a longer stderr line is logged in pieces */
#define ARGS_MAX 1024     /* program arguments */
#define DYING_MAX 4096    /* programs being killed at once */
#define NAME_MAX_LEN 255  /* registered name */

/* Message kinds of the port protocol (msgpack-RPC). */
#define MSG_REQUEST 0
#define MSG_RESPONSE 1
#define MSG_NOTIFY 2

typedef enum child_state { CH_QUEUED, CH_RUNNING, CH_FAILED } child_state;

/* A program, shared by its port process and the spawner. Guarded by ps->lock. */
typedef struct child {
    int refs;                         /* port process + spawner queue */
    child_state state;                /* set by the spawner */
    bool orphaned;                    /* the port process ended first: spawner cleans up */
    int err;                          /* CH_FAILED: why (-errno) */
    pid_t ospid;                      /* the program (and its process group) */
    int pidfd, in_fd, out_fd, err_fd; /* the port's ends; -1 when none */
    char **argv;                      /* NULL-terminated, owned */
    girder_pid port;                  /* who to tell */
    struct child *next;               /* spawn queue */
} child;

/* A program being stopped (spawner only). */
typedef struct dying {
    int pidfd;
    pid_t pgid;
    uint64_t term_at, kill_at; /* CLOCK_MONOTONIC ms; 0 = done */
} dying;

typedef struct portent {
    girder_pid pid;
    pid_t ospid;
    char name[NAME_MAX_LEN + 1];
    char cmd[256];
    struct portent *next;
} portent;

struct gr_ports {
    girder_behaviour beh; /* "port" (first: the process finds its gr_ports) */
    girder_rt *rt;
    gr_rpc *rpc;
    pthread_mutex_t lock; /* guards queue, dying_in, stop, the children, ports */
    child *queue;         /* spawn requests, oldest first */
    child **queue_tail;
    dying *dying_in; /* kill requests handed over (array, ndying_in) */
    size_t ndying_in, cap_dying_in;
    bool stop;
    int wake[2]; /* pipe: wakes the spawner's poll */
    pthread_t thread;
    bool thread_started;
    portent *ports; /* live port processes (port.list) */
    gr_rpc_fn_def fns[1];
    struct fnname {
        char name[8];
        gr_ports *ps;
    } fnnames[1];
    gr_rpc_module mod;
    bool mod_added;
};

/* One outstanding call from the node to the program (a "$call" received). */
typedef struct incall {
    uint32_t id; /* msgid sent to the program; 0 = free */
    girder_pid from;
    girder_ref ref;
} incall;

/* One outstanding rpc from the program (request "rpc"). */
typedef struct rpccall {
    uint64_t tag;   /* the "$rpc" answer's tag; 0 = free */
    uint64_t msgid; /* the program's msgid */
} rpccall;

/* One outstanding call from the program (request "call"). */
typedef struct outcall {
    uint64_t msgid; /* the program's msgid */
    girder_ref ref; /* the girder_call's ref; id 0 = free */
    girder_ref tref;
} outcall;

typedef struct port {
    gr_ports *ps;
    girder_rt *rt;
    girder_pid self;
    child *ch;
    char name[NAME_MAX_LEN + 1]; /* registered name, or the command's base name */
    char logname[NAME_MAX_LEN + 8];
    uint32_t kill_timeout_ms;
    uint32_t max_frame;
    uint32_t busy_high, busy_low; /* the busy marks (bytes queued for stdin) */
    bool dead; /* the program exited, failed to start or closed its stdin: drop output */
    struct event *ev_out, *ev_err, *ev_in, *ev_exit;
    uint8_t *rbuf; /* stdout bytes not yet handled */
    size_t rlen, rcap;
    bool io_pending; /* "$port_io" on its way: stdout not watched */
    bool out_eof;
    char ebuf[ERR_LINE_MAX]; /* partial stderr line */
    size_t elen;
    uint8_t *wbuf; /* bytes for stdin */
    size_t wlen, woff, wcap;
    bool flush_pending;    /* "$port_flush" on its way: stdin written when it arrives */
    girder_msg *io_msg;    /* "$port_io", sent to itself by reference */
    girder_msg *flush_msg; /* "$port_flush", likewise */
    bool busy;             /* above busy_high: marked busy (gr_rt_proc_busy) */
    incall in[GR_PORT_CALLS_MAX];
    size_t nin;
    uint32_t next_in;
    outcall out[GR_PORT_CALLS_MAX];
    size_t nout;
    rpccall rpcs[GR_PORT_CALLS_MAX];
    size_t nrpc;
    uint64_t next_tag; /* of "$rpc" answers */
    int exit_kind;     /* 0 none, 1 exited (code), 2 signal */
    int exit_code;
    girder_msg *fail; /* reason to stop with after a protocol error */
} port;

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void child_unref_locked(child *ch)
{
    if (--ch->refs > 0) {
        return;
    }
    close_fd(&ch->in_fd);
    close_fd(&ch->out_fd);
    close_fd(&ch->err_fd);
    close_fd(&ch->pidfd);
    for (char **a = ch->argv; a && *a; a++) {
        free(*a);
    }
    free(ch->argv);
    free(ch);
}

/* ---- the spawner thread ------------------------------------------------------------------- */

static void wake_spawner(gr_ports *ps)
{
    ssize_t n = write(ps->wake[1], "x", 1);

    (void)n; /* a full pipe is awake already */
}

/* fork + exec ch->argv with pipes. Spawner thread. 0 or -errno. */
static int start_program(child *ch)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1};
    pid_t parent = getpid(), pid;
    int e = 0, r;
    ssize_t n;

    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
        pipe2(st, O_CLOEXEC) < 0) {
        r = -errno;
        goto fail;
    }
    if ((pid = fork()) < 0) {
        r = -errno;
        goto fail;
    }
    if (pid == 0) { /* the child: async-signal-safe calls only until exec */
        sigset_t none;

        (void)setpgid(0, 0);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent) {
            _exit(127); /* girderd is gone already */
        }
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        (void)signal(SIGPIPE, SIG_DFL);
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) {
            e = errno;
        } else {
            (void)close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);
            execvp(ch->argv[0], ch->argv);
            e = errno;
        }
        n = write(st[1], &e, sizeof(e));
        (void)n;
        _exit(127);
    }
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&err[1]);
    close_fd(&st[1]);
    n = read(st[0], &e, sizeof(e)); /* EOF at exec; errno if exec failed */
    close_fd(&st[0]);
    if (n == (ssize_t)sizeof(e)) {
        (void)waitpid(pid, NULL, 0);
        r = -e;
        goto fail;
    }
    ch->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (ch->pidfd < 0) {
        r = -errno;
        kill(-pid, SIGKILL);
        (void)waitpid(pid, NULL, 0);
        goto fail;
    }
    (void)fcntl(ch->pidfd, F_SETFD, FD_CLOEXEC);
    (void)fcntl(in[1], F_SETFL, O_NONBLOCK);
    (void)fcntl(out[0], F_SETFL, O_NONBLOCK);
    (void)fcntl(err[0], F_SETFL, O_NONBLOCK);
    ch->ospid = pid;
    ch->in_fd = in[1];
    ch->out_fd = out[0];
    ch->err_fd = err[0];
    return 0;
fail:
    close_fd(&in[0]);
    close_fd(&in[1]);
    close_fd(&out[0]);
    close_fd(&out[1]);
    close_fd(&err[0]);
    close_fd(&err[1]);
    close_fd(&st[0]);
    close_fd(&st[1]);
    return r;
}

/* Add a program to the dying list (spawner's own array). */
static int dying_add(dying **arr, size_t *n, size_t *cap, dying d)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        dying *g;

        if (nc > DYING_MAX || !(g = realloc(*arr, nc * sizeof(*g)))) {
            return -ENOMEM;
        }
        *arr = g;
        *cap = nc;
    }
    (*arr)[(*n)++] = d;
    return 0;
}

static void *spawner_main(void *arg)
{
    gr_ports *ps = arg;
    dying *dy = NULL;
    size_t ndy = 0, cap = 0;

    for (;;) {
        struct pollfd pfd[1 + DYING_MAX];
        uint64_t now = mono_ms(), next = UINT64_MAX;
        child *todo;
        bool stop;
        char drain[64];
        int timeout;

        pthread_mutex_lock(&ps->lock);
        todo = ps->queue;
        ps->queue = NULL;
        ps->queue_tail = &ps->queue;
        for (size_t i = 0; i < ps->ndying_in; i++) {
            if (dying_add(&dy, &ndy, &cap, ps->dying_in[i]) < 0) {
                kill(-ps->dying_in[i].pgid, SIGKILL); /* no room to wait: kill now */
                (void)waitid(P_PIDFD, (id_t)ps->dying_in[i].pidfd, NULL, WEXITED);
                close(ps->dying_in[i].pidfd);
            }
        }
        ps->ndying_in = 0;
        stop = ps->stop;
        pthread_mutex_unlock(&ps->lock);

        while (todo) {
            child *ch = todo;
            int r;

            todo = ch->next;
            ch->next = NULL;
            r = stop ? GR_ESTOPPED : start_program(ch);
            pthread_mutex_lock(&ps->lock);
            if (r < 0) {
                ch->state = CH_FAILED;
                ch->err = r;
            } else if (ch->orphaned) {
                /* The port died meanwhile: stop what we started. */
                close_fd(&ch->in_fd);
                kill(-ch->ospid, SIGKILL);
                (void)dying_add(&dy, &ndy, &cap, (dying){ch->pidfd, ch->ospid, 1, 1});
                ch->pidfd = -1;
            } else {
                ch->state = CH_RUNNING;
            }
            if (!ch->orphaned) {
                girder_msg *m = girder_msg_atom(STARTED_ATOM);

                if (m && gr_rt_send(ps->rt, ch->port, m) < 0) {
                    girder_msg_unref(m);
                }
            }
            child_unref_locked(ch);
            pthread_mutex_unlock(&ps->lock);
        }

        if (stop) {
            for (size_t i = 0; i < ndy; i++) {
                kill(-dy[i].pgid, SIGKILL);
                (void)waitid(P_PIDFD, (id_t)dy[i].pidfd, NULL, WEXITED);
                close(dy[i].pidfd);
            }
            free(dy);
            return NULL;
        }

        pfd[0] = (struct pollfd){.fd = ps->wake[0], .events = POLLIN};
        for (size_t i = 0; i < ndy; i++) {
            if (dy[i].term_at && now >= dy[i].term_at) {
                kill(-dy[i].pgid, SIGTERM);
                dy[i].term_at = 0;
            }
            if (dy[i].kill_at && now >= dy[i].kill_at) {
                kill(-dy[i].pgid, SIGKILL);
                dy[i].kill_at = 0;
            }
            if (dy[i].term_at && dy[i].term_at < next) {
                next = dy[i].term_at;
            }
            if (dy[i].kill_at && dy[i].kill_at < next) {
                next = dy[i].kill_at;
            }
            pfd[1 + i] = (struct pollfd){.fd = dy[i].pidfd, .events = POLLIN};
        }
        timeout = next == UINT64_MAX ? -1 : (int)(next > now ? next - now : 0);
        if (poll(pfd, 1 + ndy, timeout) < 0 && errno != EINTR) {
            gr_error("port", "spawner poll: %s", strerror(errno));
        }
        if (pfd[0].revents & POLLIN) {
            while (read(ps->wake[0], drain, sizeof(drain)) > 0) {
            }
        }
        for (size_t i = ndy; i-- > 0;) {
            if (pfd[1 + i].revents & (POLLIN | POLLHUP | POLLERR)) {
                siginfo_t si = {0};

                if (waitid(P_PIDFD, (id_t)dy[i].pidfd, &si, WEXITED | WNOHANG) == 0 &&
                    si.si_pid == 0) {
                    continue; /* not yet */
                }
                kill(-dy[i].pgid, SIGKILL); /* whatever the program left in its group */
                close(dy[i].pidfd);
                dy[i] = dy[--ndy];
            }
        }
    }
}

/* Hand a running program to the spawner to be stopped. Any thread. */
static void hand_over(gr_ports *ps, int pidfd, pid_t pgid, uint32_t kill_timeout_ms)
{
    uint64_t now = mono_ms();
    dying d = {pidfd, pgid, now + kill_timeout_ms / 2, now + kill_timeout_ms};

    pthread_mutex_lock(&ps->lock);
    if (ps->ndying_in == ps->cap_dying_in) {
        size_t nc = ps->cap_dying_in ? ps->cap_dying_in * 2 : 16;
        dying *g = nc <= DYING_MAX ? realloc(ps->dying_in, nc * sizeof(*g)) : NULL;

        if (!g) {
            pthread_mutex_unlock(&ps->lock);
            kill(-pgid, SIGKILL);
            (void)waitid(P_PIDFD, (id_t)pidfd, NULL, WEXITED);
            close(pidfd);
            return;
        }
        ps->dying_in = g;
        ps->cap_dying_in = nc;
    }
    ps->dying_in[ps->ndying_in++] = d;
    pthread_mutex_unlock(&ps->lock);
    wake_spawner(ps);
}

/* ---- writing to the program ---------------------------------------------------------------- */

static void stop_with(port *p, const char *reason);
static void registry_set(gr_ports *ps, girder_pid pid, pid_t ospid, const char *name);

/* Mark the port busy (its senders are suspended after their turn) or not
 * (they resume). Scheduler thread of the port. */
static void set_busy(port *p, bool busy)
{
    if (p->busy == busy) {
        return;
    }
    if (gr_rt_proc_busy(p->rt, p->self, busy) < 0 && busy) {
        return; /* no room to record it: senders run on, the cap still holds */
    }
    p->busy = busy;
    gr_debug(p->logname, "%s (%zu bytes queued for stdin)", busy ? "busy" : "no longer busy",
             p->wlen - p->woff);
}

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
    port *p = arg;

    while (p->woff < p->wlen) {
        ssize_t n = write(fd, p->wbuf + p->woff, p->wlen - p->woff);

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                if (p->busy && p->wlen - p->woff < p->busy_low) {
                    set_busy(p, false);
                }
                return; /* still armed */
            }
            event_del(p->ev_in); /* EPIPE: the program closed stdin; its exit follows */
            p->woff = p->wlen = 0;
            p->dead = true;
            set_busy(p, false);
            return;
        }
        p->woff += (size_t)n;
    }
    p->woff = p->wlen = 0;
    set_busy(p, false);
    event_del(p->ev_in);
}

/* Queue one frame for stdin whose payload is head[0..hlen) followed by
 * body[0..blen) (body may be NULL when blen is 0). 0, GR_EOVERLOAD (queue
 * cap) or -ENOMEM. */
static int send_frame(port *p, const void *head, size_t hlen, const void *body, size_t blen)
{
    size_t len = hlen + blen, need;

    if (p->dead) {
        return 0; /* nobody reads: drop, as a message to a dead process */
    }
    if (p->woff > 0 && p->woff == p->wlen) {
        p->woff = p->wlen = 0;
    }
    need = p->wlen + GR_PORT_FRAME_HDR + len;
    if (need - p->woff > GR_PORT_QUEUE_MAX || len > UINT32_MAX) {
        return GR_EOVERLOAD;
    }
    if (need > p->wcap) {
        size_t nc = p->wcap ? p->wcap : 4096;
        uint8_t *g;

        if (p->woff) { /* compact first */
            memmove(p->wbuf, p->wbuf + p->woff, p->wlen - p->woff);
            p->wlen -= p->woff;
            p->woff = 0;
            need = p->wlen + GR_PORT_FRAME_HDR + len;
        }
        while (nc < need) {
            nc *= 2;
        }
        if (nc != p->wcap) {
            if (!(g = realloc(p->wbuf, nc))) {
                return -ENOMEM;
            }
            p->wbuf = g;
            p->wcap = nc;
        }
    }
    gr_port_frame_header(p->wbuf + p->wlen, (uint32_t)len);
    memcpy(p->wbuf + p->wlen + GR_PORT_FRAME_HDR, head, hlen);
    if (blen) {
        memcpy(p->wbuf + p->wlen + GR_PORT_FRAME_HDR + hlen, body, blen);
    }
    p->wlen += GR_PORT_FRAME_HDR + len;
    if (!p->busy && p->wlen - p->woff > p->busy_high) {
        set_busy(p, true);
    }
    if (!p->ev_in) {
        return 0; /* not started yet: queued, written once it runs (on_started) */
    }
    if (p->busy) {
        /* Busy: stdin is written as it drains, by the event alone (this
         * process may itself be suspended, its "$port_flush" waiting), and
         * the mark is cleared there (on_stdin) below busy_low. */
        event_add(p->ev_in, NULL);
        return 0;
    }
    /* Written at "$port_flush", which this sends itself behind the messages
     * already in the mailbox: a burst of messages becomes one write(2) (and
     * one wake-up of the program) instead of one each. */
    if (!p->flush_pending) {
        if (gr_rt_send(p->rt, p->self, girder_msg_ref(p->flush_msg)) == 0) {
            p->flush_pending = true;
        } else {
            girder_msg_unref(p->flush_msg);
            on_stdin(p->ch->in_fd, EV_WRITE, p); /* no message: write now what fits */
            if (p->wlen > p->woff) {
                event_add(p->ev_in, NULL);
            }
        }
    }
    return 0;
}

/* "$port_flush": write now what fits, the rest when stdin is writable. */
static void flush_stdin(port *p)
{
    p->flush_pending = false;
    if (!p->ev_in || p->wlen == p->woff) {
        return;
    }
    on_stdin(p->ch->in_fd, EV_WRITE, p);
    if (p->wlen > p->woff) {
        event_add(p->ev_in, NULL);
    }
}

/* What send_frame returned: on overflow (or no memory) stop the port. */
static void queued(port *p, int r)
{
    if (r == GR_EOVERLOAD) {
        gr_warn(p->logname, "stdin queue above %u bytes (the program does not read): stopping",
                GR_PORT_QUEUE_MAX);
        stop_with(p, "port_overflow");
    } else if (r < 0) {
        stop_with(p, "system_limit");
    }
}

/* Queue a packed frame from sb; on overflow stop the port. */
static void send_sb(port *p, msgpack_sbuffer *sb)
{
    queued(p, send_frame(p, sb->data, sb->size, NULL, 0));
}

/* ---- reading from the program -------------------------------------------------------------- */

/* Send the port process "$port_io" (p->io_msg, shared: one allocation per
 * port, not one per read). */
static void self_io(port *p)
{
    if (gr_rt_send(p->rt, p->self, girder_msg_ref(p->io_msg)) < 0) {
        girder_msg_unref(p->io_msg);
    }
}

static void on_stdout(evutil_socket_t fd, short what, void *arg)
{
    port *p = arg;
    ssize_t n;

    if (p->rcap - p->rlen < READ_CHUNK) {
        size_t nc = p->rcap ? p->rcap * 2 : READ_CHUNK * 2;
        uint8_t *g;

        if (nc > (size_t)p->max_frame + GR_PORT_FRAME_HDR + 2 * READ_CHUNK) {
            nc = (size_t)p->max_frame + GR_PORT_FRAME_HDR + 2 * READ_CHUNK;
        }
        if (nc > p->rcap && (g = realloc(p->rbuf, nc))) {
            p->rbuf = g;
            p->rcap = nc;
        }
        if (p->rcap == p->rlen) { /* cannot grow: let the handler drain */
            event_del(p->ev_out);
            p->io_pending = true;
            self_io(p);
            return;
        }
    }
    n = read(fd, p->rbuf + p->rlen, p->rcap - p->rlen);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        p->out_eof = true;
    } else {
        p->rlen += (size_t)n;
    }
    event_del(p->ev_out);
    p->io_pending = true;
    self_io(p);
}

static void log_err_line(port *p, const char *s, size_t n)
{
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
        n--;
    }
    gr_info(p->logname, "%.*s", (int)n, s);
}

static void on_stderr(evutil_socket_t fd, short what, void *arg)
{
    port *p = arg;
    char buf[READ_CHUNK];
    ssize_t n = read(fd, buf, sizeof(buf));

    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        if (p->elen) {
            log_err_line(p, p->ebuf, p->elen);
            p->elen = 0;
        }
        event_del(p->ev_err);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        p->ebuf[p->elen++] = buf[i];
        if (buf[i] == '\n' || p->elen == sizeof(p->ebuf)) {
            log_err_line(p, p->ebuf, p->elen);
            p->elen = 0;
        }
    }
}

/* The program ended: reap it and tell the process. */
static void on_exit_ev(evutil_socket_t fd, short what, void *arg)
{
    port *p = arg;
    siginfo_t si = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;

    if (waitid(P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0) {
        return;
    }
    event_del(p->ev_exit);
    kill(-p->ch->ospid, SIGKILL); /* anything left in its group */
    p->exit_kind = si.si_code == CLD_EXITED ? 1 : 2;
    p->exit_code = si.si_status;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str_with_body(&pk, EXIT_TAG, strlen(EXIT_TAG));
    if ((m = girder_msg_new(sb.data, sb.size)) && gr_rt_send(p->rt, p->self, m) < 0) {
        girder_msg_unref(m);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* ---- the protocol ---------------------------------------------------------------------------- */

static void stop_with(port *p, const char *reason)
{
    if (!p->fail) {
        p->fail = girder_msg_atom(reason);
    }
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* [1, Id, Err | nil, Result | nil] */
static void respond(port *p, uint64_t id, const char *err, const msgpack_object *result)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, MSG_RESPONSE);
    msgpack_pack_uint64(&pk, id);
    if (err) {
        pack_str(&pk, err);
    } else {
        msgpack_pack_nil(&pk);
    }
    if (result) {
        msgpack_pack_object(&pk, *result);
    } else {
        msgpack_pack_nil(&pk);
    }
    send_sb(p, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* Dest: a pid ext, "name" (this node) or "name@node@host". */
static int send_to(girder_ctx *ctx, const msgpack_object *dest, girder_msg *m)
{
    girder_pid pid;
    char buf[NAME_MAX_LEN + 1 + 256], *at;

    if (girder_get_pid(ctx, dest, &pid) == 0) {
        return girder_send(ctx, pid, m);
    }
    if (dest->type != MSGPACK_OBJECT_STR || dest->via.str.size == 0 ||
        dest->via.str.size >= sizeof(buf) || memchr(dest->via.str.ptr, 0, dest->via.str.size)) {
        return GR_EBADARG;
    }
    memcpy(buf, dest->via.str.ptr, dest->via.str.size);
    buf[dest->via.str.size] = '\0';
    if ((at = strchr(buf, '@')) != NULL) {
        *at = '\0';
        return girder_send_name_node(ctx, buf, at + 1, m);
    }
    return girder_send_name(ctx, buf, m);
}

static int resolve(girder_ctx *ctx, const msgpack_object *dest, girder_pid *ret)
{
    char buf[NAME_MAX_LEN + 1];

    if (girder_get_pid(ctx, dest, ret) == 0) {
        return 0;
    }
    if (gr_term_get_str(dest, buf, sizeof(buf)) < 0) {
        return GR_EBADARG;
    }
    return girder_whereis(ctx, buf, ret);
}

/* ---- groups and topics (pubsub.h) ---------------------------------------------------------- */

/* A string param: 0, or GR_EBADARG. */
static int param_str(const msgpack_object *o, char *buf, size_t cap)
{
    return gr_term_get_str(o, buf, cap) < 0 || buf[0] == '\0' ? GR_EBADARG : 0;
}

/* Answer id with pids[0..n) as an array. */
static void respond_pids(girder_ctx *ctx, port *p, uint64_t id, const girder_pid *pids, size_t n)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked up;
    size_t off = 0;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        girder_pack_pid(ctx, &pk, pids[i]);
    }
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS) {
        respond(p, id, NULL, &up.data);
    } else {
        respond(p, id, "system_limit", NULL);
    }
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}

/* Publish Term on Topic for the port (request or notification). 0 or a
 * negative error; *ret set on success. */
static int port_publish(girder_ctx *ctx, port *p, const msgpack_object *topic,
                        const msgpack_object *term, gr_pub_result *ret)
{
    gr_pubsub *ps = gr_pubsub_of(p->rt);
    girder_msg *m;
    int r;

    if (!ps) {
        return GR_ENOPROC;
    }
    if (topic->type != MSGPACK_OBJECT_STR || topic->via.str.size == 0) {
        return GR_EBADARG;
    }
    if (!(m = girder_msg_from_object(term))) {
        return -ENOMEM;
    }
    r = gr_pubsub_publish(ps, ctx, topic->via.str.ptr, topic->via.str.size, m, ret);
    girder_msg_unref(m);
    return r < 0 ? r : 0;
}

/* subscribe / unsubscribe [Pattern], publish [Topic, Term], join / leave /
 * members [Scope, Group]. true if method is one of them (answered). */
static bool on_pubsub_request(girder_ctx *ctx, port *p, uint64_t id, const msgpack_object *method,
                              const msgpack_object *params)
{
    static const msgpack_object ok = {.type = MSGPACK_OBJECT_STR, .via.str = {2, "ok"}};
    const msgpack_object *a = params->via.array.ptr;
    uint32_t n = params->via.array.size;
    gr_pubsub *ps = gr_pubsub_of(p->rt);
    char scope[GR_PG_NAME_MAX + 1], group[GR_PG_NAME_MAX + 1];
    int r;

    if ((gr_term_is_str(method, "subscribe") || gr_term_is_str(method, "unsubscribe")) && n == 1) {
        if (!ps) {
            r = GR_ENOPROC;
        } else if (a[0].type != MSGPACK_OBJECT_STR || a[0].via.str.size == 0) {
            r = GR_EBADARG;
        } else if (gr_term_is_str(method, "subscribe")) {
            r = gr_pubsub_subscribe(ps, p->self, a[0].via.str.ptr, a[0].via.str.size, NULL);
        } else {
            r = gr_pubsub_unsubscribe(ps, p->self, a[0].via.str.ptr, a[0].via.str.size);
        }
        respond(p, id, r < 0 ? gr_errid(r) : NULL, r < 0 ? NULL : &ok);
        return true;
    }
    if (gr_term_is_str(method, "publish") && n == 2) {
        gr_pub_result res = {0};

        if ((r = port_publish(ctx, p, &a[0], &a[1], &res)) < 0) {
            respond(p, id, gr_errid(r), NULL);
        } else {
            msgpack_object_kv kv[3] = {
                {{.type = MSGPACK_OBJECT_STR, .via.str = {7, "matched"}},
                 {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = res.matched}},
                {{.type = MSGPACK_OBJECT_STR, .via.str = {9, "delivered"}},
                 {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = res.delivered}},
                {{.type = MSGPACK_OBJECT_STR, .via.str = {5, "nodes"}},
                 {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = res.nodes}},
            };
            msgpack_object m = {.type = MSGPACK_OBJECT_MAP, .via.map = {3, kv}};

            respond(p, id, NULL, &m);
        }
        return true;
    }
    if ((gr_term_is_str(method, "join") || gr_term_is_str(method, "leave") ||
         gr_term_is_str(method, "members")) &&
        n == 2) {
        if (!ps) {
            r = GR_ENOPROC;
        } else if ((r = param_str(&a[0], scope, sizeof(scope))) < 0 ||
                   (r = param_str(&a[1], group, sizeof(group))) < 0) {
        } else if (gr_term_is_str(method, "join")) {
            r = gr_pg_join(ps, scope, group, p->self);
        } else if (gr_term_is_str(method, "leave")) {
            r = gr_pg_leave(ps, scope, group, p->self);
        } else {
            girder_pid *pids = NULL;
            size_t np = 0;

            if ((r = gr_pg_members_all(ps, scope, group, &pids, &np)) == 0) {
                respond_pids(ctx, p, id, pids, np);
                free(pids);
                return true;
            }
        }
        respond(p, id, r < 0 ? gr_errid(r) : NULL, r < 0 ? NULL : &ok);
        return true;
    }
    return false;
}

/* rpc [Node, Module, Function, Args, TimeoutMs?]: run module.function(Args)
 * on Node (this node too) as `girder rpc` does; the answer comes back as
 * ["$rpc", Tag, Status, Result] (forward_msg) and is answered then. Every
 * error is answered at once or then, exactly once (rpc.h, dist.h). */
static void on_rpc_request(girder_ctx *ctx, port *p, uint64_t id, const msgpack_object *a,
                           uint32_t n)
{
    char node[256], mod[256], fn[256];
    uint64_t tmo = GR_PORT_RPC_TIMEOUT_MS;
    gr_dist *dist = p->ps->rpc ? gr_rpc_dist(p->ps->rpc) : NULL;
    size_t i;
    int r;

    if (p->nrpc >= GR_PORT_CALLS_MAX) {
        respond(p, id, "system_limit", NULL);
        return;
    }
    if ((n != 4 && n != 5) || param_str(&a[0], node, sizeof(node)) < 0 ||
        param_str(&a[1], mod, sizeof(mod)) < 0 || param_str(&a[2], fn, sizeof(fn)) < 0 ||
        a[3].type != MSGPACK_OBJECT_ARRAY ||
        (n == 5 && (a[4].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[4].via.u64 == 0 ||
                    a[4].via.u64 > 3600000))) {
        respond(p, id, "badarg", NULL);
        return;
    }
    if (n == 5) {
        tmo = a[4].via.u64;
    }
    for (i = 0; p->rpcs[i].tag; i++) {
    }
    if (++p->next_tag == 0) {
        p->next_tag = 1;
    }
    if (!p->ps->rpc) {
        r = GR_ENOCONN;
    } else if (strcmp(node, gr_rt_node_name(p->rt)) == 0) {
        r = gr_rpc_local(p->ps->rpc, ctx, mod, fn, &a[3], (uint32_t)tmo, p->self, p->next_tag);
    } else if (!dist) {
        r = GR_ENOCONN;
    } else {
        msgpack_sbuffer sb;
        msgpack_packer pk;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, a[3]);
        r = gr_dist_call(dist, node, mod, fn, sb.data, sb.size, (unsigned)tmo, p->self,
                         p->next_tag);
        msgpack_sbuffer_destroy(&sb);
    }
    if (r < 0) {
        respond(p, id, gr_errid(r), NULL);
        return;
    }
    p->rpcs[i] = (rpccall){p->next_tag, id};
    p->nrpc++;
}

/* ["$rpc", Tag, Status, Result] for one of the port's rpc requests: answer
 * it. true if msg was one. */
static bool on_rpc_answer(port *p, const msgpack_object *msg)
{
    const msgpack_object *x;
    uint64_t tag;
    int status;

    if (p->nrpc == 0 || gr_term_parse_rpc_answer(msg, &tag, &status, &x) < 0 || tag == 0) {
        return false;
    }
    for (size_t i = 0; i < GR_PORT_CALLS_MAX; i++) {
        if (p->rpcs[i].tag == tag) {
            char why[64];

            if (status < 0 && gr_term_get_str(x, why, sizeof(why)) < 0) {
                snprintf(why, sizeof(why), "%s", gr_errid(status));
            }
            respond(p, p->rpcs[i].msgid, status < 0 ? why : NULL, status < 0 ? NULL : x);
            p->rpcs[i].tag = 0;
            p->nrpc--;
            return true;
        }
    }
    return false;
}

/* A request from the program: [0, Id, Method, Params]. */
static void on_request(girder_ctx *ctx, port *p, uint64_t id, const msgpack_object *method,
                       const msgpack_object *params)
{
    const msgpack_object *a = params->via.array.ptr;
    uint32_t n = params->via.array.size;

    if (gr_term_is_str(method, "call") && (n == 2 || n == 3)) {
        uint64_t tmo = n == 3 && a[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER ? a[2].via.u64 : 5000;
        girder_msg *req, *tm = NULL;
        girder_pid to;
        size_t i;
        int r;

        if (p->nout >= GR_PORT_CALLS_MAX) {
            respond(p, id, "system_limit", NULL);
            return;
        }
        if ((r = resolve(ctx, &a[0], &to)) < 0) {
            respond(p, id, gr_errid(r), NULL);
            return;
        }
        for (i = 0; i < GR_PORT_CALLS_MAX && p->out[i].ref.id; i++) {
        }
        if (!(req = girder_msg_from_object(&a[1]))) {
            respond(p, id, "system_limit", NULL);
            return;
        }
        r = girder_call(ctx, to, req, true, &p->out[i].ref);
        girder_msg_unref(req);
        if (r < 0) {
            p->out[i].ref.id = 0;
            respond(p, id, gr_errid(r), NULL);
            return;
        }
        p->out[i].msgid = id;
        p->nout++;
        {
            msgpack_sbuffer sb;
            msgpack_packer pk;

            msgpack_sbuffer_init(&sb);
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_array(&pk, 2);
            pack_str(&pk, CALL_TIMEOUT_TAG);
            girder_pack_ref(ctx, &pk, p->out[i].ref);
            tm = girder_msg_new(sb.data, sb.size);
            msgpack_sbuffer_destroy(&sb);
        }
        if (tm && girder_send_after(ctx, p->self, tmo, tm, &p->out[i].tref) < 0) {
            girder_msg_unref(tm);
        }
        return;
    }
    if (gr_term_is_str(method, "register") && n == 1) {
        char name[NAME_MAX_LEN + 1];
        int r = gr_term_get_str(&a[0], name, sizeof(name));

        if (r == 0) {
            r = girder_register(ctx, name, p->self);
        }
        if (r < 0) {
            respond(p, id, gr_errid(r), NULL);
        } else {
            msgpack_object ok = {.type = MSGPACK_OBJECT_STR, .via.str = {2, "ok"}};

            snprintf(p->name, sizeof(p->name), "%s", name);
            registry_set(p->ps, p->self, p->ch->ospid, name);
            respond(p, id, NULL, &ok);
        }
        return;
    }
    if (gr_term_is_str(method, "whereis") && n == 1) {
        char name[NAME_MAX_LEN + 1];
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_unpacked up;
        girder_pid pid = {0};
        size_t off = 0;
        int r = gr_term_get_str(&a[0], name, sizeof(name));

        if (r == 0) {
            r = girder_whereis(ctx, name, &pid);
        }
        if (r < 0) {
            respond(p, id, gr_errid(r), NULL);
            return;
        }
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        girder_pack_pid(ctx, &pk, pid);
        msgpack_unpacked_init(&up);
        if (msgpack_unpack_next(&up, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS) {
            respond(p, id, NULL, &up.data);
        }
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
        return;
    }
    if (gr_term_is_str(method, "rpc")) {
        on_rpc_request(ctx, p, id, a, n);
        return;
    }
    if (on_pubsub_request(ctx, p, id, method, params)) {
        return;
    }
    respond(p, id, "undef_function", NULL);
}

/* [2, "send", [Dest, Term]] up to Dest, as every msgpack packer writes it. */
static const uint8_t send_head[] = {0x93, MSG_NOTIFY, 0xa4, 's', 'e', 'n', 'd', 0x92};

/* The common frame, [2, "send", [Pid, Term]] with Dest a pid: send the
 * Term's bytes as they are, one allocation (the message) and one copy,
 * where the general path unpacks the frame into a zone and packs Term again.
 * payload is one validated term (gr_port_frame_decode), so Term runs from
 * the end of Pid to the end of the payload. true if the frame was that
 * (handled); false for any other frame (the general path decides). */
static bool send_pid_frame(girder_ctx *ctx, port *p, const uint8_t *payload, size_t len)
{
    const uint8_t *dest;
    size_t left, dlen;
    gr_term_id id;
    uint32_t node;
    girder_msg *m;

    if (len <= sizeof(send_head) || memcmp(payload, send_head, sizeof(send_head)) != 0) {
        return false;
    }
    dest = payload + sizeof(send_head);
    left = len - sizeof(send_head);
    if (gr_term_next(dest, left, &dlen) < 0 || dlen >= left ||
        gr_term_decode_id(dest, dlen, GR_TERM_EXT_PID, &id) < 0 ||
        gr_rt_node_intern(p->rt, id.node, id.node_len, &node) < 0) {
        return false;
    }
    if ((m = girder_msg_new(dest + dlen, left - dlen)) &&
        girder_send(ctx, (girder_pid){node, id.creation, id.id}, m) < 0) {
        girder_msg_unref(m);
    }
    return true;
}

/* One frame from the program. 0, or a negative code: a protocol error. */
static int on_frame(girder_ctx *ctx, port *p, const uint8_t *payload, size_t len)
{
    msgpack_unpacked up;
    const msgpack_object *a;
    uint32_t n;
    int r = 0;

    if (send_pid_frame(ctx, p, payload, len)) {
        return 0;
    }
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, (const char *)payload, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_ARRAY || (n = up.data.via.array.size) < 3 ||
        (a = up.data.via.array.ptr)[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        r = GR_EBADFRAME;
        goto out;
    }
    switch (a[0].via.u64) {
    case MSG_NOTIFY: /* [2, Method, Params] */
        if (n != 3 || a[2].type != MSGPACK_OBJECT_ARRAY) {
            r = GR_EBADFRAME;
        } else if (gr_term_is_str(&a[1], "send") && a[2].via.array.size == 2) {
            girder_msg *m = girder_msg_from_object(&a[2].via.array.ptr[1]);

            if (m && send_to(ctx, &a[2].via.array.ptr[0], m) < 0) {
                girder_msg_unref(m); /* no such name: dropped, as in Erlang */
            }
        } else if (gr_term_is_str(&a[1], "publish") && a[2].via.array.size == 2) {
            gr_pub_result res;

            if (port_publish(ctx, p, &a[2].via.array.ptr[0], &a[2].via.array.ptr[1], &res) < 0) {
                gr_debug(p->logname, "publish dropped (bad topic)");
            }
        } else {
            gr_debug(p->logname, "unknown notification ignored");
        }
        break;
    case MSG_REQUEST: /* [0, Id, Method, Params] */
        if (n != 4 || a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            a[3].type != MSGPACK_OBJECT_ARRAY) {
            r = GR_EBADFRAME;
        } else {
            on_request(ctx, p, a[1].via.u64, &a[2], &a[3]);
        }
        break;
    case MSG_RESPONSE: /* [1, Id, Err, Result]: to a "$call" the port got */
        if (n != 4 || a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            r = GR_EBADFRAME;
            break;
        }
        for (size_t i = 0; i < GR_PORT_CALLS_MAX; i++) {
            incall *c = &p->in[i];

            if (c->id && c->id == a[1].via.u64) {
                girder_msg *resp = NULL;

                if (a[2].type == MSGPACK_OBJECT_NIL) {
                    resp = girder_msg_from_object(&a[3]);
                } else {
                    msgpack_sbuffer sb;
                    msgpack_packer pk;

                    msgpack_sbuffer_init(&sb);
                    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                    msgpack_pack_array(&pk, 2);
                    pack_str(&pk, "error");
                    msgpack_pack_object(&pk, a[2]);
                    resp = girder_msg_new(sb.data, sb.size);
                    msgpack_sbuffer_destroy(&sb);
                }
                if (resp) {
                    (void)girder_reply(ctx, c->from, c->ref, resp);
                    girder_msg_unref(resp);
                }
                c->id = 0;
                p->nin--;
                break;
            }
        }
        break;
    default:
        r = GR_EBADFRAME;
    }
out:
    msgpack_unpacked_destroy(&up);
    return r;
}

/* Handle the frames in rbuf (at most FRAMES_PER_TURN). */
static void drain_frames(girder_ctx *ctx, port *p)
{
    size_t off = 0, bytes = 0;
    int k = 0, r = 0;

    p->io_pending = false;
    while (k < FRAMES_PER_TURN && !p->fail) {
        const uint8_t *payload;
        size_t plen, used;

        if (gr_rt_ctx_suspending(ctx) || bytes >= BYTES_PER_TURN) {
            k = FRAMES_PER_TURN; /* enough for one turn, or sent to a busy port or link */
            break;
        }
        r = gr_port_frame_decode(p->rbuf + off, p->rlen - off, p->max_frame, &payload, &plen,
                                 &used);
        if (r <= 0) {
            break;
        }
        if ((r = on_frame(ctx, p, payload, plen)) < 0) {
            break;
        }
        off += used;
        bytes += used;
        k++;
    }
    if (r < 0 && !p->fail) {
        const uint8_t *h = p->rbuf + off;

        if (r == GR_EFRAMETOOBIG) {
            gr_warn(p->logname,
                    "stopping the port: frame_too_big (length %u announced; limit %u bytes)",
                    (unsigned)((uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 |
                               h[3]),
                    p->max_frame);
            stop_with(p, "frame_too_big");
        } else {
            gr_warn(p->logname, "stopping the port: bad_frame (not a well-formed msgpack-RPC "
                                "message)");
            stop_with(p, "bad_frame");
        }
    }
    memmove(p->rbuf, p->rbuf + off, p->rlen - off);
    p->rlen -= off;
    if (p->fail) {
        return;
    }
    if (k == FRAMES_PER_TURN) { /* more may be waiting: yield, come back */
        p->io_pending = true;
        self_io(p);
    } else if (!p->out_eof) {
        event_add(p->ev_out, NULL);
    }
}

/* [2, "message", [Msg]] up to Msg. */
static const uint8_t message_head[] = {0x93, MSG_NOTIFY, 0xa7, 'm', 'e', 's',
                                       's',  'a',        'g',  'e', 0x91};

/* Might d[0..len) be a message the port answers itself rather than hand to
 * the program ("$call", "$reply", "DOWN", "$port_call_timeout", "$pub",
 * "$rpc": each an array whose first element is a str starting with '$' or
 * "DOWN")? From the first bytes only; true when they do not rule it out. */
static bool maybe_tagged(const uint8_t *d, size_t len)
{
    size_t off, n;

    if (len >= 1 && (d[0] & 0xf0) == 0x90) {
        off = 1;
    } else if (len >= 3 && d[0] == 0xdc) {
        off = 3;
    } else if (len >= 5 && d[0] == 0xdd) {
        off = 5;
    } else {
        return false; /* not an array */
    }
    if (off >= len) {
        return true;
    }
    if ((d[off] & 0xe0) == 0xa0) {
        n = d[off] & 0x1f;
        off += 1;
    } else if (d[off] == 0xd9 || d[off] == 0xda || d[off] == 0xdb) {
        return true; /* a longer str header: let the general path look */
    } else {
        return false; /* the first element is no str (or there is none) */
    }
    return n > 0 && (off >= len || d[off] == '$' ||
                     (n == 4 && len - off >= 4 && memcmp(d + off, "DOWN", 4) == 0));
}

/* A message for the port process: Erlang-style, it goes to the program. */
static void forward_msg(girder_ctx *ctx, port *p, const girder_msg *msg)
{
    const uint8_t *d = girder_msg_data(msg);
    size_t len = girder_msg_size(msg);
    msgpack_unpacked up;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const msgpack_object *a;
    girder_ref ref;

    /* The common case, a message for the program: its bytes go out as they
     * are behind the notification's head (checked, not unpacked and packed
     * again); one that is not exactly one term is dropped. */
    if (!maybe_tagged(d, len)) {
        if (gr_term_validate(d, len) == 0) {
            queued(p, send_frame(p, message_head, sizeof(message_head), d, len));
        }
        return;
    }
    msgpack_unpacked_init(&up);
    if (girder_msg_unpack(msg, &up) < 0) {
        msgpack_unpacked_destroy(&up);
        return;
    }
    a = up.data.type == MSGPACK_OBJECT_ARRAY ? up.data.via.array.ptr : NULL;
    msgpack_sbuffer_init(&sb);
    if (a && on_rpc_answer(p, &up.data)) {
        goto out;
    }
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (a && up.data.via.array.size == 4 && gr_term_is_str(&a[0], "$call")) {
        girder_pid from;
        size_t i;

        if (girder_get_pid(ctx, &a[1], &from) < 0 || girder_get_ref(ctx, &a[2], &ref) < 0) {
            goto out;
        }
        if (p->nin >= GR_PORT_CALLS_MAX) {
            girder_msg *busy = girder_msg_atom("busy");

            if (busy) {
                (void)girder_reply(ctx, from, ref, busy);
                girder_msg_unref(busy);
            }
            goto out;
        }
        for (i = 0; p->in[i].id; i++) {
        }
        if (++p->next_in == 0) {
            p->next_in = 1;
        }
        p->in[i] = (incall){p->next_in, from, ref};
        p->nin++;
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint8(&pk, MSG_REQUEST);
        msgpack_pack_uint32(&pk, p->next_in);
        pack_str(&pk, "call");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_object(&pk, a[3]);
        send_sb(p, &sb);
        goto out;
    }
    if (a && (up.data.via.array.size == 3 || up.data.via.array.size == 5) &&
        (gr_term_is_str(&a[0], "$reply") || gr_term_is_str(&a[0], "DOWN")) &&
        girder_get_ref(ctx, &a[1], &ref) == 0) {
        for (size_t i = 0; i < GR_PORT_CALLS_MAX; i++) {
            outcall *c = &p->out[i];

            if (c->ref.id && girder_ref_eq(c->ref, ref)) {
                bool down = gr_term_is_str(&a[0], "DOWN");

                if (!down) {
                    girder_demonitor(ctx, ref);
                }
                (void)girder_cancel_timer(ctx, c->tref);
                respond(p, c->msgid, down ? "noproc" : NULL, down ? NULL : &a[2]);
                c->ref.id = 0;
                p->nout--;
                goto out;
            }
        }
    }
    if (a && up.data.via.array.size == 2 && gr_term_is_str(&a[0], CALL_TIMEOUT_TAG) &&
        girder_get_ref(ctx, &a[1], &ref) == 0) {
        for (size_t i = 0; i < GR_PORT_CALLS_MAX; i++) {
            outcall *c = &p->out[i];

            if (c->ref.id && girder_ref_eq(c->ref, ref)) {
                girder_demonitor(ctx, ref);
                respond(p, c->msgid, "timeout", NULL);
                c->ref.id = 0;
                p->nout--;
                break;
            }
        }
        goto out;
    }
    /* ["$pub", Topic, Payload] from a subscription: [2, "publish", [Topic, Payload]] */
    if (a && up.data.via.array.size == 3 && gr_term_is_str(&a[0], "$pub") &&
        a[1].type == MSGPACK_OBJECT_STR) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint8(&pk, MSG_NOTIFY);
        pack_str(&pk, "publish");
        msgpack_pack_array(&pk, 2);
        msgpack_pack_object(&pk, a[1]);
        msgpack_pack_object(&pk, a[2]);
        send_sb(p, &sb);
        goto out;
    }
    /* [2, "message", [Msg]] */
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, MSG_NOTIFY);
    pack_str(&pk, "message");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_object(&pk, up.data);
    send_sb(p, &sb);
out:
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&up);
}

/* ---- the behaviour -----------------------------------------------------------------------------
 */

static int get_u32(const msgpack_object *o, uint32_t lo, uint32_t hi, uint32_t *ret)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 < lo || o->via.u64 > hi) {
        return GR_EBADARG;
    }
    *ret = (uint32_t)o->via.u64;
    return 0;
}

/* busy_high / busy_low given (either may be NULL): check them and set
 * p->busy_high / busy_low. 0 or GR_EPORTBUSYMARKS. */
static int parse_busy_marks(const msgpack_object *high, const msgpack_object *low, port *p)
{
    uint32_t h = GR_PORT_BUSY_HIGH, l = GR_PORT_BUSY_LOW;

    if (high && get_u32(high, GR_PORT_BUSY_HIGH_MIN, GR_PORT_BUSY_HIGH_MAX, &h) < 0) {
        return GR_EPORTBUSYMARKS;
    }
    if (low) {
        if (get_u32(low, 0, UINT32_MAX, &l) < 0) {
            return GR_EPORTBUSYMARKS;
        }
    } else if (l >= h) {
        l = h / 4;
    }
    if (l >= h) {
        return GR_EPORTBUSYMARKS;
    }
    p->busy_high = h;
    p->busy_low = l;
    return 0;
}

/* Parse the spawn argument into p and a fresh argv. 0 (1 if it names the
 * port), GR_EBADARG, or GR_EPORTBUSYMARKS. */
static int parse_arg(const girder_msg *arg, port *p, char ***ret_argv)
{
    msgpack_unpacked up;
    const msgpack_object *cmd = NULL, *args = NULL, *name = NULL, *high = NULL, *low = NULL;
    char **argv = NULL;
    size_t n = 0;
    int r = GR_EBADARG;

    msgpack_unpacked_init(&up);
    if (!arg || girder_msg_unpack(arg, &up) < 0 || up.data.type != MSGPACK_OBJECT_MAP) {
        goto out;
    }
    for (uint32_t i = 0; i < up.data.via.map.size; i++) {
        const msgpack_object_kv *kv = &up.data.via.map.ptr[i];

        if (gr_term_is_str(&kv->key, "cmd")) {
            cmd = &kv->val;
        } else if (gr_term_is_str(&kv->key, "args")) {
            args = &kv->val;
        } else if (gr_term_is_str(&kv->key, "name")) {
            name = &kv->val;
        } else if (gr_term_is_str(&kv->key, "kill_timeout_ms")) {
            if (get_u32(&kv->val, 1, 600000, &p->kill_timeout_ms) < 0) {
                goto out;
            }
        } else if (gr_term_is_str(&kv->key, "max_frame")) {
            if (get_u32(&kv->val, 16, 1u << 30, &p->max_frame) < 0) {
                goto out;
            }
        } else if (gr_term_is_str(&kv->key, "busy_high")) {
            high = &kv->val;
        } else if (gr_term_is_str(&kv->key, "busy_low")) {
            low = &kv->val;
        } else {
            goto out;
        }
    }
    if ((r = parse_busy_marks(high, low, p)) < 0) {
        goto out;
    }
    r = GR_EBADARG;
    if (!cmd || (args && (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size > ARGS_MAX))) {
        goto out;
    }
    n = 1 + (args ? args->via.array.size : 0);
    if (!(argv = calloc(n + 1, sizeof(*argv)))) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *o = i == 0 ? cmd : &args->via.array.ptr[i - 1];

        if (o->type != MSGPACK_OBJECT_STR || memchr(o->via.str.ptr, 0, o->via.str.size) ||
            (i == 0 && o->via.str.size == 0) ||
            !(argv[i] = strndup(o->via.str.ptr, o->via.str.size))) {
            goto out;
        }
    }
    if (name && gr_term_get_str(name, p->name, sizeof(p->name)) < 0) {
        goto out;
    }
    if (!name) {
        const char *base = strrchr(argv[0], '/');

        snprintf(p->name, sizeof(p->name), "%s", base ? base + 1 : argv[0]);
    }
    *ret_argv = argv;
    argv = NULL;
    r = name ? 1 : 0;
out:
    for (size_t i = 0; argv && i < n; i++) {
        free(argv[i]);
    }
    free(argv);
    msgpack_unpacked_destroy(&up);
    return r;
}

static void registry_add(gr_ports *ps, port *p)
{
    portent *e = calloc(1, sizeof(*e));

    if (!e) {
        return;
    }
    e->pid = p->self;
    snprintf(e->name, sizeof(e->name), "%s", p->name);
    snprintf(e->cmd, sizeof(e->cmd), "%s", p->ch->argv[0]);
    pthread_mutex_lock(&ps->lock);
    e->next = ps->ports;
    ps->ports = e;
    pthread_mutex_unlock(&ps->lock);
}

static void registry_set(gr_ports *ps, girder_pid pid, pid_t ospid, const char *name)
{
    pthread_mutex_lock(&ps->lock);
    for (portent *e = ps->ports; e; e = e->next) {
        if (girder_pid_eq(e->pid, pid)) {
            e->ospid = ospid;
            if (name) {
                snprintf(e->name, sizeof(e->name), "%s", name);
            }
        }
    }
    pthread_mutex_unlock(&ps->lock);
}

static void registry_del(gr_ports *ps, girder_pid pid)
{
    pthread_mutex_lock(&ps->lock);
    for (portent **pe = &ps->ports; *pe; pe = &(*pe)->next) {
        if (girder_pid_eq((*pe)->pid, pid)) {
            portent *e = *pe;

            *pe = e->next;
            free(e);
            break;
        }
    }
    pthread_mutex_unlock(&ps->lock);
}

/* [2, "init", [SelfPid, NodeName, Name]]: the first frame, queued at once so
 * that messages and calls arriving before the program runs follow it. */
static void queue_init_frame(girder_ctx *ctx, port *p)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, MSG_NOTIFY);
    pack_str(&pk, "init");
    msgpack_pack_array(&pk, 3);
    girder_pack_pid(ctx, &pk, p->self);
    pack_str(&pk, gr_rt_node_name(p->rt));
    pack_str(&pk, p->name);
    send_sb(p, &sb);
    msgpack_sbuffer_destroy(&sb);
}

static int port_init(girder_ctx *ctx, const girder_msg *arg, void **ret_state)
{
    gr_ports *ps = (gr_ports *)gr_rt_ctx_behaviour(ctx);
    port *p = calloc(1, sizeof(*p));
    child *ch = NULL;
    char **argv = NULL;
    int r, named;

    if (!p) {
        return -ENOMEM;
    }
    p->ps = ps;
    p->rt = ps->rt;
    p->self = girder_self(ctx);
    p->kill_timeout_ms = GR_PORT_KILL_TIMEOUT_MS;
    p->max_frame = GR_PORT_FRAME_MAX_DEFAULT;
    if (!(p->io_msg = girder_msg_atom(IO_ATOM)) || !(p->flush_msg = girder_msg_atom(FLUSH_ATOM))) {
        r = -ENOMEM;
        goto fail;
    }
    if ((named = parse_arg(arg, p, &argv)) < 0) {
        if (named == GR_EPORTBUSYMARKS) {
            girder_msg *why = girder_msg_atom(gr_errid(named));

            gr_warn("port", "not started: %s", gr_strerror(named));
            if (why) {
                girder_stop(ctx, why); /* the exit reason says which */
                girder_msg_unref(why);
            }
        }
        r = named;
        goto fail;
    }
    if (named && (r = girder_register(ctx, p->name, p->self)) < 0) {
        goto fail;
    }
    snprintf(p->logname, sizeof(p->logname), "port/%s", p->name);
    if (!(ch = calloc(1, sizeof(*ch)))) {
        r = -ENOMEM;
        goto fail;
    }
    *ch = (child){.refs = 2,
                  .state = CH_QUEUED,
                  .pidfd = -1,
                  .in_fd = -1,
                  .out_fd = -1,
                  .err_fd = -1,
                  .argv = argv,
                  .port = p->self};
    p->ch = ch;
    queue_init_frame(ctx, p);
    registry_add(ps, p);
    pthread_mutex_lock(&ps->lock);
    *ps->queue_tail = ch;
    ps->queue_tail = &ch->next;
    pthread_mutex_unlock(&ps->lock);
    wake_spawner(ps);
    *ret_state = p;
    return 0;
fail:
    for (char **a = argv; a && *a; a++) {
        free(*a);
    }
    free(argv);
    girder_msg_unref(p->io_msg);
    girder_msg_unref(p->flush_msg);
    free(p);
    return r;
}

/* The program is running: watch its pipes and pidfd, flush what was queued. */
static int on_started(girder_ctx *ctx, port *p)
{
    struct event_base *base = gr_rt_sched_base(p->rt, (unsigned)(p->self.id & 0xff));
    child *ch = p->ch;
    child_state st;
    int err;

    pthread_mutex_lock(&p->ps->lock);
    st = ch->state;
    err = ch->err;
    pthread_mutex_unlock(&p->ps->lock);
    if (st != CH_RUNNING) {
        gr_warn(p->logname, "cannot start %s: %s", ch->argv[0], gr_strerror(err));
        p->dead = true;
        stop_with(p, "spawn_failed");
        return -1;
    }
    registry_set(p->ps, p->self, ch->ospid, NULL);
    if (!(p->ev_out = event_new(base, ch->out_fd, EV_READ | EV_PERSIST, on_stdout, p)) ||
        !(p->ev_err = event_new(base, ch->err_fd, EV_READ | EV_PERSIST, on_stderr, p)) ||
        !(p->ev_in = event_new(base, ch->in_fd, EV_WRITE | EV_PERSIST, on_stdin, p)) ||
        !(p->ev_exit = event_new(base, ch->pidfd, EV_READ | EV_PERSIST, on_exit_ev, p)) ||
        event_add(p->ev_out, NULL) < 0 || event_add(p->ev_err, NULL) < 0 ||
        event_add(p->ev_exit, NULL) < 0) {
        stop_with(p, "system_limit");
        return -1;
    }
    gr_info(p->logname, "started %s, os pid %d", ch->argv[0], (int)ch->ospid);
    /* The frames queued since init ("init" first) go out now. */
    on_stdin(ch->in_fd, EV_WRITE, p);
    if (p->wlen > p->woff) {
        event_add(p->ev_in, NULL);
    }
    return 0;
}

/* The reason for the program's exit. */
static girder_msg *exit_reason(port *p)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;

    if (p->exit_kind == 1 && p->exit_code == 0) {
        return girder_msg_atom("normal");
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    pack_str(&pk, p->exit_kind == 1 ? "exit_status" : "signal");
    msgpack_pack_int(&pk, p->exit_code);
    m = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return m;
}

static int finish(girder_ctx *ctx, port *p)
{
    if (p->fail) {
        girder_stop(ctx, p->fail);
        return GIRDER_STOP;
    }
    return GIRDER_CONTINUE;
}

static int port_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    port *p = state;

    if (girder_msg_is_atom(msg, FLUSH_ATOM)) {
        flush_stdin(p);
        return finish(ctx, p);
    }
    if (girder_msg_is_atom(msg, IO_ATOM)) {
        drain_frames(ctx, p);
        return finish(ctx, p);
    }
    if (girder_msg_is_atom(msg, STARTED_ATOM)) {
        (void)on_started(ctx, p);
        return finish(ctx, p);
    }
    if (p->exit_kind) {
        msgpack_unpacked up;
        bool is_exit;

        msgpack_unpacked_init(&up);
        is_exit = girder_msg_unpack(msg, &up) == 0 && up.data.type == MSGPACK_OBJECT_ARRAY &&
                  up.data.via.array.size == 1 &&
                  gr_term_is_str(&up.data.via.array.ptr[0], EXIT_TAG);
        msgpack_unpacked_destroy(&up);
        if (is_exit) {
            girder_msg *reason;

            /* What the program wrote before it ended is handled first. */
            if (p->rlen && !p->fail) {
                p->out_eof = true;
                drain_frames(ctx, p);
            }
            if (p->fail) {
                return finish(ctx, p);
            }
            reason = exit_reason(p);
            gr_info(p->logname, "program exited (%s %d)", p->exit_kind == 1 ? "status" : "signal",
                    p->exit_code);
            p->dead = true;
            if (reason) {
                girder_stop(ctx, reason);
                girder_msg_unref(reason);
            }
            return GIRDER_STOP;
        }
    }
    forward_msg(ctx, p, msg);
    return finish(ctx, p);
}

static void port_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    port *p = state;
    gr_ports *ps = p->ps;
    child *ch = p->ch;

    if (p->ev_in && p->wlen > p->woff && !p->dead) {
        on_stdin(ch->in_fd, EV_WRITE, p); /* what a "$port_flush" still queued would write */
    }
    set_busy(p, false); /* its suspended senders resume */
    if (p->ev_out) {
        event_free(p->ev_out);
    }
    if (p->ev_err) {
        event_free(p->ev_err);
    }
    if (p->ev_in) {
        event_free(p->ev_in);
    }
    if (p->ev_exit) {
        event_free(p->ev_exit);
    }
    registry_del(ps, p->self);
    pthread_mutex_lock(&ps->lock);
    if (ch->state == CH_QUEUED) {
        ch->orphaned = true; /* the spawner cleans up */
    } else if (ch->state == CH_RUNNING) {
        close_fd(&ch->in_fd); /* stdin EOF: "exit now" */
        close_fd(&ch->out_fd);
        close_fd(&ch->err_fd);
        if (!p->exit_kind && ch->pidfd >= 0) {
            int fd = ch->pidfd;

            ch->pidfd = -1;
            pthread_mutex_unlock(&ps->lock);
            hand_over(ps, fd, ch->ospid, p->kill_timeout_ms);
            pthread_mutex_lock(&ps->lock);
        }
    }
    child_unref_locked(ch);
    pthread_mutex_unlock(&ps->lock);
    girder_msg_unref(p->fail);
    girder_msg_unref(p->io_msg);
    girder_msg_unref(p->flush_msg);
    free(p->rbuf);
    free(p->wbuf);
    free(p);
}

/* ---- rpc: port.list ------------------------------------------------------------------------ */

/* port.list() -> [{"pid", "name", "cmd", "os_pid"}] */
static int port_list(gr_rpc_call *c, girder_ctx *ctx, const msgpack_object *args)
{
    gr_ports *ps = ((const struct fnname *)(const void *)c->fn->name)->ps;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t n = 0;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pthread_mutex_lock(&ps->lock);
    for (portent *e = ps->ports; e; e = e->next) {
        n++;
    }
    msgpack_pack_array(&pk, n);
    for (portent *e = ps->ports; e; e = e->next) {
        msgpack_pack_map(&pk, 4);
        pack_str(&pk, "pid");
        girder_pack_pid(ctx, &pk, e->pid);
        pack_str(&pk, "name");
        pack_str(&pk, e->name);
        pack_str(&pk, "cmd");
        pack_str(&pk, e->cmd);
        pack_str(&pk, "os_pid");
        msgpack_pack_int(&pk, e->ospid);
    }
    pthread_mutex_unlock(&ps->lock);
    r = gr_rpc_answer(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

int gr_ports_new(girder_rt *rt, gr_rpc *rpc, gr_ports **ret_ps)
{
    gr_ports *ps = calloc(1, sizeof(*ps));
    int r;

    if (!ps) {
        return -ENOMEM;
    }
    ps->beh = (girder_behaviour){.name = GR_PORT_BEHAVIOUR,
                                 .init = port_init,
                                 .handle = port_handle,
                                 .terminate = port_terminate};
    ps->rt = rt;
    ps->rpc = rpc;
    ps->queue_tail = &ps->queue;
    ps->wake[0] = ps->wake[1] = -1;
    if ((r = pthread_mutex_init(&ps->lock, NULL)) != 0) {
        free(ps);
        return -r;
    }
    if (pipe2(ps->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        r = -errno;
        goto fail;
    }
    if ((r = pthread_create(&ps->thread, NULL, spawner_main, ps)) != 0) {
        r = -r;
        goto fail;
    }
    (void)pthread_setname_np(ps->thread, "gr-ports");
    ps->thread_started = true;
    if ((r = girder_behaviour_register(rt, &ps->beh)) < 0) {
        goto fail;
    }
    if (rpc) {
        snprintf(ps->fnnames[0].name, sizeof(ps->fnnames[0].name), "list");
        ps->fnnames[0].ps = ps;
        ps->fns[0] = (gr_rpc_fn_def){ps->fnnames[0].name, port_list, NULL, NULL};
        ps->mod = (gr_rpc_module){"port", ps->fns, 1};
        if ((r = gr_rpc_module_add(rpc, &ps->mod)) < 0) {
            (void)gr_rt_behaviour_unregister(rt, &ps->beh);
            goto fail;
        }
        ps->mod_added = true;
    }
    *ret_ps = ps;
    return 0;
fail:
    gr_ports_free(ps);
    return r;
}

gr_ports *gr_ports_free(gr_ports *ps)
{
    if (!ps) {
        return NULL;
    }
    if (ps->mod_added) {
        (void)gr_rpc_module_remove(ps->rpc, &ps->mod);
    }
    if (ps->thread_started) {
        pthread_mutex_lock(&ps->lock);
        ps->stop = true;
        pthread_mutex_unlock(&ps->lock);
        wake_spawner(ps);
        pthread_join(ps->thread, NULL);
    }
    /* Requests the spawner never took (it stopped first). */
    while (ps->queue) {
        child *ch = ps->queue;

        ps->queue = ch->next;
        child_unref_locked(ch);
    }
    for (size_t i = 0; i < ps->ndying_in; i++) {
        kill(-ps->dying_in[i].pgid, SIGKILL);
        (void)waitid(P_PIDFD, (id_t)ps->dying_in[i].pidfd, NULL, WEXITED);
        close(ps->dying_in[i].pidfd);
    }
    free(ps->dying_in);
    while (ps->ports) {
        portent *e = ps->ports;

        ps->ports = e->next;
        free(e);
    }
    close_fd(&ps->wake[0]);
    close_fd(&ps->wake[1]);
    pthread_mutex_destroy(&ps->lock);
    free(ps);
    return NULL;
}
