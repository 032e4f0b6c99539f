/* SPDX-License-Identifier: Apache-2.0 */
/*
 * probe.c - mailboxes for threads that are not schedulers (rt.h).
 *
 * A probe is a real process (behaviour "$probe", trapping exits) whose handle
 * callback moves each message into a mutex-protected queue that the owning
 * thread reads with gr_probe_recv. Because it is a real process, everything
 * that works between processes - links, monitors, calls, names - works with a
 * probe, and the thread drives it with gr_probe_run.
 *
 * Ownership: the probe struct is shared by its owner thread and its process;
 * `refs` counts both, the last one frees. The queue is under `lock`.
 */
#include "runtime/rt_int.h"

#include "proto/err.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

typedef struct qnode {
    struct qnode *next; /* FIFO link */
    girder_msg *msg;    /* owned */
} qnode;

struct gr_probe {
    girder_rt *rt;        /* runtime */
    girder_pid pid;       /* the probe process */
    atomic_int refs;      /* owner thread + live process */
    pthread_mutex_t lock; /* guards the queue */
    pthread_cond_t cond;  /* signalled on enqueue */
    qnode *head, *tail;   /* received messages */
};

static void probe_unref(gr_probe *p)
{
    if (atomic_fetch_sub(&p->refs, 1) != 1) {
        return;
    }
    while (p->head) {
        qnode *n = p->head;

        p->head = n->next;
        girder_msg_unref(n->msg);
        free(n);
    }
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static int probe_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    gr_probe *p = state;
    qnode *n = malloc(sizeof(*n));

    (void)ctx;
    if (n == NULL) {
        return GIRDER_CONTINUE; /* dropped: a probe is a test/ops aid, not a queue */
    }
    n->next = NULL;
    n->msg = girder_msg_ref((girder_msg *)msg);
    pthread_mutex_lock(&p->lock);
    if (p->tail) {
        p->tail->next = n;
    } else {
        p->head = n;
    }
    p->tail = n;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return GIRDER_CONTINUE;
}

static void probe_terminate(girder_ctx *ctx, void *state, const girder_msg *reason)
{
    (void)ctx;
    (void)reason;
    probe_unref(state);
}

static const girder_behaviour probe_behaviour = {
    .name = "$probe",
    .handle = probe_handle,
    .terminate = probe_terminate,
};

int gr_probe_new(girder_rt *rt, gr_probe **ret_probe)
{
    gr_probe *p;
    gr_proc *proc;
    gr_sig *sig;

    if (!atomic_load(&rt->running) || atomic_load(&rt->stopping)) {
        return GR_ESTOPPED;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL) {
        return -ENOMEM;
    }
    p->rt = rt;
    atomic_init(&p->refs, 2);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    proc = gr_proc_new(&rt->scheds[0], &probe_behaviour, NULL, gr_sched_alloc_id(&rt->scheds[0]));
    sig = proc ? gr_sig_new(GR_SIG_SPAWN, (girder_pid){0, 0, 0}, proc->pid) : NULL;
    if (sig == NULL) {
        gr_proc_free(proc);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return -ENOMEM;
    }
    /* No init: the process starts with its state and exit trapping set. */
    proc->state = p;
    proc->inited = true;
    proc->trap_exit = true;
    p->pid = proc->pid;
    sig->ptr = proc;
    gr_sched_push(&rt->scheds[0], sig);
    *ret_probe = p;
    return 0;
}

gr_probe *gr_probe_free(gr_probe *p)
{
    if (p == NULL) {
        return NULL;
    }
    if (!atomic_load(&p->rt->stopping)) {
        gr_rt_exit(p->rt, p->pid, p->rt->r_kill);
    }
    probe_unref(p);
    return NULL;
}

girder_pid gr_probe_pid(const gr_probe *p)
{
    return p->pid;
}

int gr_probe_recv(gr_probe *p, int timeout_ms, girder_msg **ret_msg)
{
    struct timespec dl;
    qnode *n;
    int r = 0;

    clock_gettime(CLOCK_REALTIME, &dl);
    if (timeout_ms >= 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (dl.tv_nsec >= 1000000000) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000;
        }
    }
    pthread_mutex_lock(&p->lock);
    while (p->head == NULL && r == 0) {
        if (timeout_ms < 0) {
            r = pthread_cond_wait(&p->cond, &p->lock);
        } else {
            r = pthread_cond_timedwait(&p->cond, &p->lock, &dl);
        }
    }
    n = p->head;
    if (n != NULL) {
        p->head = n->next;
        if (p->head == NULL) {
            p->tail = NULL;
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (n == NULL) {
        return -ETIMEDOUT;
    }
    *ret_msg = n->msg;
    free(n);
    return 0;
}

int gr_probe_run(gr_probe *p, int (*fn)(girder_ctx *ctx, void *arg), void *arg)
{
    return gr_rt_run_in(p->rt, p->pid, fn, arg);
}
